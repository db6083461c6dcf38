"""Big-model behaviour: external weights are never read while fusing, and stay correctly referenced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from normopt import fuse, inspect, modelio, verify
from tests.helpers import cli
from tests.synthetic import layernorm_chain, save


@pytest.fixture
def external_model(tmp_path: Path) -> Path:
    return save(layernorm_chain(4, (2, 8, 256), opset=17, matmul=True), tmp_path / "model.onnx", external=True)


def test_fusing_reads_no_weight_bytes(external_model: Path, tmp_path: Path, count_weight_reads: list[str]) -> None:
    before = (tmp_path / "model.onnx.data").read_bytes()
    outcome = fuse(external_model, tmp_path / "fused.onnx")
    assert outcome.result.fused == 4
    assert count_weight_reads == []
    assert outcome.data_files == [tmp_path / "model.onnx.data"]
    assert (tmp_path / "model.onnx.data").read_bytes() == before
    inspect(external_model)
    assert count_weight_reads == []
    weight = modelio.load(external_model).graph.initializers["w_0"].const_value
    assert weight is not None and weight.numpy().shape == (256, 256)
    assert count_weight_reads == ["w_0"]  # the counter does see a real read


def test_fused_output_references_the_weights_correctly(external_model: Path, tmp_path: Path) -> None:
    fused = fuse(external_model, tmp_path / "fused.onnx").output
    assert modelio.external_files(modelio.load(fused)) == {tmp_path / "model.onnx.data"}
    assert verify(external_model, fused).passed


def test_new_data_file_beside_an_output_elsewhere(external_model: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outcome = fuse(external_model, elsewhere / "fused.onnx")
    assert outcome.data_files == [elsewhere / "fused.onnx.data"]
    model = modelio.load(outcome.output)
    assert modelio.external_files(model) == {elsewhere / "fused.onnx.data"}
    gamma = next(v for v in model.graph.initializers.values() if v.name == "w_0")
    original = next(v for v in modelio.load(external_model).graph.initializers.values() if v.name == "w_0")
    assert gamma.const_value is not None and original.const_value is not None
    assert np.array_equal(gamma.const_value.numpy(), original.const_value.numpy())
    assert verify(external_model, outcome.output).passed


def test_missing_data_file_is_exit_2(external_model: Path, tmp_path: Path) -> None:
    (tmp_path / "model.onnx.data").unlink()
    for command in ("fuse", "inspect"):
        result = cli(command, external_model)
        assert result.code == 2 and "missing external data" in result.stderr
    assert not (tmp_path / "model.fused.onnx").exists()

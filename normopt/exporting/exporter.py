"""``normopt.export``: torch model → ONNX with either exporter, any opset, fp32/fp16/bf16.

Both exporters' chatter goes to stderr (stdout is kept for ``--format json``). The result is re-saved
through ``modelio`` so it carries an IR version ONNX Runtime accepts, is written atomically, and keeps
big weights as external data.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from normopt import modelio
from normopt.errors import UsageError

Exporter = Literal["legacy", "dynamo"]
DType = Literal["fp32", "fp16", "bf16"]
EXPORTERS: tuple[Exporter, ...] = ("legacy", "dynamo")
DTYPES: tuple[DType, ...] = ("fp32", "fp16", "bf16")
DEFAULT_OPSET: dict[Exporter, int] = {"legacy": 14, "dynamo": 18}
# Weights above this total size are written as external data unless asked otherwise.
EXTERNAL_THRESHOLD_BYTES = 100 * 1024 * 1024


@dataclass
class ExportOutcome:
    """What ``export`` produced."""

    output: Path
    exporter: Exporter
    opset: int
    dtype: DType
    description: str
    inputs: list[dict[str, Any]]
    outputs: list[str]
    nodes: int
    norm_modules: int
    norm_candidates: int
    checker: str
    seconds: float
    data_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output": str(self.output),
            "exporter": self.exporter,
            "opset": self.opset,
            "dtype": self.dtype,
            "description": self.description,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "nodes": self.nodes,
            "norm_modules": self.norm_modules,
            "norm_candidates": self.norm_candidates,
            "checker": self.checker,
            "seconds": round(self.seconds, 3),
            "data_files": [str(p) for p in self.data_files],
            "notes": self.notes,
        }


def _torch_dtype(dtype: DType) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


def export(
    model: str,
    output: str | os.PathLike[str],
    *,
    exporter: Exporter = "legacy",
    opset: int | None = None,
    dtype: DType = "fp32",
    batch: int | None = None,
    seq: int | None = None,
    dynamic: bool = True,
    external_data: bool | None = None,
    task: str | None = None,
) -> ExportOutcome:
    """Export ``model`` (preset, Hugging Face directory or ``module:function``) to ONNX at ``output``.

    Args:
        model: What to export (see ``normopt.exporting.sources.resolve``).
        output: Destination ``.onnx`` path.
        exporter: ``legacy`` (TorchScript) or ``dynamo`` (torch.export).
        opset: ONNX opset (default 14 for legacy, 18 for dynamo).
        dtype: Weight and activation type.
        batch: Example batch size.
        seq: Example sequence length.
        dynamic: Dynamic batch and sequence axes.
        external_data: Force external data on/off (default: on above 100 MiB of weights).
        task: What a Hugging Face model returns: ``hidden-states`` (default), ``causal-lm``,
            ``masked-lm`` or ``sequence-classification`` (logits of that head).

    """
    from normopt.exporting.sources import resolve
    from normopt.fusion.pipeline import fuse_model

    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {exporter!r}; choose legacy or dynamo")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose fp32, fp16 or bf16")
    start = time.perf_counter()
    output = Path(output)
    if not output.parent.is_dir():
        raise UsageError(f"output directory does not exist: {output.parent}")
    source = resolve(model, batch, seq, task)
    module = source.module.to(_torch_dtype(dtype))
    inputs = {k: v.to(_torch_dtype(dtype)) if v.is_floating_point() else v for k, v in source.inputs.items()}
    opset = opset or DEFAULT_OPSET[exporter]
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=".normopt-export-") as tmp:
        raw = Path(tmp) / "model.onnx"
        _run_exporter(module, inputs, source, raw, exporter, opset, dynamic, dtype)
        exported = modelio.load(raw)
        weight_bytes = sum(v.const_value.nbytes for v in exported.graph.initializers.values() if v.const_value)
        external = external_data if external_data is not None else weight_bytes > EXTERNAL_THRESHOLD_BYTES
        info = modelio.save(exported, output, external="new" if external else "inline")
    checker = modelio.check(output, full=False)
    reloaded = modelio.load(output)
    nodes = sum(1 for _ in reloaded.graph)
    candidates = fuse_model(reloaded, target="ort", skip=False).candidates
    return ExportOutcome(
        output=output,
        exporter=exporter,
        opset=opset,
        dtype=dtype,
        description=source.description,
        inputs=[
            {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in inputs.items()
        ],
        outputs=source.output_names,
        nodes=nodes,
        norm_modules=source.norms,
        norm_candidates=candidates,
        checker="passed" if checker is None else f"failed: {checker}",
        seconds=time.perf_counter() - start,
        data_files=info.data_files,
        notes=source.notes,
    )


def _run_exporter(
    module: Any,
    inputs: dict[str, Any],
    source: Any,
    path: Path,
    exporter: Exporter,
    opset: int,
    dynamic: bool,
    dtype: DType,
) -> None:
    import torch

    args = tuple(inputs.values())
    names = list(inputs)
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if exporter == "legacy":
                torch.onnx.export(
                    module,
                    args,
                    str(path),
                    dynamo=False,
                    opset_version=opset,
                    input_names=names,
                    output_names=source.output_names,
                    dynamic_axes=source.dynamic if dynamic else None,
                )
            else:
                shapes = None
                if dynamic:
                    dims: dict[str, Any] = {}
                    shapes = tuple(
                        {
                            axis: dims.setdefault(label, torch.export.Dim.AUTO)
                            for axis, label in source.dynamic.get(n, {}).items()
                        }
                        for n in names
                    )
                program = torch.onnx.export(
                    module,
                    args,
                    dynamo=True,
                    opset_version=opset,
                    input_names=names,
                    output_names=source.output_names,
                    dynamic_shapes=shapes,
                )
                if program is None:
                    raise RuntimeError("the dynamo exporter returned no program")
                program.save(str(path), external_data=True)
        except UsageError:
            raise
        except Exception as error:
            other = "dynamo" if exporter == "legacy" else "legacy"
            text = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
            raise UsageError(
                f"the {exporter} exporter failed for {dtype} ({type(error).__name__}: {text}); try --exporter {other}"
            ) from None

"""``normopt.export``: torch model → ONNX with either exporter, any opset, fp32/fp16/bf16.

The exporters' prints and warnings go to the debug log (``--debug`` shows them; stdout is kept for JSON).
The result is re-saved through ``modelio`` so it carries an IR version ONNX Runtime accepts, is written
atomically, and keeps big weights as external data.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from normopt import modelio
from normopt.choices import DTYPES, EXPORTERS, DType, Exporter, Part
from normopt.errors import UsageError, option
from normopt.exporting.torch_output import chatter_to_debug_log, failure_cause, first_line

logger = logging.getLogger(__name__)

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
    norm_calls: int
    checker: str
    seconds: float
    data_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    random_weights: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_version": 1,
            "command": "export",
            "random_weights": self.random_weights,
            "output": str(self.output),
            "exporter": self.exporter,
            "opset": self.opset,
            "dtype": self.dtype,
            "description": self.description,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "nodes": self.nodes,
            "norm_modules": self.norm_modules,
            "norm_calls": self.norm_calls,
            "candidates": self.norm_candidates,  # what fuse will find (fuse's own name for it)
            "norm_candidates": self.norm_candidates,  # the same count, under its first name (kept for scripts)
            "checker": self.checker,
            "seconds": round(self.seconds, 3),
            "data_files": [str(p) for p in self.data_files],
            "notes": self.notes,
        }


def _other(exporter: Exporter) -> Exporter:
    """The exporter to suggest when ``exporter`` cannot do it."""
    return "dynamo" if exporter == "legacy" else "legacy"


def opset_range(exporter: Exporter) -> tuple[int, int]:
    """The opsets ``exporter`` writes as asked (the dynamo exporter cannot go below 18 reliably)."""
    from normopt.compat.torch_api import exporter_opsets

    lowest, legacy_max, dynamo_max = exporter_opsets()
    return (lowest, legacy_max) if exporter == "legacy" else (18, dynamo_max)


def check_export_options(exporter: str, dtype: str, opset: int | None, batch: int | None, seq: int | None) -> None:
    """Raise UsageError for an exporter, dtype, opset, batch or sequence length ``export`` cannot honour."""
    from normopt import options

    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter {exporter!r}; choose legacy or dynamo")
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}; choose fp32, fp16 or bf16")
    if opset is not None:
        low, high = opset_range(exporter)
        if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
            hint = (
                f"; use {option('--exporter', 'legacy')} for older opsets"
                if exporter == "dynamo" and opset < low
                else ""
            )
            raise UsageError(
                f"{option('--opset')} for the {exporter} exporter must be between {low} and {high}, got {opset}{hint}"
            )
    if batch is not None:
        options.at_least(option("--batch", parameter="batch"), batch, 1)
    if seq is not None:
        options.at_least(option("--seq", parameter="seq"), seq, 1)


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
    with_past: bool = False,
    part: Part | None = None,
    step: Callable[[str], None] | None = None,
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
        task: What a Hugging Face model returns: ``hidden-states``, ``causal-lm``, ``masked-lm`` or
            ``sequence-classification`` (logits of that head); default from the config's
            ``architectures`` (a ``...ForCausalLM`` checkpoint: ``causal-lm``), else ``hidden-states``.
        with_past: A decoder with a KV cache: past key/value inputs and present outputs, named and
            dimensioned as Optimum writes them (``normopt.exporting.cache``); implies ``causal-lm``.
        part: ``encoder`` (default) or ``decoder`` of a Hugging Face encoder-decoder; the decoder takes
            ``input_ids`` and ``encoder_hidden_states``.
        step: Called with a line as each phase starts (``[2/5] exporting with ...``): loading, exporting,
            the ONNX Runtime check, writing, counting norm candidates. The exporters give no measure of
            their own progress, so a phase is announced, not estimated.

    """
    from normopt.exporting.spec import check_spec

    check_export_options(exporter, dtype, opset, batch, seq)
    check_spec(model, task)  # before torch is imported: a wrong name or a Hub id is answered at once
    start = time.perf_counter()
    output = Path(output)
    made = modelio.make_parents(output)  # -o decoder/model.onnx makes decoder/; taken back on failure
    try:
        modelio.check_destination(output, None)

        from normopt.exporting.presets import count_norm_calls
        from normopt.exporting.sources import resolve
        from normopt.fusion.pipeline import fuse_model

        say = step or (lambda _: None)
        say(f"[1/5] loading {model}")
        source = resolve(model, batch, seq, task, with_past, part)
        if seq is not None and source.max_seq is not None and seq + source.past > source.max_seq:
            limit = source.max_seq - source.past
            cached = f" ({source.past} cached example tokens come first)" if source.past else ""
            raise UsageError(
                f"{option('--seq', parameter='seq')} must be between 1 "
                f"and {limit} (the model's positions{cached}), got {seq}"
            )
        with chatter_to_debug_log():
            calls = count_norm_calls(source.module, source.inputs)  # a shared norm module counts per call
        module = source.module.to(_torch_dtype(dtype))
        inputs = {k: v.to(_torch_dtype(dtype)) if v.is_floating_point() else v for k, v in source.inputs.items()}
        opset = opset or DEFAULT_OPSET[exporter]
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=".normopt-export-") as tmp:
            raw = Path(tmp) / "model.onnx"
            say(f"[2/5] exporting with the {exporter} exporter (opset {opset}, {dtype})")
            _run_exporter(module, inputs, source, raw, exporter, opset, dynamic, dtype)
            say("[3/5] running the export once on ONNX Runtime's CPU provider")
            ran = _smoke_run(raw, inputs, exporter, dtype)
            exported = modelio.load(raw)
            if exporter == "dynamo" and dynamic:
                _name_dims(exported, source.dynamic)
            weight_bytes = sum(v.const_value.nbytes for v in exported.graph.initializers.values() if v.const_value)
            external = external_data if external_data is not None else weight_bytes > EXTERNAL_THRESHOLD_BYTES
            say(f"[4/5] writing {output}")
            info = modelio.save(exported, output, external="new" if external else "inline")
        checker = modelio.check(output, full=False)
        reloaded = modelio.load(output)
        nodes = sum(1 for _ in reloaded.graph)
        dims = {
            v.name: [d if isinstance(d, int) else str(d) for d in v.shape] if v.shape is not None else None
            for v in reloaded.graph.inputs
        }
        say("[5/5] counting norm candidates")
        candidates = fuse_model(reloaded, target="ort", skip=False).candidates
        return ExportOutcome(
            output=output,
            exporter=exporter,
            opset=reloaded.opset_imports.get("", opset),  # what was written, not only what was asked
            dtype=dtype,
            description=source.description,
            inputs=[
                {
                    "name": k,
                    "shape": list(v.shape),  # the example's
                    "dims": dims.get(k),  # the model's: symbolic names where dynamic
                    "dtype": str(v.dtype).replace("torch.", ""),
                }
                for k, v in inputs.items()
            ],
            outputs=source.output_names,
            nodes=nodes,
            norm_modules=source.norms,
            norm_candidates=candidates,
            norm_calls=calls,
            checker="passed" if checker is None else f"failed: {checker}",
            seconds=time.perf_counter() - start,
            data_files=info.data_files,
            notes=[*source.notes, *([] if ran is None else [ran])],
            random_weights=source.random_weights,
        )
    except BaseException:
        modelio.remove_made(made)
        raise


def _smoke_run(path: Path, inputs: dict[str, Any], exporter: Exporter, dtype: DType) -> str | None:
    """Run the raw export once on ONNX Runtime's CPU provider with the example inputs.

    An export ORT cannot run (the legacy exporter baking a shape into Cohere's rotary embedding) is
    refused before anything is written, naming the exporter to try instead. Returns a note when the
    run could not be tried here: bf16, or an operator the CPU provider has no kernel for in this dtype
    (such a model may still run on CUDA).
    """
    import onnxruntime as ort

    from normopt.feeds import ortsession

    if dtype == "bf16":
        return "not run on ONNX Runtime after export: its CPU provider has few bfloat16 kernels"
    missing = f"not run on ONNX Runtime after export: CPU provider lacks a {dtype} kernel"
    try:
        session = ortsession.create(path)
    except UsageError as error:
        if "NOT_IMPLEMENTED" in str(error):
            return f"{missing} ({error})"
        raise UsageError(
            f"the {exporter} exporter wrote a model {error}; try {option('--exporter', _other(exporter))}"
        ) from error
    names = {i.name for i in session.get_inputs()}
    feeds = {name: tensor.detach().cpu().numpy() for name, tensor in inputs.items() if name in names}
    quiet = ort.RunOptions()
    quiet.log_severity_level = 4  # the failure is reported in one line below, not in ORT's own log
    try:
        session.run(None, feeds, quiet)
    except Exception as error:
        text = first_line(error) or type(error).__name__
        if "NOT_IMPLEMENTED" in text:
            return f"{missing} ({text})"
        raise UsageError(
            f"the {exporter} exporter wrote a model ONNX Runtime cannot run on the example inputs ({text}); "
            f"try {option('--exporter', _other(exporter))}"
        ) from error
    return None


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
    with chatter_to_debug_log():
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
                    flat = tuple(
                        {
                            axis: dims.setdefault(label, torch.export.Dim.AUTO)
                            for axis, label in source.dynamic.get(n, {}).items()
                        }
                        for n in names
                    )
                    at = source.varargs
                    shapes = flat if at is None else (*flat[:at], flat[at:])
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
            raise UsageError(
                f"the {exporter} exporter failed for {dtype} ({failure_cause(error)}); "
                f"try {option('--exporter', _other(exporter))}"
            ) from error


def _name_dims(model: Any, axes: dict[str, dict[int, str]]) -> None:
    """Give a dynamo export (an onnx_ir model) the dim names ``axes`` asks for.

    torch writes its own (``s10``, ``s15 + s70``). Each symbol an input axis carries is renamed to that
    axis's label everywhere in the graph, so expressions on outputs read ``past_sequence_length +
    sequence_length``; inputs and outputs named in ``axes`` get their labels as written.
    """
    import onnx_ir as ir

    graph = model.graph
    rename: dict[str, str] = {}
    for value in graph.inputs:
        for axis, wanted in axes.get(value.name or "", {}).items():
            dim = value.shape[axis] if value.shape is not None else None
            if isinstance(dim, ir.SymbolicDim) and dim.value and dim.value.isidentifier() and wanted.isidentifier():
                rename.setdefault(dim.value, wanted)
    token = re.compile(r"\b[A-Za-z_]\w*\b")
    ends = {id(v) for v in (*graph.inputs, *graph.outputs)}
    values = {id(v): v for v in (*graph.inputs, *graph.outputs, *(o for node in graph for o in node.outputs))}
    for value in values.values():
        if value.shape is None:
            continue
        dims: list[Any] = []
        for axis, dim in enumerate(value.shape):
            label = axes.get(value.name or "", {}).get(axis) if id(value) in ends else None
            if label is not None:
                dims.append(label)
            elif isinstance(dim, ir.SymbolicDim) and dim.value:
                dims.append(token.sub(lambda m: rename.get(m.group(0), m.group(0)), dim.value))
            else:
                dims.append(dim)
        value.shape = ir.Shape(dims)

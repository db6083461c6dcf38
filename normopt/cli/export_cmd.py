"""``normopt export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from normopt.choices import DType, Exporter, Part, Task
from normopt.cli.common import DebugOption, Format, FormatOption, emit_json, handle_errors, info, phases


@handle_errors
def export(
    model: Annotated[
        str | None, typer.Argument(help="Preset name, local Hugging Face directory, or package.module:function.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output .onnx path.")] = None,
    exporter: Annotated[Exporter, typer.Option(help="legacy (TorchScript) or dynamo (torch.export).")] = "legacy",
    opset: Annotated[int | None, typer.Option(help="ONNX opset (default 14 legacy, 18 dynamo).")] = None,
    dtype: Annotated[DType, typer.Option(help="fp32, fp16 or bf16.")] = "fp32",
    batch: Annotated[int | None, typer.Option(help="Example batch size.")] = None,
    seq: Annotated[int | None, typer.Option(help="Example sequence length.")] = None,
    dynamic: Annotated[bool, typer.Option("--dynamic/--static", help="Dynamic batch and sequence axes.")] = True,
    external_data: Annotated[
        bool | None,
        typer.Option("--external-data/--no-external-data", help="Weights in a .data file (default: above 100 MiB)."),
    ] = None,
    task: Annotated[
        Task | None,
        typer.Option(
            help="Hugging Face output: hidden states or a head's logits (default: the checkpoint's own "
            "architecture, e.g. ...ForCausalLM → causal-lm; hidden states when it names none)."
        ),
    ] = None,
    part: Annotated[
        Part | None,
        typer.Option(help="Encoder-decoders: the encoder (default) or the decoder (takes encoder_hidden_states)."),
    ] = None,
    with_past: Annotated[
        bool,
        typer.Option(
            "--with-past",
            help="A decoder with a KV cache: past_key_values.{i}.key/.value in, present.{i}.* out (Optimum's "
            "names and dims); implies --task causal-lm.",
        ),
    ] = False,
    fuse: Annotated[bool, typer.Option("--fuse", help="Continue into fusion: writes OUTPUT.fused.onnx too.")] = False,
    list_presets: Annotated[bool, typer.Option("--list", help="List the built-in presets and exit.")] = False,
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """Export a PyTorch / Hugging Face model to ONNX."""
    from normopt.errors import UsageError
    from normopt.exporting.catalog import PRESETS, parameter_count

    if list_presets:
        if format == Format.json:
            emit_json({"schema_version": 1, "command": "export", "presets": [p.to_dict() for p in PRESETS.values()]})
        else:
            for p in PRESETS.values():
                typer.echo(
                    f"{p.name:12} {p.family:6} {p.layers:2} layers x {p.hidden:4}  "
                    f"{parameter_count(p) / 1e6:7.1f}M params  norms {p.norms:2}  {p.description}"
                )
        return
    if model is None or output is None:
        raise UsageError("export needs MODEL and --output (or --list)")
    from normopt.exporting.spec import check_spec

    check_spec(model, task)  # a wrong name or a Hub id is answered before onnx and torch are imported
    from normopt.exporting.exporter import export as run_export

    with phases(f"exporting {model} with the {exporter} exporter ({dtype})") as step:
        outcome = run_export(
            model,
            output,
            exporter=exporter,
            opset=opset,
            dtype=dtype,
            batch=batch,
            seq=seq,
            dynamic=dynamic,
            external_data=external_data,
            task=task,
            part=part,
            with_past=with_past,
            step=step,
        )
    data = outcome.to_dict()
    for note in outcome.notes:
        info(f"note: {note}")
    inputs = ", ".join(
        f"{i['name']} [{', '.join(map(str, i['dims'] or i['shape']))}] {i['dtype']}" for i in data["inputs"]
    )
    weights = "RANDOM weights (its outputs mean nothing; its speed does), " if outcome.random_weights else ""
    info(
        f"wrote {outcome.output}: {weights}opset {outcome.opset}, {outcome.nodes} nodes, inputs {inputs}, outputs "
        f"{', '.join(outcome.outputs)}; norm calls {outcome.norm_calls}"
        f"{'' if outcome.norm_calls == outcome.norm_modules else f' ({outcome.norm_modules} modules)'}, "
        f"norm candidates {outcome.norm_candidates}; "
        f"checker {outcome.checker}; {outcome.seconds:.1f} s"
    )
    if fuse:
        from normopt.fusing import default_output
        from normopt.fusing import fuse as run_fuse

        fused = run_fuse(outcome.output, default_output(outcome.output))
        data["fusion"] = fused.to_dict()
        info(f"fused {fused.result.fused}/{fused.result.candidates} norms → {fused.output}")
    if format == Format.json:
        emit_json(data)

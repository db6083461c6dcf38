"""``normopt fuse`` and ``normopt inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from normopt.choices import ExternalLayout, Target
from normopt.cli import startup
from normopt.cli.common import (
    DebugOption,
    Format,
    FormatOption,
    PhaseBars,
    emit_json,
    handle_errors,
    info,
    progress_bar,
)

# Above this many candidates the table groups them by (kind, status, rule or reason).
DETAIL_ROWS = 40


def _grouped_table(details: list[dict[str, object]], title: str, stderr: bool) -> None:
    from collections import Counter

    from rich.console import Console
    from rich.table import Table

    groups = Counter(
        (d["kind"], d["status"], d["rule"] if d["status"] in ("fused", "fusable") else d["reason"], d["op"])
        for d in details
    )
    table = Table(title=f"{title} ({len(details)} candidates, grouped)")
    for column in ("kind", "status", "rule / reason", "op", "count"):
        table.add_column(column)
    for (kind, status, why, op), count in sorted(groups.items(), key=lambda kv: -kv[1]):
        table.add_row(str(kind), str(status), str(why), str(op or "-"), str(count))
    Console(stderr=stderr, width=160).print(table)


def _summary_table(details: list[dict[str, object]], title: str, stderr: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    if len(details) > DETAIL_ROWS:
        _grouped_table(details, title, stderr)
        return
    table = Table(title=title)
    for column in ("kind", "node", "status", "rule / reason", "op", "eps", "norm dims", "dtype"):
        table.add_column(column)
    for d in details:
        table.add_row(
            str(d["kind"]),
            str(d["node"]),
            str(d["status"]),
            str(d["rule"] if d["status"] in ("fused", "fusable") else d["reason"]),
            str(d["op"] or "-"),
            "-" if d["epsilon"] is None else f"{d['epsilon']:g}",
            str(d["axes"] or "-"),
            str(d["dtype"] or "-"),
        )
    Console(stderr=stderr, width=160).print(table)


@handle_errors
def fuse(
    model: Annotated[
        Path,
        typer.Argument(
            help="Input .onnx model (never modified without --in-place), or an export folder: every .onnx in it "
            "fused, the other files copied."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output path (default MODEL.fused.onnx; for a folder, DIR.fused/)."),
    ] = None,
    target: Annotated[
        Target,
        typer.Option(help="onnx: standard ops only; ort: ORT ops (+Skip*); auto: standard where the opset has it."),
    ] = "auto",
    skip: Annotated[
        bool | None,
        typer.Option("--skip/--no-skip", help="Merge residual Adds into Skip* ops (default: on for --target ort)."),
    ] = None,
    external: Annotated[
        ExternalLayout,
        typer.Option(help="External data of the output: same layout, a new file beside it, inline, or auto."),
    ] = "auto",
    in_place: Annotated[bool, typer.Option("--in-place", help="Allow the output to overwrite the input.")] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Check parity before writing; refuse to write a model that fails (exit 1).")
    ] = False,
    atol: Annotated[float | None, typer.Option(help="Absolute tolerance for --verify.")] = None,
    rtol: Annotated[float | None, typer.Option(help="Relative tolerance for --verify.")] = None,
    freeze_initializers: Annotated[
        bool,
        typer.Option(
            "--freeze-initializers",
            help="Assert no caller overrides initializers listed as graph inputs: they stop being inputs, and "
            "norms whose epsilon/axes/exponent are such initializers fuse.",
        ),
    ] = False,
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """Fuse every decomposed LayerNorm / RMSNorm into one node each."""
    startup.defer_symbolic_shapes()
    if model.is_dir():
        _fuse_folder(model, output, target, skip, external, in_place, verify, atol, rtol, format, freeze_initializers)
        return
    from normopt.fusing import fuse as run_fuse

    with progress_bar() as bar:  # a row per phase (reading, each pass, writing, checker, parity), with its ETA
        outcome = run_fuse(
            model,
            output,
            target=target,
            skip=skip,
            external=external,
            in_place=in_place,
            verify=verify,
            atol=atol,
            rtol=rtol,
            freeze_initializers=freeze_initializers,
            progress=PhaseBars(bar),
        )
    startup.freeze_heap()  # the graph just fused is garbage: do not let the table's allocations walk it
    data = outcome.to_dict()
    if data["details"]:
        _summary_table(data["details"], f"fusion of {model.name}", stderr=True)
    else:
        info(nothing_to_fuse(data["existing_norm_ops"]) + "; the output is the model unchanged")
    info(
        f"fused {data['fused']}/{data['candidates']} norm candidates ({_kinds(data['by_kind'])}) "
        f"({data['nodes_before']} → {data['nodes_after']} nodes) in {data['seconds']:.2f} s; "
        f"checker: {data['checker']}; wrote {outcome.output}"
    )
    if outcome.frozen:
        info(
            f"froze {len(outcome.frozen)} initializers (no longer graph inputs): {', '.join(outcome.frozen[:8])}"
            + (" …" if len(outcome.frozen) > 8 else "")
        )
    if outcome.parity is not None:
        info(f"parity passed (worst max_abs {max(o.max_abs for o in outcome.parity.outputs):.3g})")
    if format == Format.json:
        emit_json(data)


def nothing_to_fuse(existing: dict[str, int]) -> str:
    """``nothing to fuse: 12 norm ops already present (LayerNormalization 12)``, or that none was found."""
    if not existing:
        return "nothing to fuse: no decomposed LayerNorm or RMSNorm found, and no norm op"
    ops = ", ".join(f"{op} {count}" for op, count in sorted(existing.items()))
    total = sum(existing.values())
    return f"nothing to fuse: {total} norm op{'s' if total != 1 else ''} already present ({ops})"


def _kinds(by_kind: dict[str, int]) -> str:
    """``LayerNorm 10, RMSNorm 2`` (``none`` when empty)."""
    return ", ".join(f"{kind} {count}" for kind, count in by_kind.items()) or "none"


def _fuse_folder(
    folder: Path,
    output: Path | None,
    target: Target,
    skip: bool | None,
    external: ExternalLayout,
    in_place: bool,
    verify: bool,
    atol: float | None,
    rtol: float | None,
    format: Format,
    freeze_initializers: bool,
) -> None:
    from normopt.errors import UsageError
    from normopt.folders import fuse_folder

    if in_place or external != "auto":
        raise UsageError("a folder is fused into a new folder, each model keeping its layout: no --in-place/--external")
    outcome = fuse_folder(
        folder,
        output,
        target=target,
        skip=skip,
        verify=verify,
        atol=atol,
        rtol=rtol,
        freeze_initializers=freeze_initializers,
        progress=lambda name: info(f"fusing {name}"),
    )
    for name, result in outcome.models.items():
        data = result.to_dict()
        info(
            f"{name}: fused {data['fused']}/{data['candidates']} ({_kinds(data['by_kind'])}), "
            f"{data['nodes_before']} → {data['nodes_after']} nodes; checker: {data['checker']}"
            + ("; parity passed" if result.parity is not None else "")
        )
    copied = ", ".join(outcome.copied) or "none"
    info(f"other files copied: {copied}; wrote {outcome.output}")
    if format == Format.json:
        emit_json(outcome.to_dict())


@handle_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="The .onnx model to inspect (nothing is written).")],
    target: Annotated[Target, typer.Option(help="Target used to decide fusability.")] = "auto",
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """List every norm candidate: kind, eps, axes, dtype, and why any is not fusable."""
    startup.defer_symbolic_shapes()
    from normopt.fusing import inspect as run_inspect

    data = run_inspect(model, target=target).to_dict()
    startup.freeze_heap()
    if format == Format.json:
        emit_json(data)
        return
    if data["details"]:
        _summary_table(data["details"], f"norm candidates in {model.name}", stderr=False)
    else:
        typer.echo(nothing_to_fuse(data["existing_norm_ops"]))
    info(
        f"opset {data['opset']}, {data['nodes']} nodes; {data['candidates']} candidates, "
        f"{data['fusable']} fusable; norm ops already present: {data['existing_norm_ops'] or 'none'}"
    )

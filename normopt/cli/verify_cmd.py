"""``normopt verify``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from normopt.cli.common import (
    BatchOption,
    DebugOption,
    Format,
    FormatOption,
    PastOption,
    SeqOption,
    ShapeOption,
    emit_json,
    handle_errors,
    info,
)


class ProviderChoice(str, Enum):
    """Where to run the parity check."""

    cpu = "cpu"
    cuda = "cuda"


def print_parity(data: dict[str, object]) -> None:
    """The per-output table on stdout."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="parity (" + ("passed" if data["passed"] else "FAILED") + ")")
    for column in (
        "output",
        "max_abs",
        "max_rel",
        "mean_abs",
        "p99_abs",
        "cosine",
        "over tol",
        "NaN ref/cand",
        "atol",
        "rtol",
    ):
        table.add_column(column, justify="right")
    for o in data["outputs"]:  # type: ignore[attr-defined]
        table.add_row(
            o["name"],
            f"{o['max_abs']:.3g}",
            f"{o['max_rel']:.3g}",
            f"{o['mean_abs']:.3g}",
            f"{o['p99_abs']:.3g}",
            f"{o['cosine']:.6f}",
            str(o["over_tolerance"]),
            f"{o['nan_reference']}/{o['nan_candidate']}",
            f"{o['atol']:g}",
            f"{o['rtol']:g}",
        )
    console = Console(width=160)
    console.print(table)
    console.print(f"rule: {data['tolerance']['rule']}")  # type: ignore[index]
    for case in data.get("cases") or []:  # type: ignore[attr-defined]
        console.print(f"checked: {case}", markup=False)
    for probe in data.get("skipped_probes") or []:  # type: ignore[attr-defined]
        console.print(f"not run (the reference rejects these sizes): {probe}", markup=False)
    for note in data.get("notes") or []:  # type: ignore[attr-defined]
        console.print(f"note: {note}")
    for error in data.get("candidate_errors") or []:  # type: ignore[attr-defined]
        console.print(f"FAILED: the reference runs and the candidate does not: {error}", markup=False)
    divergence = data.get("first_divergence")
    if isinstance(divergence, dict):
        if divergence.get("node"):
            stats = divergence["stats"]
            console.print(
                f"first diverging fused node: {divergence['node']} ({divergence['op_type']}), tensor "
                f"{divergence['tensor']}: max_abs {stats['max_abs']:.3g}; its inputs "
                f"{'matched' if divergence['inputs_matched'] else 'already differed'}"
            )
        else:
            console.print(f"localization: {divergence.get('note')}")
    local = data.get("local")
    if isinstance(local, dict):
        for node in local["nodes"]:
            console.print(
                f"fused node {node['node']} alone, on the original's activations: max_abs {node['max_abs']:.3g} "
                f"({node['relative']:.2e} of its largest value) {'ok' if node['passed'] else 'OVER TOLERANCE'}",
                markup=False,
            )
        console.print(f"conclusion: {local['conclusion']}", markup=False)


@handle_errors
def verify(
    reference: Annotated[Path, typer.Argument(help="Reference model (the original).")],
    candidate: Annotated[Path, typer.Argument(help="Candidate model (e.g. the fused one).")],
    atol: Annotated[
        float | None, typer.Option(help="Absolute tolerance (default by dtype: fp32 1e-5, fp16 2e-2, bf16 1e-1).")
    ] = None,
    rtol: Annotated[
        float | None, typer.Option(help="Relative tolerance (default by dtype: fp32 1e-4, fp16 2e-2, bf16 5e-2).")
    ] = None,
    inputs: Annotated[Path | None, typer.Option(help=".npz with one array per model input.")] = None,
    shape: ShapeOption = None,
    batch: BatchOption = None,
    seq: SeqOption = None,
    past: PastOption = None,
    seed: Annotated[int, typer.Option(help="Seed for generated inputs.")] = 0,
    trials: Annotated[int, typer.Option(help="Number of generated input sets.")] = 1,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Exit status from each fused node on the original's own activations, not the end-to-end outputs "
            "(for models that amplify any tiny change).",
        ),
    ] = False,
    provider: Annotated[ProviderChoice, typer.Option(help="Execution provider for both models.")] = ProviderChoice.cpu,
    format: FormatOption = Format.table,
    debug: DebugOption = False,
) -> None:
    """Compare REFERENCE and CANDIDATE outputs on ONNX Runtime with graph optimizations off (exit 1 on mismatch)."""
    from normopt.feeds.inputs import parse_shapes
    from normopt.feeds.roles import Sizes
    from normopt.parity import verify as run_verify

    report = run_verify(
        reference,
        candidate,
        atol=atol,
        rtol=rtol,
        inputs=inputs,
        shapes=parse_shapes(shape),
        seed=seed,
        trials=trials,
        provider=provider.value,
        sizes=Sizes(batch, seq, past),
        local=local,
    )
    data = report.to_dict()
    if format == Format.json:
        emit_json(data)
    else:
        print_parity(data)
    judged = " (each fused node on its own: --local)" if report.decided_by == "fused nodes" else ""
    info(("parity passed" if report.passed else "parity FAILED") + judged)
    if not report.passed:
        raise typer.Exit(1)

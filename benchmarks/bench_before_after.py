"""Before/after: one normopt source tree against another on the same graphs, interleaved, one run at a time.

For a change that must not make normopt slower (a restructuring): each round runs ``normopt fuse`` (and
``normopt inspect``) from the ``--before`` tree and from the ``--after`` tree on the same graphs, in an
order that alternates round by round, each in a fresh subprocess (start-up included, as a user sees it).
Graphs are chains of decomposed LayerNorm + MatMul layers (10 nodes a layer) with external weights, built
once with ``tests.synthetic``.

Usage::

    git worktree add /tmp/before <commit>
    .venv/bin/python benchmarks/bench_before_after.py --before /tmp/before --after . [--nodes 1000 30000]

Prints, per graph and command, the median wall time of each tree and the ratio after/before (with the
spread of the per-round ratios), all measured in this one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: tests.synthetic

from tests.synthetic import layernorm_chain, save  # noqa: E402


def _run(tree: Path, args: list[str]) -> float:
    """Wall seconds of ``normopt ARGS`` run from ``tree`` (its own package first on the path; ``-P``: not the cwd)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import sys; from normopt_cli import main; sys.argv = ['normopt', *sys.argv[1:]]; main()"
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-P", "-c", code, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{tree}: normopt {' '.join(args)} failed ({result.returncode}): {result.stderr[-500:]}")
    return seconds


def _which(tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    code = "import normopt; print(normopt.__file__)"
    return subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=HERE.parent)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1000, 30000])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for label, tree in trees.items():
        print(f"{label}: {_which(tree)}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        print("| graph | command | before s (median) | after s (median) | after/before | per-round ratios |")
        print("|---|---|---|---|---|---|")
        for nodes in args.nodes:
            source = save(layernorm_chain(nodes // 10, (1, 128, 256), matmul=True), work / f"g{nodes}.onnx", True)
            for command in ("fuse", "inspect"):
                times: dict[str, list[float]] = {"before": [], "after": []}
                for round_ in range(args.rounds):
                    order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
                    for label in order:
                        out = work / f"{label}.onnx"
                        extra = ["-o", str(out)] if command == "fuse" else []
                        times[label].append(_run(trees[label], [command, str(source), *extra]))
                        for stale in work.glob(f"{label}.onnx*"):
                            stale.unlink()
                ratios = [a / b for a, b in zip(times["after"], times["before"], strict=True)]
                before, after = statistics.median(times["before"]), statistics.median(times["after"])
                print(
                    f"| {nodes} nodes | {command} | {before:.2f} | {after:.2f} | ×{after / before:.2f} | "
                    f"{min(ratios):.2f}–{max(ratios):.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()

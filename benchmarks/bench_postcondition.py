"""What the postcondition (SSA, order, op domains/versions, interface) costs on a big graph, on both engines.

Fuses a chain of decomposed LayerNorm + MatMul layers with ``fuse_model(check=True)`` and ``check=False``
alternately (interleaved rounds, fresh model each time) and prints the median of each and their ratio.
The flat protobuf engine is the one ``normopt fuse`` takes from 10,000 nodes on.

    .venv/bin/python benchmarks/bench_postcondition.py --layers 3000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository root: normopt and tests.synthetic

from tests.synthetic import layernorm_chain, save  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from normopt import modelio
    from normopt.engines import protograph
    from normopt.fusion.pipeline import fuse_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chain.onnx"
        save(layernorm_chain(args.layers, (1, 8, 64), opset=17, matmul=True), path, external=True)
        for engine in ("onnx_ir", "protobuf"):
            times: dict[bool, list[float]] = {True: [], False: []}
            nodes = 0
            for _ in range(args.rounds):
                for check in (True, False):
                    model = modelio.load(path) if engine == "onnx_ir" else protograph.load_flat(path, 0)
                    assert model is not None
                    start = time.perf_counter()
                    result = fuse_model(model, check=check)
                    times[check].append(time.perf_counter() - start)
                    nodes = result.nodes_before
            on, off = statistics.median(times[True]), statistics.median(times[False])
            print(
                f"{engine}: {nodes} nodes, {result.fused} fused; fuse_model with the postcondition {on:.3f} s, "
                f"without {off:.3f} s: x{on / off:.2f} (median of {args.rounds} interleaved rounds)"
            )


if __name__ == "__main__":
    main()

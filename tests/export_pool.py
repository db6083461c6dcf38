"""Exports run ahead in worker processes, so a test of the export matrix waits for its own export only.

torch's dynamo exporter spends ~8 s per tiny model in single-threaded tracing; the matrix (49 families × 2
exporters × 2 dtypes) is most of the suite's time. The checks stay in the test process, one test per case:
only the export call moves to a worker (spawned, one torch thread each), and its outcome — or the error
it raised — comes back through a ``Future``.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _worker_setup() -> None:
    import torch

    torch.set_num_threads(1)  # the workers share the machine's cores with each other and the test process


def _export(model: str, output: str, options: dict[str, Any]) -> Any:
    from normopt import export

    return export(model, output, **options)


def workers() -> int:
    """One worker per core this process may use (at most 4)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


class ExportPool:
    """``submit`` exports now, in order; ``result`` waits for one (re-raising what the export raised)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that holds torch's threads
        self.executor = ProcessPoolExecutor(workers(), mp_context=context, initializer=_worker_setup)
        self.futures: dict[Any, Future[Any]] = {}

    def submit(self, key: Any, model: str, output: Path, **options: Any) -> None:
        self.futures[key] = self.executor.submit(_export, model, str(output), options)

    def result(self, key: Any) -> Any:
        return self.futures[key].result()

    def close(self) -> None:
        for future in self.futures.values():
            future.cancel()
        self.executor.shutdown(wait=True, cancel_futures=True)

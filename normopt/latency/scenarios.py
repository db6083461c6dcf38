"""What a benchmark times: prefill (a prompt of S tokens, no past) and decode steps (1 token after P).

A model without past key/value inputs has only prefill. For a decoder with a cache both are timed by
default; ``--batch``, ``--seq`` and ``--past`` take lists and every combination is a workload of its
own (prefill sweeps batch x seq, decode sweeps batch x past).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from normopt.choices import SCENARIOS, Scenario
from normopt.errors import UsageError, option
from normopt.feeds import roles
from normopt.feeds.spec import InputSpec


@dataclass(frozen=True)
class Workload:
    """One set of input sizes to time; ``tokens`` is how many new tokens a run produces logits for."""

    scenario: Literal["prefill", "decode", "inputs"]
    sizes: roles.Sizes
    text: bool = True  # the model takes tokens (ids), so tokens/s means something

    @property
    def tokens(self) -> int | None:
        """New tokens per run: batch x seq (batch for a decode step); None without token inputs."""
        if not self.text or self.scenario == "inputs":
            return None
        return (self.sizes.batch or roles.DEFAULT_BATCH) * (self.sizes.seq or roles.DEFAULT_SEQ)

    def describe(self) -> str:
        """``decode: batch 1, seq 1, past 128``."""
        if self.scenario == "inputs":
            return f"inputs from {option('--inputs')}"
        return f"{self.scenario}: {self.sizes.describe(self.scenario == 'decode')}"


def plan(
    specs: Sequence[InputSpec],
    scenario: Scenario | None = None,
    batches: Sequence[int] | None = None,
    seqs: Sequence[int] | None = None,
    pasts: Sequence[int] | None = None,
) -> list[Workload]:
    """The workloads for a model with inputs ``specs``; UsageError for sizes or scenarios it cannot take."""
    if scenario is not None and scenario not in SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; choose prefill, decode or both")
    cached = roles.has_past(specs)
    if not cached and scenario == "decode":
        raise UsageError(
            f"{option('--scenario', 'decode')} needs a decoder with past key/value inputs; this model has none"
        )
    for size, values in (("batch", batches), ("seq", seqs), ("past", pasts)):
        for value in values or ():
            roles.check_sizes(roles.Sizes(**{size: value}), specs)
    if pasts and scenario == "prefill":
        raise UsageError(
            f"{option('--past')} applies to decode steps; {option('--scenario', 'prefill')} runs with no past"
        )
    if seqs and scenario == "decode":
        raise UsageError(f"{option('--seq')} applies to prefill; a decode step takes one new token")
    chosen = scenario or ("both" if cached else "prefill")
    text = any(roles.role_of(s) == "ids" for s in specs)
    batch_list = list(batches or [roles.DEFAULT_BATCH])
    workloads = []
    if chosen in ("prefill", "both"):
        for seq in seqs or [roles.DEFAULT_SEQ]:
            workloads += [Workload("prefill", roles.Sizes(b, seq, 0 if cached else None), text) for b in batch_list]
    if chosen in ("decode", "both"):
        for past in pasts or [roles.DEFAULT_PAST]:
            workloads += [Workload("decode", roles.Sizes(b, 1, past), text) for b in batch_list]
    return workloads


def workload_label(scenario: str, batch: int | None, seq: int | None, past: int | None) -> str:
    """``prefill b2 s16``, ``decode b1 p128``; sizes left out where unknown."""
    if scenario == "inputs":
        return scenario
    last = ("p", past) if scenario == "decode" else ("s", seq)
    return " ".join([scenario, *(f"{k}{v}" for k, v in (("b", batch), last) if v is not None)])

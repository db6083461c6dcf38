"""``normopt.verify``: run a reference and a candidate model on the same inputs and compare outputs.

Both models run on ONNX Runtime with graph optimizations off, so ORT's own fusions cannot hide a
difference. JSON schema of ``ParityReport.to_dict()`` (schema_version 1): ``passed`` (bool),
``outputs`` (list of ``TensorStats`` dicts: name, shape, dtype, max_abs, max_rel, mean_abs, p99_abs,
cosine, over_tolerance, nan_*/inf_* counts, atol, rtol, passed), ``tolerance`` ({rule, atol, rtol}; None
means the per-dtype defaults), ``inputs`` (list of {name, shape, dtype}), ``seed``, ``trials``,
``provider``, ``first_divergence`` (see ``localize``; null when outputs match), ``cases`` (the size sets
run, e.g. both If branches of a merged decoder, and the shape probes: see ``probes``),
``skipped_probes`` (probes the reference rejects), ``candidate_errors`` (probes the reference runs and the
candidate cannot: a failure).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from normopt import modelio, options
from normopt.errors import ProviderUnavailable, UsageError, option
from normopt.feeds import inputs as inp
from normopt.feeds import ortsession, roles
from normopt.feeds.runs import RunFailed, run_one, run_pair, specs_of
from normopt.locate import model_in
from normopt.parity import probes
from normopt.parity.compare import RULE, TensorStats, compare_outputs, merge, narrowest_float


@dataclass
class ParityReport:
    """Outcome of a parity check (see the module docstring for the JSON form)."""

    passed: bool
    outputs: list[TensorStats]
    atol: float | None
    rtol: float | None
    inputs: list[dict[str, Any]]
    seed: int
    trials: int
    provider: str
    first_divergence: dict[str, Any] | None = None
    cases: list[str] = field(default_factory=list)
    skipped_probes: list[str] = field(default_factory=list)
    candidate_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what explains a failure without a fused node to blame
    local: dict[str, Any] | None = None  # ``local.LocalCheck``: run on a failure, or asked for (``local=True``)
    decided_by: str = "end-to-end"  # what ``passed`` says: the outputs, or (``local=True``) each fused node
    feeds: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    SCHEMA_VERSION = 1

    def tolerance(self) -> dict[str, Any]:
        """The rule and the atol/rtol applied: as given, else the widest per-dtype default any output got."""
        atol = self.atol if self.atol is not None else max((o.atol for o in self.outputs), default=None)
        rtol = self.rtol if self.rtol is not None else max((o.rtol for o in self.outputs), default=None)
        source = {
            name: "dtype default" if value is None else "given"
            for name, value in (("atol", self.atol), ("rtol", self.rtol))
        }
        return {"rule": RULE, "atol": atol, "rtol": rtol, "source": source}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_version": self.SCHEMA_VERSION,
            "command": "verify",
            "passed": self.passed,
            "outputs": [o.to_dict() for o in self.outputs],
            "tolerance": self.tolerance(),
            "inputs": self.inputs,
            "seed": self.seed,
            "trials": self.trials,
            "provider": self.provider,
            "first_divergence": self.first_divergence,
            "cases": self.cases,
            "skipped_probes": self.skipped_probes,
            "candidate_errors": self.candidate_errors,
            "notes": self.notes,
            "local": self.local,
            "decided_by": self.decided_by,
        }


def _shapes(feeds: dict[str, np.ndarray]) -> str:
    """``input_ids=2x16, attention_mask=2x16`` (a cache's tensors of one shape once: ``roles.shapes_line``)."""
    return roles.shapes_line({name: list(array.shape) for name, array in feeds.items()})


def verify(
    reference: modelio.ModelLike,
    candidate: modelio.ModelLike,
    *,
    atol: float | None = None,
    rtol: float | None = None,
    inputs: str | os.PathLike[str] | None = None,
    shapes: dict[str, list[int]] | None = None,
    seed: int = 0,
    trials: int = 1,
    provider: ortsession.Provider = "cpu",
    localize: bool = True,
    sizes: roles.Sizes | None = None,
    local: bool = False,
) -> ParityReport:
    """Check that ``candidate`` computes what ``reference`` computes.

    Args:
        reference: The original model (.onnx, an export folder holding it: ``locate.model_in``, or an
            in-memory ``onnx.ModelProto`` / ``onnx_ir.Model``).
        candidate: The model to check, usually the fused one (a file, folder or model likewise).
        atol: Absolute tolerance; None uses the default for the candidate's output dtype, or for the
            narrowest float type the reference computes in when that is looser.
        rtol: Relative tolerance; None likewise.
        inputs: An .npz with one array per model input (then ``trials`` is 1).
        shapes: Dims for dynamic inputs, by input name or dim name.
        seed: Seed for generated inputs; trial ``k`` uses ``seed + k``.
        trials: Number of generated input sets.
        provider: ``cpu`` or ``cuda``.
        localize: On failure, name the first fused node whose output diverges, and check every fused node
            on the original's own activations against the original's sensitivity (``local``).
        local: Let the per-fused-node check decide ``passed`` (each fused node within tolerance on the
            original's own activations) instead of the end-to-end outputs; the end-to-end statistics are
            still reported. For models that amplify any tiny change (quantization after the norms).
        sizes: Batch, new tokens and cached tokens, bound onto the inputs by role (``roles``); a
            merged decoder is checked on both If branches (past 0 and past ``sizes.past``).

    Returns:
        The report; ``passed`` is False when any output is out of tolerance.

    Raises:
        UsageError: Missing or unreadable models, mismatched input or output names, bad inputs.

    """
    if not isinstance(reference, (str, os.PathLike)) or not isinstance(candidate, (str, os.PathLike)):
        with modelio.as_path(reference, "reference") as ref, modelio.as_path(candidate, "candidate") as cand:
            return verify(
                ref, cand, atol=atol, rtol=rtol, inputs=inputs, shapes=shapes, seed=seed, trials=trials,
                provider=provider, localize=localize, sizes=sizes, local=local,
            )  # fmt: skip
    reference, candidate = model_in(reference), model_in(candidate)
    options.at_least(option("--trials"), trials, 1)
    atol, rtol = options.tolerance(option("--atol"), atol), options.tolerance(option("--rtol"), rtol)
    options.seed(seed)
    if provider == "cuda":
        problem = ortsession.cuda_problem()
        if problem is not None:
            raise ProviderUnavailable(f"CUDA is not usable here: {problem}")
    ref_model = modelio.load(reference)
    modelio.load(candidate)
    ref_sess, cand_sess = ortsession.create_pair(reference, candidate, provider, "disable")
    ref_specs, cand_specs = specs_of(ref_sess, ref_model), specs_of(cand_sess)
    if {s.name for s in ref_specs} != {s.name for s in cand_specs}:
        raise UsageError(
            f"input names differ: reference {sorted(s.name for s in ref_specs)}, "
            f"candidate {sorted(s.name for s in cand_specs)}"
        )
    ref_names = [o.name for o in ref_sess.get_outputs()]
    if set(ref_names) != {o.name for o in cand_sess.get_outputs()}:
        raise UsageError("output names differ between the reference and the candidate")
    limits = inp.vocab_limits(ref_model)
    floor = narrowest_float(ref_model)
    shapes = inp.check_shapes(shapes or {}, ref_specs)
    sizes = sizes or roles.Sizes()
    roles.check_sizes(sizes, ref_specs)
    merged: dict[str, TensorStats] = {}
    skipped: list[str] = []  # probes the original rejects
    broken: list[str] = []  # probes the original runs and the candidate cannot
    failing_feeds: dict[str, np.ndarray] | None = None
    first_feeds: dict[str, np.ndarray] = {}
    count = 1 if inputs is not None else trials
    runs = [("inputs from " + str(inputs), sizes)] if inputs is not None else roles.cases(ref_specs, sizes)
    checked: list[str] = []  # what ran, read from the feeds themselves
    for trial in range(count):
        for label, case in runs:
            if inputs is not None:
                feeds = inp.load_npz(inputs, ref_specs)
            else:
                feeds = inp.generate(ref_specs, shapes, seed + trial, limits, float_dtype=np.float32, sizes=case)
            if trial == 0:
                branch = label.split(":")[0] + ": " if label.startswith("use_cache_branch") else ""
                source = f"{label}: " if inputs is not None else ""
                checked.append(source + branch + _shapes(feeds))
            first_feeds = first_feeds or feeds
            ref_out, cand_out = run_pair(ref_sess, cand_sess, feeds, ref_names)
            for stats in compare_outputs(ref_out, cand_out, atol, rtol, floor):
                merged[stats.name] = merge(merged[stats.name], stats) if stats.name in merged else stats
                if not stats.passed and failing_feeds is None:
                    failing_feeds = feeds
    if inputs is None:
        for label, probe in probes.probes(ref_specs, shapes, sizes):
            feeds = inp.generate(ref_specs, {**shapes, **probe}, seed, limits, float_dtype=np.float32, sizes=sizes)
            try:
                ref_out = run_one(ref_sess, feeds, "reference", ref_names)
            except RunFailed:
                skipped.append(label)  # not an input the original accepts
                continue
            checked.append(label)
            try:
                cand_out = run_one(cand_sess, feeds, "candidate", ref_names)
            except RunFailed as error:
                broken.append(f"{label}: {error.cause}")
                failing_feeds = failing_feeds or feeds
                continue
            for stats in compare_outputs(ref_out, cand_out, atol, rtol, floor):
                merged[stats.name] = merge(merged[stats.name], stats)
                if not stats.passed and failing_feeds is None:
                    failing_feeds = feeds
    outputs = [merged[n] for n in ref_names]
    report = ParityReport(
        passed=all(o.passed for o in outputs) and not broken,
        outputs=outputs,
        atol=atol,
        rtol=rtol,
        inputs=[{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)} for k, v in first_feeds.items()],
        seed=seed,
        trials=count,
        provider=ortsession.actual_provider(cand_sess),
        cases=checked,
        feeds=first_feeds,
        skipped_probes=skipped,
        candidate_errors=broken,
    )
    rounding = [o for o in outputs if not o.passed]
    if not report.passed and not broken and all(o.below_resolution for o in rounding):
        report.notes.append(
            f"{', '.join(o.name for o in rounding)}: atol {rounding[0].atol:g} is below float16's resolution "
            "at these outputs (finer than one rounding step at their largest values, and every difference is "
            "within two such steps): the tolerance fails, not a fused node; the float16 defaults are "
            "atol 2e-2, rtol 2e-2"
        )
    elif not report.passed and localize and failing_feeds is not None:
        from normopt.parity.localize import first_divergence

        try:
            report.first_divergence = first_divergence(
                Path(reference), Path(candidate), failing_feeds, provider, atol, rtol
            )
            if report.first_divergence.get("below_resolution"):
                report.notes.append(
                    f"atol {atol:g} is below float16's resolution where the first fused node's output differs "
                    "(it differs by at most two rounding steps at its own scale; a fused norm computes in "
                    "float32 and rounds once, the decomposed float16 chain rounds at every op): the tolerance "
                    "fails, not a fused node; the float16 defaults are atol 2e-2, rtol 2e-2"
                )
        except RunFailed as error:  # the candidate does not run on the sizes that failed: say so, not exit 2
            note = f"not localized: {error.cause}"
            report.first_divergence = {"node": None, "note": note, "stats": None}
    if local or (not report.passed and localize and not broken):
        from normopt.parity.local import local_check

        check = local_check(reference, candidate, failing_feeds or first_feeds, atol, rtol, seed)
        report.local = check.to_dict()
        if local:
            report.passed, report.decided_by = check.passed and not broken, "fused nodes"
    return report

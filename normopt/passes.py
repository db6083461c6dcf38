"""normopt's fusion as an onnx_ir pass, for onnx_ir / onnxscript pass pipelines.

    import onnx_ir as ir
    from normopt.passes import FuseNorms

    fuse = FuseNorms(target="onnx")
    result = ir.passes.PassManager([fuse])(model)  # model is changed in place
    print(fuse.result.fused, "norms fused")

The pass is the same code ``normopt fuse`` runs on models of any size that fit onnx_ir (shape inference
on the side, nothing inferred written back); ``result`` keeps the last run's per-candidate records.
"""

from __future__ import annotations

import onnx_ir as ir

from normopt.choices import Target
from normopt.engines.postcondition import Snapshot, ir_facts
from normopt.errors import UsageError
from normopt.fusion.pipeline import fuse_model, option_problem
from normopt.fusion.result import FusionResult


def freeze(model: ir.Model) -> list[str]:
    """Remove the main graph's inputs that are initializers; return their names (see ``FuseNorms``)."""
    graph = model.graph
    frozen = [v for v in graph.inputs if v.is_initializer()]
    for value in frozen:
        graph.inputs.remove(value)
    return [v.name or "" for v in frozen]


class FuseNorms(ir.passes.InPlacePass):
    """Fuse every decomposed LayerNorm / RMSNorm of the model into one node each (in place).

    Args:
        target: ``auto``, ``onnx`` (standard ops only) or ``ort`` (ONNX Runtime's ops).
        skip: Merge residual Adds into Skip* ops (default: only for ``ort``).
        freeze_initializers: Assert no caller overrides initializers that are also graph inputs: they are
            removed from the graph inputs (``frozen`` names them) and proved with as constants.

    """

    def __init__(self, target: Target = "auto", skip: bool | None = None, freeze_initializers: bool = False) -> None:
        super().__init__()
        problem = option_problem(target, skip)
        if problem is not None:
            raise UsageError(problem)
        self.target: Target = target
        self.skip = skip
        self.freeze_initializers = freeze_initializers
        self.frozen: list[str] = []
        self.result: FusionResult | None = None
        self._before: Snapshot | None = None

    def requires(self, model: ir.Model) -> None:
        """Record the model's interface and the structural facts it already breaks (see ``ensures``)."""
        if self.freeze_initializers:  # the one interface change asked for: taken before the snapshot
            self.frozen = freeze(model)
        self._before = Snapshot.of(ir_facts(model))

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        """Run the passes; ``modified`` is True when at least one norm was fused (or an initializer frozen)."""
        self.result = fuse_model(model, target=self.target, skip=self.skip, check=False)
        return ir.passes.PassResult(model, modified=self.result.fused > 0 or bool(self.frozen))

    def ensures(self, model: ir.Model) -> None:
        """Check the postcondition (``normopt.engines.postcondition``) against what ``requires`` recorded.

        SSA in every scope, sorted graphs, every input defined, every op's domain imported at a version
        that has it, the interface unchanged.

        Raises:
            PostconditionFailed: naming the first fact the pass broke (onnx_ir wraps it in its
                ``PostconditionError``).

        """
        before, self._before = self._before, None
        facts = ir_facts(model)
        (before or Snapshot(interface=facts.interface, broken=frozenset())).ensure(facts)

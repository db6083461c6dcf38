"""One graph input as ONNX Runtime declares it: name, type string, dims."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class InputSpec:
    """A model input: name, ONNX Runtime type string, and dims (int, or a name/None when dynamic)."""

    name: str
    type: str
    shape: tuple[int | str | None, ...] | None  # None: unknown rank

    def fits(self, dims: Sequence[int]) -> bool:
        """True when concrete ``dims`` have this input's rank and agree with every static dim of it."""
        if self.shape is None:
            return True
        return len(dims) == len(self.shape) and all(
            not (isinstance(d, int) and d > 0) or d == n for d, n in zip(self.shape, dims, strict=True)
        )

    def describe(self) -> str:
        """``input_ids int64 [batch, seq]`` (``[?]`` for an unknown rank)."""
        dims = "?" if self.shape is None else ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} {self.type.removeprefix('tensor(').removesuffix(')')} [{dims}]"

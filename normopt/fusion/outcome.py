"""How a matcher step says what it found: one outcome type, in the spirit of onnxscript's ``MatchResult``.

A step either succeeds with what it matched, or fails with a reason and the value the failure concerns.
A failure may also carry what was matched before it broke (``partial``): a mean that cannot take part
in a norm is still a mean whose readers decide whether there is a candidate to report. Deep inside a
step, ``Refusal`` is raised to leave at once; ``MatchResult.refused`` turns it back into an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from normopt.engines.views import ValueView

T = TypeVar("T")
U = TypeVar("U")


class Refusal(Exception):
    """A candidate is not a norm (or not provably one); ``str(self)`` is the reason."""

    def __init__(self, reason: str, value: ValueView | None = None) -> None:
        super().__init__(reason)
        self.value = None if value is None else value.name


@dataclass(frozen=True)
class MatchResult(Generic[T]):
    """Success (``found``) or failure (``reason``, the ``value`` it concerns, and any ``partial`` match).

    Attributes:
        found: What the step matched, on success.
        reason: Why it failed ("" on success).
        value: Name of the value the failure concerns, when one does.
        partial: On failure, what had been matched before it broke, when that is still of use.

    """

    found: T | None = None
    reason: str = ""
    value: str | None = None
    partial: T | None = None

    @classmethod
    def success(cls, found: T) -> MatchResult[T]:
        """A successful match."""
        return cls(found=found)

    @classmethod
    def failure(cls, reason: str, value: ValueView | None = None, partial: T | None = None) -> MatchResult[T]:
        """A failed match."""
        return cls(reason=reason, value=None if value is None else value.name, partial=partial)

    @classmethod
    def failed_like(cls, other: MatchResult[U]) -> MatchResult[T]:
        """``other``'s failure (reason and value), as the outcome of a step that matches something else."""
        return cls(reason=other.reason, value=other.value)

    @classmethod
    def refused(cls, refusal: Refusal) -> MatchResult[T]:
        """The outcome a raised ``Refusal`` stands for."""
        return cls(reason=str(refusal), value=refusal.value)

    def __bool__(self) -> bool:
        return self.found is not None

    @property
    def reached(self) -> T | None:
        """What was matched, complete or not."""
        return self.found if self.found is not None else self.partial

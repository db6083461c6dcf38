"""Names normopt gives new nodes and values: unique in the whole model, not only within one run.

A model may already hold normopt's own nodes (it was fused before) or values that happen to be called
``…​.unfused``; every name handed out here is checked against every name in the model: node and value
names of every graph, subgraph and function, graph inputs, outputs and initializers, function names.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Suffixes ``emit`` appends to a fused node's name for the values and nodes it creates beside it.
DERIVED = (".scale", ".bias", ".scale.shape", ".bias.shape", ".shape")


class Names:
    """The names taken in one model, and fresh ones that stay unique as the passes add nodes."""

    def __init__(self, taken: Iterable[str]) -> None:
        self._taken = {name for name in taken if name}
        self._next: dict[str, int] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._taken

    def fresh(self, stem: str) -> str:
        """``normopt/<stem>_<i>`` with the lowest ``i`` (from this run's last) free along with its derived names."""
        index = self._next.get(stem, 0)
        while True:
            name = f"normopt/{stem}_{index}"
            index += 1
            if all(name + suffix not in self._taken for suffix in ("", *DERIVED)):
                break
        self._next[stem] = index
        self._taken.update(name + suffix for suffix in ("", *DERIVED))
        return name

    def unique(self, name: str) -> str:
        """``name`` when it is free, else ``name_1``, ``name_2`` …; the result is taken from now on."""
        found, index = name, 0
        while found in self._taken:
            index += 1
            found = f"{name}_{index}"
        self._taken.add(found)
        return found

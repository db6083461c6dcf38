"""Shape probes: input sizes that tell apart dims a rewrite may have taken as equal.

Generated inputs give every dynamic dim of one name one size, and every unnamed dim the default of
its position, so a model whose fused form wrongly assumes two dims equal (``Add(a[?,?,8], b[?,?,8])``)
passes them. Probes give the dims nothing binds (no ``--shape``, no input role) other sizes:

1. every distinct dim (a name, or each unnamed dim on its own) a size of its own;
2. for each input in turn, its free dims at 1 (the broadcasting case), the others at the defaults.

A probe the original model rejects is skipped (it is no input the model accepts); the rest are run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from normopt.feeds import roles
from normopt.feeds.inputs import bind_shape
from normopt.feeds.spec import InputSpec

# Sizes for distinct dims: pairwise different, none of them the defaults (2 and 16) nor 1.
_DISTINCT = (3, 5, 7, 4, 6, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20)
MAX_PROBES = 4


def _free(dim: int | str | None, named: Mapping[str, int]) -> bool:
    """A dim nothing fixes: dynamic, and not a name that ``--shape`` or a role binds."""
    if isinstance(dim, int) and dim > 0:
        return False
    return not (isinstance(dim, str) and dim and (dim in named or roles.dim_size(dim, dict(named)) is not None))


def probes(
    specs: Sequence[InputSpec], shapes: Mapping[str, list[int]], sizes: roles.Sizes
) -> list[tuple[str, dict[str, list[int]]]]:
    """``(label, shapes by input name)`` for each probe; none when no dim is free."""
    named = roles.bindings(specs, shapes, sizes)
    open_specs = [s for s in specs if s.name not in shapes and s.shape is not None]
    if not any(_free(d, named) for s in open_specs for d in s.shape or ()):
        return []
    distinct: dict[str, list[int]] = {}
    sizes_by_name: dict[str, int] = {}
    counter = iter(_DISTINCT * 4)
    for spec in open_specs:
        defaults = bind_shape(spec, shapes, dict(named))
        dims = []
        for dim, default in zip(spec.shape or (), defaults, strict=True):
            if not _free(dim, named):
                dims.append(default)
            elif isinstance(dim, str) and dim:
                dims.append(sizes_by_name.setdefault(dim, next(counter)))
            else:
                dims.append(next(counter))
        distinct[spec.name] = dims
    found = [("distinct dims: " + _describe(distinct), distinct)]
    for spec in open_specs:
        if len(found) >= MAX_PROBES or not any(_free(d, named) for d in spec.shape or ()):
            continue
        ones = {s.name: bind_shape(s, shapes, dict(named)) for s in open_specs}
        ones[spec.name] = [1 if _free(d, named) else n for d, n in zip(spec.shape or (), ones[spec.name], strict=True)]
        found.append((f"{spec.name}'s free dims at 1: " + _describe(ones), ones))
    return found


def _describe(shapes: Mapping[str, list[int]]) -> str:
    return ", ".join(f"{name}={'x'.join(map(str, dims)) or 'scalar'}" for name, dims in shapes.items())

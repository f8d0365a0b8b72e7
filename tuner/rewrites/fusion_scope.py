"""Keeping named sub-modules out of graph-kernel fusion.

MindSpore has no public API for this. A primitive carrying the attribute ``aggregate`` is left
alone by the expander and the clusterer, so tagging every primitive under a module keeps that
module out of fusion. Operators the parser creates itself (``out += identity``) have no reachable
primitive and stay fusable.
"""
from __future__ import annotations

from mindspore import nn

EXCLUDE_ATTR = "aggregate"


def _under(path: str, modules: tuple[str, ...]) -> bool:
    return any(path == m or path.startswith(m + ".") for m in modules)


def exclude_from_fusion(net: nn.Cell, modules: tuple[str, ...]) -> int:
    """Tag the primitives of every cell under ``modules``; return how many were tagged.

    Raises ValueError naming the first module that ``net`` does not have.
    """
    names = {name for name, _ in net.cells_and_names()}
    missing = [m for m in modules if m not in names]
    if missing:
        raise ValueError(f"graph_kernel.excluded_modules: the network has no module {missing[0]!r}")
    tagged = 0
    for path, cell in net.cells_and_names():
        if _under(path, modules):
            for primitive in getattr(cell, "_primitives", {}).values():
                if primitive is not None:
                    primitive.add_prim_attr(EXCLUDE_ATTR, True)
                    tagged += 1
    return tagged

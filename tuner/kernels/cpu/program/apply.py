"""Replacing a network's regions by program cells (the plan of tuner.kernels.cpu.program.plan)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from mindspore import nn

from tuner.kernels.cpu.probe import set_child
from tuner.kernels.cpu.program.cell import ProgramCell
from tuner.kernels.cpu.program.emit import emit
from tuner.kernels.cpu.program.kernel_graph import KOp
from tuner.kernels.cpu.program.plan import ProgramPlan, cell_tree, describe_op
from tuner.kernels.cpu.program.spec import Layout
from tuner.rewrites.network import TunedNetwork


def _parent(path: str) -> tuple[str, str]:
    return tuple(path.rsplit(".", 1)) if "." in path else ("", path)


def _callable_cells(paths: tuple[str, ...], cells: dict, plan: ProgramPlan) -> list[str]:
    """The cells to replace for a region: a container (SequentialCell, CellList) is replaced
    through its children, since its parent may iterate over it instead of calling it."""
    replaced = []
    for path in paths:
        cell = cells[path]
        if isinstance(cell, (nn.SequentialCell, nn.CellList)):
            children = [f"{path}.{name}" for name in cell.name_cells()]
            replaced.extend(_callable_cells(tuple(c for c in children if plan.computes(c)),
                                            cells, plan))
        else:
            replaced.append(path)
    return replaced


def apply_plan(net: nn.Cell, plan: ProgramPlan, library: Path, layout: Layout,
               impl_for: Callable[[KOp], int] = lambda op: 0) -> nn.Cell:
    """Each planned region of ``net`` replaced by its program cell (a chain's first member by
    the program, the others by identities); returns a new top-level cell."""
    _, _, cells = cell_tree(net)
    top = net
    for planned in plan.regions:
        region, kg = planned.region, planned.kernel_graph
        name = region.name
        program = emit(kg, layout, impl_for, name)
        steps = "\n".join(describe_op(op, kg) for op in kg.ops)
        cell = ProgramCell(library, program, name.replace("<", "").replace(">", "") or "network",
                           steps)
        if region.cells == ("",):
            top = cell
            continue
        replaced = _callable_cells(region.cells, cells, plan)
        parent, child = _parent(replaced[0])
        set_child(cells[parent], child, cell)
        for other in replaced[1:]:
            parent, child = _parent(other)
            set_child(cells[parent], child, nn.Identity())
    return TunedNetwork(top)

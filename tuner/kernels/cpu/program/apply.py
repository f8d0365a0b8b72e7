"""Program cells for a plan's regions, and installing them in the network."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mindspore import nn

from tuner.kernels.cpu.program.cell import ProgramCell, StepInfo
from tuner.kernels.cpu.program.emit import ChoiceFor, emit
from tuner.kernels.cpu.program.plan import PlannedRegion, ProgramPlan, cell_tree, describe_op
from tuner.kernels.cpu.program.kernel_graph import HEAVY_KINDS
from tuner.kernels.cpu.program.pointwise_depthwise import (FUSED_KIND, POINTWISE_DEPTHWISE,
                                                           fuse_pointwise_depthwise)
from tuner.kernels.cpu.program.spec import Layout
from tuner.kernels.cpu.program.workloads import workload_of
from tuner.rewrites.network import set_child


@dataclass(frozen=True, eq=False)
class BuiltProgram:
    planned: PlannedRegion
    cell: ProgramCell


def _parent(path: str) -> tuple[str, str]:
    return tuple(path.rsplit(".", 1)) if "." in path else ("", path)


def replaced_cells(paths: tuple[str, ...], cells: dict, plan: ProgramPlan) -> list[str]:
    """The cells a region replaces, in order: a container (SequentialCell, CellList) through
    its children that compute something, since its parent may iterate over it instead of
    calling it."""
    replaced = []
    for path in paths:
        cell = cells[path]
        if isinstance(cell, (nn.SequentialCell, nn.CellList)):
            children = [f"{path}.{name}" for name in cell.name_cells()]
            replaced.extend(replaced_cells(tuple(c for c in children if plan.computes(c)),
                                           cells, plan))
        else:
            replaced.append(path)
    return replaced


def build_programs(plan: ProgramPlan, library: Path, layout: Layout,
                   choice_for: ChoiceFor = lambda op, kg: (0, None)) -> list[BuiltProgram]:
    programs = []
    for planned in plan.regions:
        kg, name = fuse_pointwise_depthwise(planned.kernel_graph, choice_for), planned.region.name
        program = emit(kg, layout, choice_for, name)
        cell_name = "network" if planned.region.cells == ("",) else name
        steps = tuple(_step_info(plan, op, kg, choice_for) for op in kg.ops)
        programs.append(BuiltProgram(planned, ProgramCell(library, program.image(), cell_name,
                                                          steps)))
    return programs


def _step_info(plan: ProgramPlan, op, kg, choice_for: ChoiceFor) -> StepInfo:
    layer = plan.graph.nodes[op.nodes[0]].path if op.nodes else ""
    if op.kind == FUSED_KIND:
        convs = [op.attrs[part] for part in ("pointwise", "depthwise", "projection")
                 if op.attrs.get(part) is not None]
        return StepInfo(layer, describe_op(op, kg), POINTWISE_DEPTHWISE,
                        workload_of(op.attrs["depthwise"], kg).key,
                        sum(workload_of(conv, kg).flops for conv in convs))
    if op.kind not in HEAVY_KINDS:
        return StepInfo(layer, describe_op(op, kg))
    _, hand = choice_for(op, kg)
    kernel = hand.kernel if hand and hand.kernel != POINTWISE_DEPTHWISE else "onednn"
    workload = workload_of(op, kg)
    return StepInfo(layer, describe_op(op, kg), kernel, workload.key, workload.flops)


def install(net: nn.Cell, plan: ProgramPlan, programs: list[BuiltProgram]) -> nn.Cell:
    """Each program's region of ``net`` replaced by its cell (a region of several cells: the
    first by the program, the others by identities); returns the top-level cell to run (the
    program itself when the whole network is one)."""
    _, _, cells = cell_tree(net)
    top = net
    for program in programs:
        region = program.planned.region
        if region.cells == ("",):
            top = program.cell
            program.cell.replaces = ("",)
            continue
        replaced = replaced_cells(region.cells, cells, plan)
        program.cell.replaces = tuple(replaced)
        parent, child = _parent(replaced[0])
        set_child(cells[parent], child, program.cell)
        for other in replaced[1:]:
            parent, child = _parent(other)
            set_child(cells[parent], child, nn.Identity())
    return top

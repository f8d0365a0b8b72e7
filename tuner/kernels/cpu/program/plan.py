"""Planning a network's programs: capture, regions at a granularity, lowering and fusion.

``plan_programs(net, input_shape, limit, excluded)`` reads what the network computes
(tuner.graph.capture), partitions it into regions (tuner.graph.regions) and lowers and fuses
each region into a kernel graph; ``ProgramPlan.explain()`` lists every region with its steps
and every part of the network left builtin with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mindspore import nn

from tuner.graph.capture import Graph, capture
from tuner.graph.regions import CellRegions, Refusal, Region
from tuner.kernels.cpu.program.fusion import fuse
from tuner.kernels.cpu.program.kernel_graph import HEAVY_KINDS, KernelGraph, KOp
from tuner.kernels.cpu.program.lowering import Unsupported, lower_region, unsupported_reason


@dataclass(frozen=True)
class PlannedRegion:
    region: Region
    kernel_graph: KernelGraph


@dataclass(frozen=True)
class ProgramPlan:
    graph: Graph
    regions: tuple[PlannedRegion, ...]
    refusals: tuple[Refusal, ...]

    def computes(self, path: str) -> bool:
        """Whether any captured operation belongs to the cell at ``path``."""
        prefix = path + "."
        return any(n.path == path or n.path.startswith(prefix) for n in self.graph.nodes)

    def explain(self, kernel_of=None) -> str:
        """Each program with its steps (the layer each computes, what was fused into it, the
        kernel of its heavy ops: ``kernel_of(op, kg)``), then each part left builtin and why."""
        lines = []
        covered = set()
        for planned in self.regions:
            kg = planned.kernel_graph
            covered.update(planned.region.nodes)
            lines.append(f"program {planned.region.name}: {len(kg.ops)} steps for "
                         f"{len(planned.region.nodes)} operations, {planned.region.heavy} heavy")
            for op in kg.ops:
                layer = self.graph.nodes[op.nodes[0]].path if op.nodes else ""
                kernel = f"  [{kernel_of(op, kg)}]" if kernel_of and op.kind in HEAVY_KINDS else ""
                lines.append(f"  {layer or '<network>'}: {describe_op(op, kg)}{kernel}")
        for refusal in self.refusals:
            lines.append(f"builtin {refusal.path or '<network>'}: {refusal.reason}")
        left = sorted({n.path for n in self.graph.nodes if n.id not in covered})
        if left:
            lines.append(f"builtin layers ({len(left)}): {', '.join(p or '<network>' for p in left)}")
        return "\n".join(lines)


def describe_op(op: KOp, kg: KernelGraph) -> str:
    """``conv(+batchnorm) -> relu [1x64x56x56]``: the op, what was folded into it, its
    post-ops, its result's shape."""
    shape = "x".join(map(str, kg.shapes[op.out.id]))
    folded = [f for f in op.fused if f in ("batchnorm", "bias", "pad", "sigmoid*x")]
    fused = f"(+{'+'.join(folded)})" if folded else ""
    posts = "".join(f" -> {p.alg.name.lower()}" for p in op.posts)
    alg = f" {op.attrs['alg'].name.lower()}" if op.kind in ("eltwise", "binary", "pool") else ""
    return f"{op.kind}{alg}{fused}{posts} [{shape}]"


def cell_tree(net: nn.Cell) -> tuple[list[str], dict[str, list[str]], dict[str, nn.Cell]]:
    cells = dict(net.cells_and_names())
    children = {path: [f"{path}.{name}" if path else name for name in cell.name_cells()]
                for path, cell in cells.items()}
    return list(cells), children, cells


def parameter_lookup(net: nn.Cell):
    params = net.parameters_dict()

    def lookup(name: str) -> np.ndarray:
        if name not in params:
            raise Unsupported(f"parameter {name} is not one of the network's")
        return params[name].asnumpy()
    return lookup


def plan_programs(net: nn.Cell, input_shape: tuple[int, ...], limit: int | None = None,
                  excluded: tuple[str, ...] = (), graph: Graph | None = None,
                  refused: dict[tuple[str, ...], str] | None = None,
                  unfused: frozenset[str] = frozenset()) -> ProgramPlan:
    """Regions of at most ``limit`` heavy operations (None: no limit), excluded modules left
    builtin; ``graph`` is the captured graph if already known (else captured here);
    ``refused``: regions (by their cells) not to take, with the reason; ``unfused``: fusion
    patterns (tuner.kernels.cpu.program.fusion.FUSION_PATTERNS) not applied."""
    refused = refused or {}
    graph = graph if graph is not None else capture(net, tuple(input_shape))
    paths, children, _ = cell_tree(net)
    parameters = parameter_lookup(net)
    lowered: dict[tuple[str, ...], KernelGraph] = {}

    def realizable(region: Region) -> str | None:
        if region.cells in refused:
            return refused[region.cells]
        try:
            lowered[region.cells] = fuse(lower_region(graph, list(region.nodes), region.source,
                                                      region.output, parameters), unfused)
        except Unsupported as reason:
            return str(reason)
        return None

    finder = CellRegions(graph, paths, children, lambda node: unsupported_reason(node, graph),
                         excluded, realizable)
    regions, refusals = finder.select(limit)
    return ProgramPlan(graph, tuple(PlannedRegion(r, lowered[r.cells]) for r in regions),
                       tuple(refusals))

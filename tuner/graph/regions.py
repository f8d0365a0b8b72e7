"""Which parts of a network can be replaced as a whole, read from its captured graph.

A region is a Cell (all the operations its ``construct`` and its sub-cells create) or a chain
of sibling Cells each of which reads only the previous one's result. A region can be replaced
by one custom cell when it has exactly one input and one output (so that the parent's code,
which calls it, stays valid), when every operation in it is supported, when it is called once
(its weights are read by no other operation) and when no excluded module overlaps it.
``select`` partitions the network into such regions at a granularity: at most ``limit`` heavy
operations (convolutions, matrix products) per region, the largest regions first. Everything
here reads data flow and module paths, never class names.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

from tuner.graph.graph import Graph, GraphInput, Node, NodeOutput, ParamRef, operand_refs

HEAVY_OPS = ("Conv2D", "MatMul", "BatchMatMul")


@dataclass(frozen=True)
class Region:
    """``cells``: the replaced module paths (a chain: the first is replaced, the others become
    identities); ``nodes``: the captured node ids it computes, in execution order."""

    cells: tuple[str, ...]
    nodes: tuple[int, ...]
    source: NodeOutput | GraphInput
    output: NodeOutput
    heavy: int

    @property
    def name(self) -> str:
        if len(self.cells) == 1:
            return self.cells[0] or "<network>"
        return f"{self.cells[0]}..{self.cells[-1].rsplit('.', 1)[-1]}"


@dataclass(frozen=True)
class Refusal:
    """Why the cell at ``path`` is not a region (the cells inside it may still be)."""

    path: str
    reason: str


def _within(path: str, root: str) -> bool:
    return root == "" or path == root or path.startswith(root + ".")


class CellRegions:
    """The candidate regions of a network: ``paths`` in ``cells_and_names()`` order (the root
    is ""); ``children[path]`` its direct sub-cells in declaration order; ``unsupported(node)``
    gives the reason a node cannot be replaced, or None; ``realizable(region)`` (optional) the
    reason a structurally valid region still cannot be built (e.g. a pattern no fusion
    absorbs), or None."""

    def __init__(self, graph: Graph, paths: list[str], children: dict[str, list[str]],
                 unsupported: Callable[[Node], str | None], excluded: Iterable[str] = (),
                 realizable: Callable[[Region], str | None] | None = None):
        self.graph = graph
        self.realizable = realizable
        self.paths = paths
        self.children = children
        self.excluded = tuple(excluded)
        self.unsupported = unsupported
        known = set(paths)
        self.nodes_of: dict[str, list[int]] = {p: [] for p in paths}
        for node in graph.nodes:
            path = node.path
            while path not in known and path:
                path = path.rsplit(".", 1)[0] if "." in path else ""
            for ancestor in paths:
                if _within(path, ancestor):
                    self.nodes_of[ancestor].append(node.id)
        self.users = graph.consumers()
        self.weight_uses: dict[str, int] = {}
        for node in graph.nodes:
            for operand in node.inputs:
                if isinstance(operand, ParamRef):
                    self.weight_uses[operand.name] = self.weight_uses.get(operand.name, 0) + 1
        self._cache: dict[tuple[str, ...], Region | Refusal] = {}

    # -- one candidate --------------------------------------------------------------------
    def _boundary(self, ids: set[int]):
        sources, outputs = set(), set()
        for node_id in ids:
            for operand in self.graph.nodes[node_id].inputs:
                if isinstance(operand, GraphInput):
                    sources.add(operand)
                for ref in operand_refs(operand):
                    if ref.node not in ids:
                        sources.add(ref)
        graph_output = set(operand_refs(self.graph.output))
        for node_id in ids:
            node = self.graph.nodes[node_id]
            for index in range(max(len(node.shapes), 1)):
                ref = NodeOutput(node_id, index)
                if ref in graph_output or any(u not in ids for u in self.users.get(ref, [])):
                    outputs.add(ref)
        return sources, outputs

    def _region(self, cells: tuple[str, ...], ids: list[int]) -> Region | Refusal:
        where = cells[0] if len(cells) == 1 else f"{cells[0]}..{cells[-1]}"
        for path in cells:
            for excluded in self.excluded:
                if _within(excluded, path) or _within(path, excluded):
                    return Refusal(where, f"overlaps the excluded module {excluded}")
        if not ids:
            return Refusal(where, "computes nothing")
        for node_id in ids:
            node = self.graph.nodes[node_id]
            reason = self.unsupported(node)
            if reason:
                return Refusal(where, f"{node.path or '<network>'}: {reason}")
            if node.op in HEAVY_OPS:
                shared = [o.name for o in node.inputs
                          if isinstance(o, ParamRef) and self.weight_uses.get(o.name, 0) > 1]
                if shared:
                    return Refusal(where, f"{shared[0]} is read by several operations "
                                          "(a module called more than once)")
        sources, outputs = self._boundary(set(ids))
        if len(sources) != 1:
            return Refusal(where, f"reads {len(sources)} values from outside (needs exactly 1)")
        if len(outputs) != 1:
            return Refusal(where, f"its result is {len(outputs)} values (needs exactly 1)")
        heavy = sum(self.graph.nodes[i].op in HEAVY_OPS for i in ids)
        region = Region(cells, tuple(sorted(ids)), next(iter(sources)), next(iter(outputs)), heavy)
        reason = self.realizable(region) if self.realizable and heavy else None
        return Refusal(where, reason) if reason else region

    def region(self, path: str) -> Region | Refusal:
        key = (path,)
        if key not in self._cache:
            self._cache[key] = self._region(key, self.nodes_of.get(path, []))
        return self._cache[key]

    def _linked(self, first: Region, second: Region) -> bool:
        readers = self.users.get(first.output, [])
        return second.source == first.output and bool(readers) and all(
            r in second.nodes for r in readers) and first.output not in operand_refs(self.graph.output)

    def _chain(self, run: list[Region]) -> Region | Refusal:
        if len(run) == 1:
            return run[0]
        cells = tuple(c for r in run for c in r.cells)
        ids = sorted({i for r in run for i in r.nodes})
        return self._region(cells, ids)

    # -- a partition ----------------------------------------------------------------------
    def select(self, limit: int | None) -> tuple[list[Region], list[Refusal]]:
        """Regions covering as much of the network as they can with at most ``limit`` heavy
        operations each (None: no limit), and why the cells left out could not be regions."""
        regions: list[Region] = []
        refusals: list[Refusal] = []

        def fits(candidate) -> bool:
            return isinstance(candidate, Region) and (limit is None or candidate.heavy <= limit)

        def flush(run: list[Region]) -> None:
            if not run or sum(r.heavy for r in run) == 0:
                return
            chain = self._chain(run)
            if isinstance(chain, Region):
                regions.append(chain)
            else:  # the chain's members one by one
                regions.extend(r for r in run if r.heavy)

        def visit(path: str) -> None:
            candidate = self.region(path)
            if fits(candidate) and candidate.heavy:
                regions.append(candidate)
                return
            if isinstance(candidate, Refusal) and self.nodes_of.get(path):
                refusals.append(candidate)
            run: list[Region] = []
            for child in self.children.get(path, []):
                if not self.nodes_of.get(child):
                    continue
                found = self.region(child)
                total = sum(r.heavy for r in run) + (found.heavy if isinstance(found, Region) else 0)
                if fits(found) and run and self._linked(run[-1], found) \
                        and (limit is None or total <= limit):
                    run.append(found)
                    continue
                flush(run)
                run = []
                if fits(found):
                    run = [found]
                else:
                    visit(child)
            flush(run)

        visit("")
        return regions, refusals

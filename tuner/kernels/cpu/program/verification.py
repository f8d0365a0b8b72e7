"""Each program checked against the untuned cells it replaces, on a random input.

The untuned outputs are computed once per region (``compute_references``, in an untuned
process, so that no trial setting reaches MindSpore's own operators) and kept in a directory,
named by the region's cells, its input shape and the seed of the input.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from mindspore import Tensor, nn

from tuner.graph.graph import GraphInput
from tuner.graph.regions import Region
from tuner.kernels.base import VerifyResult
from tuner.kernels.cpu.program.apply import BuiltProgram, replaced_cells
from tuner.kernels.cpu.program.plan import ProgramPlan, cell_tree


class _Chain(nn.Cell):
    """The untuned cells of a region, applied one after the other."""

    def __init__(self, cells: list[nn.Cell]):
        super().__init__()
        self.chain = nn.CellList(cells)

    def construct(self, x):
        for cell in self.chain:
            x = cell(x)
        return x


def source_shape(plan: ProgramPlan, region: Region) -> tuple[int, ...]:
    source = region.source
    if isinstance(source, GraphInput):
        return plan.graph.input_shapes[source.index]
    node = plan.graph.nodes[source.node]
    return node.shapes[source.index] if len(node.shapes) > source.index else node.shape


def reference_path(directory: Path, plan: ProgramPlan, region: Region, seed: int) -> Path:
    text = json.dumps([list(region.cells), list(source_shape(plan, region)), seed])
    return Path(directory) / f"region-{hashlib.sha256(text.encode()).hexdigest()[:24]}.npy"


def region_input(plan: ProgramPlan, region: Region, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(source_shape(plan, region)).astype(np.float32)


def untuned(net: nn.Cell, plan: ProgramPlan, region: Region) -> nn.Cell:
    if region.cells == ("",):
        return net
    _, _, cells = cell_tree(net)
    return _Chain([cells[p] for p in replaced_cells(region.cells, cells, plan)])


def compute_references(net: nn.Cell, plan: ProgramPlan, directory: Path, seed: int) -> int:
    """The untuned output of every planned region not in ``directory`` yet; how many."""
    computed = 0
    for planned in plan.regions:
        path = reference_path(directory, plan, planned.region, seed)
        if path.exists():
            continue
        x = Tensor(region_input(plan, planned.region, seed))
        expected = untuned(net, plan, planned.region)(x).asnumpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(temporary, expected)
        os.replace(temporary, path)
        computed += 1
    return computed


def missing_references(plan: ProgramPlan, directory: Path, seed: int) -> int:
    return sum(not reference_path(directory, plan, p.region, seed).exists() for p in plan.regions)


def check_programs(plan: ProgramPlan, programs: list[BuiltProgram], directory: Path, seed: int,
                   rel_tolerance: float, compare) -> tuple[str, VerifyResult] | None:
    """The first program whose output differs from its reference: (region name, result)."""
    for program in programs:
        region = program.planned.region
        path = reference_path(directory, plan, region, seed)
        if not path.exists():
            return region.name, VerifyResult(False, float("inf"), float("inf"),
                                             "no reference output was computed")
        actual = program.cell(Tensor(region_input(plan, region, seed))).asnumpy()
        result = compare(actual, np.load(path), rel_tolerance)
        if not result.ok:
            return region.name, result
    return None

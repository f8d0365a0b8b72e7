"""Regions: cells (or chains of sibling cells) with one input and one output, partitioned at
a granularity, with the reasons for what is left out."""
import mindspore as ms
import pytest

from tests.fixtures.tiny_models import tiny_net
from tuner.graph.capture import capture
from tuner.graph.regions import CellRegions, Refusal, Region
from tuner.kernels.cpu.program.plan import cell_tree


@pytest.fixture(scope="module")
def tiny():
    ms.set_context(mode=ms.GRAPH_MODE)
    net = tiny_net()
    return net, capture(net, (2, 3, 16, 16))


def regions(tiny, unsupported=lambda node: None, excluded=()):
    net, graph = tiny
    paths, children, _ = cell_tree(net)
    return CellRegions(graph, paths, children, unsupported, excluded)


def test_the_whole_network_when_nothing_bounds_it(tiny):
    found, refused = regions(tiny).select(None)
    assert [r.cells for r in found] == [("",)] and found[0].heavy == 8 and not refused


def test_granularity_bounds_the_heavy_operations_per_region(tiny):
    found, _ = regions(tiny).select(2)
    assert [r.name for r in found] == ["stem", "stage1", "stage2", "stage3..flatten", "head"]
    assert all(r.heavy <= 2 for r in found)
    layers, _ = regions(tiny).select(1)
    # inside a block: conv and its BatchNorm, chained; the block's ReLU is called twice
    assert [r.cells for r in layers if r.cells[0].startswith("stage1")] == [
        ("stage1.conv1", "stage1.bn1"), ("stage1.conv2", "stage1.bn2")]


def test_a_region_has_one_input_and_one_output(tiny):
    finder = regions(tiny)
    relu = finder.region("stage1.relu")
    assert isinstance(relu, Refusal) and "reads 2 values" in relu.reason
    block = finder.region("stage1")
    assert isinstance(block, Region) and block.heavy == 2


def test_excluded_modules_and_unsupported_operations_are_refused_with_reasons(tiny):
    found, refused = regions(tiny, excluded=("stage2",)).select(None)
    assert "stage2" not in {c for r in found for c in r.cells}
    assert any("excluded module stage2" in r.reason for r in refused)
    found, refused = regions(tiny, unsupported=lambda n: "no" if n.op == "Add" else None).select(None)
    assert any(r.reason.endswith(": no") for r in refused)
    assert "stem" in {c for r in found for c in r.cells}

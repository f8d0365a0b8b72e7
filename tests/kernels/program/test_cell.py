"""A program cell called from Python: a network that is one program runs without MindSpore's
graph executor, gives what its custom operator gives inside a graph, and leaves every other call
to the graph."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from tests.fixtures.tiny_models import Calling, TinyNet, randomize_batchnorm
from tuner.config import ProgramConfig, TuningConfig
from tuner.kernels.cpu.program.cell import ProgramCell
from tuner.kernels.cpu.program.program_runtime import timings
from tuner.rewrites.network import GraphNetwork, TunedNetwork

SHAPE = (2, 3, 16, 16)


def _input(shape=SHAPE, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


@pytest.fixture
def program(library) -> ProgramCell:
    ms.set_seed(0)
    net = randomize_batchnorm(TinyNet())
    net.set_train(False)
    cell = library.apply(net, TuningConfig(programs=ProgramConfig("network")), SHAPE)
    assert isinstance(cell, ProgramCell)
    return cell


def _calls(cell: ProgramCell) -> int:
    found = timings(cell.library, cell.spec_words)
    return found.calls if found else 0


@pytest.mark.parametrize("top", [TunedNetwork, GraphNetwork])
@pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE])
def test_a_network_that_is_one_program_skips_the_graph_and_gives_the_operators_result(
        program, top, mode, monkeypatch):
    x = _input()
    expected = Calling(program)(x).asnumpy()  # its custom operator, in a compiled graph

    def no_graph(self, x):
        raise AssertionError("the program cell's construct ran")

    monkeypatch.setattr(ProgramCell, "construct", no_graph)
    previous = ms.get_context("mode")
    ms.set_context(mode=mode)
    try:
        net = top(program)
        before = _calls(program)
        outputs = [net(x) for _ in range(3)]
    finally:
        ms.set_context(mode=previous)
    assert all(type(y) is Tensor and y.shape == expected.shape for y in outputs)  # noqa: E721
    for y in outputs:
        np.testing.assert_allclose(y.asnumpy(), expected, rtol=1e-6, atol=1e-6)
    assert outputs[0].asnumpy().ctypes.data != outputs[1].asnumpy().ctypes.data  # new tensors
    assert _calls(program) == before + 3
    assert net._compiled_phases == {}  # pylint: disable=protected-access  (no graph compiled)


def test_other_calls_are_left_to_the_graph(program):
    x = _input()
    assert program.call_directly(x, x) is None
    assert program.call_directly(_input((1, 3, 16, 16))) is None
    assert program.call_directly(_input(dtype=np.float16)) is None
    assert program.call_directly(x.asnumpy()) is None
    assert program.call_directly(x) is not None


def test_it_reads_the_constants_at_each_call(program):
    x = _input()
    first = program.call_directly(x).asnumpy()
    program.constants.set_data(Tensor(program.constants.asnumpy() * 0.5))
    changed = program.call_directly(x).asnumpy()
    assert not np.allclose(changed, first)
    np.testing.assert_allclose(changed, Calling(program)(x).asnumpy(), rtol=1e-6, atol=1e-6)


def test_a_failing_program_raises_the_runtimes_reason(program):
    program.spec_words = np.array([1, 2, 3], np.int64)
    with pytest.raises(RuntimeError, match="program network: not a program spec"):
        program.call_directly(_input())

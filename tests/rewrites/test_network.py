import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from tests.fixtures.tiny_models import TinyNet  # noqa: E402
from tuner.rewrites import network  # noqa: E402
from tuner.rewrites.network import GraphNetwork, TunedNetwork  # noqa: E402


@pytest.fixture
def graph_mode():
    previous = ms.get_context("mode")
    ms.set_context(mode=ms.GRAPH_MODE)
    yield
    ms.set_context(mode=previous)


def _input(shape, seed=0):
    return ms.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("top", [TunedNetwork, GraphNetwork])
def test_repeated_calls_skip_cell_call_and_give_the_same_result(graph_mode, monkeypatch, top):
    ms.set_seed(0)
    net = top(TinyNet())
    net.set_train(False)
    x = _input((2, 3, 16, 16))
    first = net(x).asnumpy()
    slow_calls = []
    original = ms.nn.Cell.__call__
    monkeypatch.setattr(ms.nn.Cell, "__call__",
                        lambda self, *a, **k: slow_calls.append(self) or original(self, *a, **k))
    again = net(x).asnumpy()
    other = net(_input((2, 3, 16, 16), seed=1)).asnumpy()
    assert net not in slow_calls  # both went to the graph executor directly
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    monkeypatch.setattr(ms.nn.Cell, "__call__", original)
    np.testing.assert_array_equal(net(_input((2, 3, 16, 16), seed=1)).asnumpy(), other)


def test_a_new_input_shape_compiles_its_own_graph(graph_mode):
    ms.set_seed(0)
    net = TunedNetwork(TinyNet())
    net.set_train(False)
    small, large = _input((1, 3, 16, 16)), _input((3, 3, 24, 24))
    assert net(small).shape[0] == 1
    assert net(large).shape[0] == 3
    assert net(small).shape[0] == 1
    assert len(net._compiled_phases) == 2  # pylint: disable=protected-access


def test_pynative_and_keyword_calls_take_cell_call(graph_mode):
    x = _input((1, 3, 16, 16))
    assert network._call_key((x,), {"y": 1}) is None  # pylint: disable=protected-access
    assert network._call_key((x, x), {}) is None  # pylint: disable=protected-access
    assert network._call_key((x,), {}) is not None  # pylint: disable=protected-access
    ms.set_context(mode=ms.PYNATIVE_MODE)
    assert network._call_key((x,), {}) is None  # pylint: disable=protected-access

"""The networks a study measures: BatchNorm statistics random as a trained network's, from the
study's seed, so that every folded bias is nonzero."""
import mindspore as ms
import numpy as np
from mindspore import nn

from tests.fixtures.tiny_models import tiny_net
from tuner.models import randomize_normalization
from tuner.runner.request import WEIGHTS_FILE

STATISTICS = ("moving_mean", "moving_variance", "gamma", "beta")


def _net():
    return nn.SequentialCell([nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Dense(4, 2),
                              nn.BatchNorm1d(2)])


def _statistics(net):
    return {name: param.asnumpy().copy() for name, param in net.parameters_and_names()
            if name.endswith(STATISTICS)}


def test_batchnorm_statistics_are_random_repeatable_and_in_range():
    first, again = (_statistics(randomize_normalization(_net(), 7)) for _ in range(2))
    other = _statistics(randomize_normalization(_net(), 8))
    assert len(first) == 8  # four of each of the two BatchNorm layers
    for name, values in first.items():
        assert np.array_equal(values, again[name]) and not np.array_equal(values, other[name])
        if name.endswith(("moving_variance", "gamma")):
            assert ((0.8 <= values) & (values <= 1.25)).all() and len(set(values)) > 1
        else:
            assert (values != 0).all() and np.abs(values).max() < 1.0


def test_a_study_prepares_its_network_with_them(tiny_assets):
    """(The tiny net's factory gives its BatchNorms statistics of its own; the study's seed,
    0 by default, replaces them.)"""
    saved = ms.load_checkpoint(str(tiny_assets / WEIGHTS_FILE))
    expected = _statistics(randomize_normalization(tiny_net(), 0))
    assert expected and all(np.array_equal(saved[name].asnumpy(), values)
                            for name, values in expected.items())

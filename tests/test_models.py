"""The networks a study measures: BatchNorm statistics random as a trained network's, from the
study's seed, so that every folded bias is nonzero; a user's ``package.module:factory`` is a
function or class of that module returning a Cell, imported from where it was found."""
import sys

import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from tests.fixtures.tiny_models import tiny_net
from tuner.errors import UsageError
from tuner.models import (check_model_name, create_model, model_import_root,
                          randomize_normalization)
from tuner.trial.request import WEIGHTS_FILE

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


FACTORIES = """
from mindspore import nn
from os import getcwd
from tempfile import mkdtemp as imported

VALUE = 3


def not_a_cell():
    return [1, 2]


def a_cell():
    return nn.Dense(2, 2)


class ACell(nn.Cell):
    def construct(self, x):
        return x
"""


@pytest.fixture
def factories(tmp_path, monkeypatch):
    """A package ``userpkg.nets`` under tmp_path, importable."""
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text("")
    (tmp_path / "userpkg" / "nets.py").write_text(FACTORIES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [name for name in sys.modules if name.split(".")[0] == "userpkg"]:
        del sys.modules[name]  # the next test's userpkg is another directory's


@pytest.mark.parametrize("name", ["userpkg.nets:a_cell", "userpkg.nets:ACell"])
def test_a_function_or_class_of_the_module_returning_a_cell_is_a_model(factories, name):
    check_model_name(name)
    assert isinstance(create_model(name), nn.Cell)


@pytest.mark.parametrize("name, reason", [
    ("userpkg.nets:not_a_cell", "the factory returned list, not a MindSpore Cell"),
    ("userpkg.nets:getcwd", "module 'userpkg.nets' has no function 'getcwd'"),
    ("userpkg.nets:imported", "'imported' is not defined in 'userpkg.nets' (it comes from 'tempfile')"),
    ("userpkg.nets:VALUE", "module 'userpkg.nets' has no function 'VALUE'"),
    ("userpkg.nets:missing", "module 'userpkg.nets' has no function 'missing'"),
    ("userpkg.nowhere:f", "cannot import module 'userpkg.nowhere'"),
    ("userpkg.nets:a_cell()", "not package.module:factory"),
])
def test_anything_else_is_refused_in_one_line(factories, name, reason):
    with pytest.raises(UsageError) as error:
        create_model(name)
    message = str(error.value)
    assert message.startswith(f"--model {name}: ") and reason in message and "\n" not in message


@pytest.mark.parametrize("name, depth", [("userpkg.nets:a_cell", 0), ("userpkg:f", 0),
                                         ("tests.fixtures.tiny_models:tiny_net", None)])
def test_a_factorys_import_root_is_where_its_top_package_was_found(factories, name, depth):
    from tests.conftest import REPO

    assert model_import_root(name) == (factories if depth == 0 else REPO)


def test_a_mindcv_name_or_an_unknown_module_has_no_import_root():
    assert model_import_root("resnet50") is None
    assert model_import_root("no_such_module_anywhere:f") is None

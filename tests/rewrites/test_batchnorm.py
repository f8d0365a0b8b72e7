import numpy as np
import pytest

ms = pytest.importorskip("mindspore")

from tests.fixtures.tiny_models import TinyNet, randomize_batchnorm  # noqa: E402
from tuner.rewrites.batchnorm import conv_batchnorm_pairs, fold_batchnorms  # noqa: E402


def _forward(net, x):
    net.set_train(False)
    return net(x).asnumpy()


@pytest.mark.parametrize("under, folded", [((), 7), (("stage2",), 2), (("stem", "stage3"), 3)])
def test_folding_is_exact_and_scoped(under, folded):
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(0)
    net = randomize_batchnorm(TinyNet())
    x = ms.Tensor(np.random.default_rng(1).standard_normal((3, 3, 17, 13)).astype(np.float32))
    before = _forward(net, x)
    assert len(list(conv_batchnorm_pairs(net))) == 7
    paths = fold_batchnorms(net, under=under)
    assert len(paths) == folded
    assert all(any(p == m or p.startswith(m + ".") for m in under) for p in paths) or not under
    assert len(list(conv_batchnorm_pairs(net))) == 7 - folded
    after = _forward(net, x)
    assert np.abs(after - before).max() <= 1e-5 * np.abs(before).max()

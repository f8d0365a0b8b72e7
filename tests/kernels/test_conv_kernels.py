"""Each kernel against MindSpore's builtin nn.Conv2d (+bias +residual +activation)."""
import numpy as np
import pytest

from tests.conftest import needs_avx512
from tuner.kernels import ConvWorkload

pytestmark = needs_avx512

DENSE, DEPTHWISE = "conv2d_dense", "conv2d_depthwise"

DENSE_VARIANTS = [
    {},  # YAML defaults
    {"oc_register_block": 14, "spatial_vectors": 2, "reduction_block": 64, "spatial_block": 64,
     "oc_cache_block": 32, "loop_order": "m_outer", "unroll": 1, "balance_tasks": False,
     "direct_output": False},
    {"oc_register_block": 4, "spatial_vectors": 4, "reduction_block": 512, "spatial_block": 1024,
     "oc_cache_block": 2048, "unroll": 8},
    {"oc_register_block": 6, "spatial_vectors": 1, "reduction_block": 128, "spatial_block": 128,
     "direct_pointwise": False},
]

# (batch, in_ch, height, width, out_ch, kernel, stride, padding)
DENSE_SHAPES = [
    (3, 5, 9, 13, 19, (3, 3), (1, 1), (1, 1, 1, 1)),     # odd everything, 3x3/1
    (2, 17, 11, 10, 33, (3, 3), (2, 2), (1, 1, 1, 1)),   # 3x3/2, even width
    (1, 3, 23, 21, 8, (7, 7), (2, 2), (3, 3, 3, 3)),     # 7x7/2 stem-like
    (2, 20, 9, 7, 40, (1, 1), (1, 1), (0, 0, 0, 0)),     # 1x1/1
    (3, 12, 9, 11, 24, (1, 1), (2, 2), (0, 0, 0, 0)),    # 1x1/2, odd input
    (3, 20, 16, 20, 40, (1, 1), (1, 1), (0, 0, 0, 0)),   # 1x1/1: in-place and packed blocks
    (2, 6, 8, 12, 10, (3, 3), (2, 1), (0, 1, 2, 0)),     # asymmetric stride and padding
    (1, 9, 6, 5, 7, (2, 3), (1, 2), (1, 0, 0, 1)),       # non-square kernel
    (2, 4, 13, 14, 6, (3, 3), (3, 3), (1, 1, 1, 1)),     # stride 3 (generic packing path)
]
EPILOGUES = [("none", False), ("relu", False), ("relu6", False), ("relu", True), ("none", True)]


def _dense(shape, activation="none", residual=False):
    n, c, h, w, o, k, s, p = shape
    return ConvWorkload(n, c, o, h, w, k, s, p, has_residual=residual, activation=activation)


@pytest.mark.parametrize("shape", DENSE_SHAPES, ids=lambda s: _dense(s).key)
def test_dense_shapes_strides_paddings(library, shape):
    result = library.verify(_dense(shape, "relu6", True), {}, kernel=DENSE)
    assert result.ok, result.message
    assert result.max_rel_error < 1e-5


@pytest.mark.parametrize("activation,residual", EPILOGUES)
def test_dense_epilogues(library, activation, residual):
    result = library.verify(_dense(DENSE_SHAPES[0], activation, residual), {}, kernel=DENSE)
    assert result.ok, result.message


@pytest.mark.parametrize("variant", DENSE_VARIANTS[1:], ids=["small_blocks", "big_blocks", "mr6_nv1"])
@pytest.mark.parametrize("shape", [DENSE_SHAPES[1], DENSE_SHAPES[4], DENSE_SHAPES[5],
                                   (2, 70, 15, 17, 50, (3, 3), (1, 1), (1, 1, 1, 1))])
def test_dense_tiling_variants(library, variant, shape):
    # 70*9 = 630 reduction rows cross several reduction blocks; 50 channels several oc blocks
    result = library.verify(_dense(shape, "relu", True), variant, kernel=DENSE)
    assert result.ok, result.message


# (batch, channels, height, width, kernel, stride, padding)
DEPTHWISE_SHAPES = [
    (3, 5, 9, 13, (3, 3), (1, 1), (1, 1, 1, 1)),
    (2, 17, 11, 10, (3, 3), (2, 2), (1, 1, 1, 1)),
    (2, 7, 8, 9, (3, 3), (2, 2), (0, 1, 0, 1)),
    (1, 20, 37, 35, (3, 3), (1, 1), (1, 1, 1, 1)),   # wider than one 16-lane vector
    (2, 4, 23, 40, (5, 5), (2, 2), (2, 2, 2, 2)),
    (1, 3, 7, 9, (3, 3), (1, 1), (0, 0, 0, 0)),
    (1, 5, 13, 14, (3, 3), (3, 3), (1, 1, 1, 1)),    # stride 3 (generic phase split)
]


def _depthwise(shape, activation="none", residual=False):
    n, c, h, w, k, s, p = shape
    return ConvWorkload(n, c, c, h, w, k, s, p, groups=c, has_residual=residual,
                        activation=activation)


@pytest.mark.parametrize("shape", DEPTHWISE_SHAPES, ids=lambda s: _depthwise(s).key)
def test_depthwise_shapes(library, shape):
    result = library.verify(_depthwise(shape, "relu6"), {}, kernel=DEPTHWISE)
    assert result.ok, result.message


@pytest.mark.parametrize("activation,residual", EPILOGUES)
def test_depthwise_epilogues(library, activation, residual):
    result = library.verify(_depthwise(DEPTHWISE_SHAPES[1], activation, residual), {},
                            kernel=DEPTHWISE)
    assert result.ok, result.message


@pytest.mark.parametrize("variant", [{"ow_vectors": 1, "oh_rows": 4}, {"ow_vectors": 4, "oh_rows": 2}])
@pytest.mark.parametrize("shape", [DEPTHWISE_SHAPES[1], DEPTHWISE_SHAPES[3]])
def test_depthwise_tiling_variants(library, variant, shape):
    result = library.verify(_depthwise(shape, "relu"), variant, kernel=DEPTHWISE)
    assert result.ok, result.message


def test_verify_reports_a_mismatch(library):
    """A loose/strict tolerance changes the verdict: the error is measured, not assumed."""
    workload = _dense(DENSE_SHAPES[0], "none", False)
    strict = library.verify(workload, {}, rel_tolerance=0.0)
    assert strict.max_rel_error > 0.0 and not strict.ok and not strict.build_failed
    assert "rel error" in strict.message


def test_verification_keeps_the_builtin_output_per_workload(library, tmp_path):
    workload = _dense(DENSE_SHAPES[0], "relu", True)
    first = library.verify(workload, {}, reference_dir=tmp_path)
    kept = list(tmp_path.glob("*.npy"))
    assert first.ok and len(kept) == 1
    np.save(kept[0], np.zeros_like(np.load(kept[0])))  # a wrong kept reference is noticed
    second = library.verify(workload, {"unroll": 2}, reference_dir=tmp_path)
    assert not second.ok and list(tmp_path.glob("*.npy")) == kept
    other = library.verify(_dense(DENSE_SHAPES[0], "none", False), {}, reference_dir=tmp_path)
    assert other.ok and len(list(tmp_path.glob("*.npy"))) == 2  # epilogue is part of the key

import pytest

from tuner.kernels import ConvWorkload, UnsupportedDeviceError, has_kernels, kernel_library
from tuner.kernels.cpu import CpuKernelLibrary


def test_key_is_readable_and_ignores_the_epilogue():
    plain = ConvWorkload("dense", 16, 64, 256, 56, 56, (1, 1), (1, 1), (0, 0, 0, 0))
    fused = ConvWorkload("dense", 16, 64, 256, 56, 56, (1, 1), (1, 1), (0, 0, 0, 0), True, "relu")
    assert plain.key == "dense_n16_c64_h56_w56_o256_k1x1_s1_p0"
    assert fused.key == plain.key
    odd = ConvWorkload("dense", 3, 5, 7, 9, 13, (3, 3), (2, 1), (1, 0, 2, 1))
    assert odd.key == "dense_n3_c5_h9_w13_o7_k3x3_s2x1_p1_0_2_1"


def test_output_size_and_flops():
    stem = ConvWorkload("dense", 2, 3, 64, 224, 224, (7, 7), (2, 2), (3, 3, 3, 3))
    assert stem.output_shape == (2, 64, 112, 112)
    assert stem.flops == 2 * 2 * 64 * 112 * 112 * 3 * 49
    dw = ConvWorkload("depthwise", 1, 32, 32, 112, 112, (3, 3), (2, 2), (1, 1, 1, 1))
    assert dw.output_shape == (1, 32, 56, 56)
    assert dw.flops == 2 * 32 * 56 * 56 * 9
    assert dw.kernel_name == "conv2d_depthwise"


def test_supported_by_custom():
    assert ConvWorkload("dense", 1, 3, 8, 5, 5, (3, 3), (1, 1), (1, 1, 1, 1)).supported_by_custom
    assert not ConvWorkload("dense", 1, 3, 8, 2, 2, (5, 5), (1, 1), (0, 0, 0, 0)).supported_by_custom
    assert not ConvWorkload("depthwise", 1, 4, 4, 9, 9, (9, 9), (1, 1), (4, 4, 4, 4)).supported_by_custom
    with pytest.raises(ValueError):
        ConvWorkload("depthwise", 1, 4, 8, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1))


def test_registry():
    assert isinstance(kernel_library("CPU"), CpuKernelLibrary)
    assert has_kernels("CPU") and not has_kernels("Ascend") and not has_kernels("GPU")
    with pytest.raises(UnsupportedDeviceError, match="device Ascend .needs Ascend C.; available: CPU"):
        kernel_library("Ascend")
    with pytest.raises(ValueError, match="device GPU"):
        kernel_library("GPU")


def test_workload_round_trips_through_json():
    import json

    w = ConvWorkload("dense", 3, 16, 32, 17, 13, (3, 1), (2, 1), (1, 1, 0, 0), True, "relu6")
    assert ConvWorkload.from_dict(json.loads(json.dumps(w.to_dict()))) == w

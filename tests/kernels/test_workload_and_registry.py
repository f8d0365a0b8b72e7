import json

import pytest

from tuner.backends import get_backend, kernel_library
from tuner.kernels import (ConvWorkload, MatMulWorkload, UnsupportedDeviceError, WorkloadGroup,
                           workload_from_dict)
from tuner.kernels.cpu import CpuKernelLibrary


def test_key_is_readable_and_ignores_the_epilogue():
    plain = ConvWorkload(16, 64, 256, 56, 56, (1, 1), (1, 1), (0, 0, 0, 0))
    fused = ConvWorkload(16, 64, 256, 56, 56, (1, 1), (1, 1), (0, 0, 0, 0),
                         has_residual=True, activation="relu")
    assert plain.key == "dense_n16_c64_h56_w56_o256_k1x1_s1_p0"
    assert fused.key == plain.key
    assert plain.batchless_key == "dense_c64_h56_w56_o256_k1x1_s1_p0"
    odd = ConvWorkload(3, 5, 7, 9, 13, (3, 3), (2, 1), (1, 0, 2, 1))
    assert odd.key == "dense_n3_c5_h9_w13_o7_k3x3_s2x1_p1_0_2_1"
    grouped = ConvWorkload(1, 64, 64, 28, 28, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2), groups=4)
    assert grouped.key == "grouped_n1_c64_h28_w28_o64_k3x3_s1_p2_d2x2_g4"
    assert MatMulWorkload((), 16, 2048, 1000).key == "matmul_m16_k2048_n1000"
    assert MatMulWorkload((1, 12), 50, 64, 50, False).key == "matmul_b1x12_m50_k64_n50_act"


def test_output_size_and_flops():
    stem = ConvWorkload(2, 3, 64, 224, 224, (7, 7), (2, 2), (3, 3, 3, 3))
    assert stem.output_shape == (2, 64, 112, 112)
    assert stem.flops == 2 * 2 * 64 * 112 * 112 * 3 * 49
    dw = ConvWorkload(1, 32, 32, 112, 112, (3, 3), (2, 2), (1, 1, 1, 1), groups=32)
    assert dw.output_shape == (1, 32, 56, 56) and dw.kind == "depthwise"
    assert dw.flops == 2 * 32 * 56 * 56 * 9
    multiplier = ConvWorkload(1, 32, 64, 8, 8, (5, 5), (1, 1), (2, 2, 2, 2), groups=32)
    assert multiplier.kind == "depthwise" and multiplier.flops == 2 * 64 * 64 * 25
    dilated = ConvWorkload(1, 8, 8, 10, 10, (3, 3), (1, 1), (0, 0, 0, 0), (2, 2))
    assert dilated.output_shape == (1, 8, 6, 6)
    assert MatMulWorkload((2, 3), 5, 7, 11).flops == 2 * 6 * 5 * 7 * 11
    with pytest.raises(ValueError, match="groups"):
        ConvWorkload(1, 4, 6, 9, 9, (3, 3), (1, 1), (1, 1, 1, 1), groups=4)


@pytest.mark.parametrize("workload", [
    ConvWorkload(3, 16, 32, 17, 13, (3, 1), (2, 1), (1, 1, 0, 0), (1, 2), 2, True, "relu6"),
    MatMulWorkload((1, 12), 50, 64, 50, False),
])
def test_workloads_and_groups_round_trip_through_json(workload):
    assert workload_from_dict(json.loads(json.dumps(workload.to_dict()))) == workload
    group = WorkloadGroup(workload, ("a.b", "c"), ("onednn",))
    assert WorkloadGroup.from_dict(json.loads(json.dumps(group.to_dict()))) == group
    with pytest.raises(ValueError):
        workload_from_dict({**workload.to_dict(), "nonsense": 1})
    with pytest.raises(ValueError):
        workload_from_dict({"op": "pooling"})


def test_each_backend_owns_its_kernel_library():
    assert isinstance(kernel_library("CPU"), CpuKernelLibrary)
    assert get_backend("CPU").has_kernels
    assert not get_backend("Ascend").has_kernels and not get_backend("GPU").has_kernels
    with pytest.raises(UnsupportedDeviceError, match="device Ascend .needs Ascend C kernels."):
        kernel_library("Ascend")
    with pytest.raises(UnsupportedDeviceError, match="device GPU .needs CUDA kernels."):
        kernel_library("GPU")


def test_the_library_reads_the_parameter_file_it_is_given(tmp_path):
    path = tmp_path / "kernels.yaml"
    path.write_text("onednn:\n  source: program/program.cpp\n  runtime_params: true\n"
                    "  params: {impl: {type: int, low: 0, high: 5, default: 3}}\n")
    library = kernel_library("CPU", path)
    assert list(library.spaces) == ["onednn"] and library.space("onednn").defaults() == {"impl": 3}

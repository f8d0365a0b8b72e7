"""The kernel library of a device without custom kernels (tuner.kernels.no_kernels)."""
import pytest

from tuner.config import KernelChoice, TuningConfig
from tuner.errors import UnsupportedDeviceError
from tuner.kernels import ConvWorkload, WorkloadGroup
from tuner.kernels.no_kernels import NoKernelLibrary

WORKLOAD = ConvWorkload(1, 8, 8, 6, 6, (3, 3), (1, 1), (1, 1, 1, 1))


def test_it_runs_a_configuration_without_programs_and_refuses_one_with_them():
    library = NoKernelLibrary("GPU", "needs CUDA kernels")
    net = object()
    assert library.apply(net, TuningConfig(), (1, 8, 6, 6)) is net
    with pytest.raises(UnsupportedDeviceError, match="device GPU .needs CUDA kernels."):
        library.apply(net, TuningConfig.from_knobs({"programs.granularity": "network"}),
                      (1, 8, 6, 6))
    assert not library.build("conv2d_dense", {}).ok
    assert library.verify(WORKLOAD, {}).build_failed


def test_its_trial_hooks_check_only_that_choices_name_known_workloads(tmp_path):
    library = NoKernelLibrary("Ascend", "needs Ascend C kernels")
    choice = KernelChoice(WORKLOAD.key, "conv2d_dense", ())
    config = TuningConfig(kernels=(choice,))
    known = {WORKLOAD.key: WorkloadGroup(WORKLOAD, ("conv",), ("onednn",))}
    library.prepare_trial(config, tmp_path)
    assert library.check_choices(config, known, "net at (1, 8, 6, 6)", tmp_path) is None
    unknown = library.check_choices(config, {}, "net at (1, 8, 6, 6)", tmp_path)
    assert not unknown.wrong_result
    assert unknown.message == f"kernels: {WORKLOAD.key} is not a workload of net at (1, 8, 6, 6)"

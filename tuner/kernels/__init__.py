"""Kernel libraries: per device, what runs the network's heavy operations instead of
MindSpore's own operators (CPU: programs of oneDNN primitives and the hand-written C++ kernels
under kernels/cpu, run through ops.Custom aot), and their tunable parameter spaces. Entry
point: ``tuner.backends.kernel_library(device)``, the device backend's own library.

Importing this package does not import MindSpore (the study's own process never does); the
names that need it are loaded on first use.
"""
from importlib import import_module
from tuner.errors import UnsupportedDeviceError
from tuner.kernels.build import BuildResult, build_variant, cache_dir
from tuner.kernels.param_space import (DEFAULT_SPACE_PATH, KernelParam, KernelSpace,
                                       load_kernel_space)
from tuner.kernels.workload import (ConvWorkload, MatMulWorkload, WorkloadGroup,
                                    workload_from_dict)

_NEEDS_MINDSPORE = {"DEFAULT_REL_TOLERANCE", "KernelBuildError", "KernelLibrary", "VerifyResult",
                    "VerificationError"}


def __getattr__(name: str):
    if name in _NEEDS_MINDSPORE:
        return getattr(import_module("tuner.kernels.base"), name)
    raise AttributeError(f"module 'tuner.kernels' has no attribute {name!r}")


__all__ = [
    "BuildResult", "ConvWorkload", "DEFAULT_REL_TOLERANCE", "DEFAULT_SPACE_PATH",
    "KernelBuildError", "KernelLibrary", "KernelParam", "KernelSpace", "MatMulWorkload",
    "UnsupportedDeviceError", "VerificationError", "VerifyResult", "WorkloadGroup",
    "build_variant", "cache_dir", "load_kernel_space", "workload_from_dict",
]

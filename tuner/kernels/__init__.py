"""Custom convolution kernels (C++ under kernels/cpu, run through ops.Custom aot) and their
tunable parameter spaces. Entry point: ``kernel_library(device)``."""
from tuner.kernels.base import (DEFAULT_REL_TOLERANCE, KernelBuildError, KernelLibrary,
                                VerifyResult, WorkloadGroup)
from tuner.kernels.build import BuildResult, build_variant, cache_dir
from tuner.kernels.registry import UnsupportedDeviceError, has_kernels, kernel_library
from tuner.kernels.space import DEFAULT_SPACE_PATH, KernelParam, KernelSpace, load_kernel_space
from tuner.kernels.workload import ConvWorkload

__all__ = [
    "BuildResult", "ConvWorkload", "DEFAULT_REL_TOLERANCE", "DEFAULT_SPACE_PATH",
    "KernelBuildError", "KernelLibrary", "KernelParam", "KernelSpace", "UnsupportedDeviceError",
    "VerifyResult", "WorkloadGroup", "build_variant", "cache_dir", "has_kernels",
    "kernel_library", "load_kernel_space",
]

"""Custom convolution kernels (C++ under kernels/cpu, run through ops.Custom aot) and their
tunable parameter spaces. Entry point: ``kernel_library(device)``.

Importing this package does not import MindSpore (the study's own process never does); the
names that need it are loaded on first use.
"""
from importlib import import_module

from tuner.kernels.build import BuildResult, build_variant, cache_dir
from tuner.kernels.registry import UnsupportedDeviceError, has_kernels, kernel_library
from tuner.kernels.space import DEFAULT_SPACE_PATH, KernelParam, KernelSpace, load_kernel_space
from tuner.kernels.workload import ConvWorkload

_NEEDS_MINDSPORE = {"DEFAULT_REL_TOLERANCE", "KernelBuildError", "KernelLibrary", "VerifyResult",
                    "WorkloadGroup"}


def __getattr__(name: str):
    if name in _NEEDS_MINDSPORE:
        return getattr(import_module("tuner.kernels.base"), name)
    raise AttributeError(f"module 'tuner.kernels' has no attribute {name!r}")


__all__ = [
    "BuildResult", "ConvWorkload", "DEFAULT_REL_TOLERANCE", "DEFAULT_SPACE_PATH",
    "KernelBuildError", "KernelLibrary", "KernelParam", "KernelSpace", "UnsupportedDeviceError",
    "VerifyResult", "WorkloadGroup", "build_variant", "cache_dir", "has_kernels",
    "kernel_library", "load_kernel_space",
]

"""Custom-kernel libraries by MindSpore device name."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuner.kernels.base import KernelLibrary

_IMPLEMENTED = ("CPU",)
_NEEDS = {"Ascend": "needs Ascend C", "GPU": "needs CUDA kernels"}


class UnsupportedDeviceError(ValueError):
    """No custom-kernel library exists for the requested device."""


def has_kernels(device: str) -> bool:
    return device in _IMPLEMENTED


def unsupported_reason(device: str) -> str:
    """Why ``device`` has no custom kernels (one line)."""
    return (f"custom kernels are not implemented for device {device} "
            f"({_NEEDS.get(device, 'unknown device')}); available: {', '.join(_IMPLEMENTED)}")


def kernel_library(device: str) -> "KernelLibrary":
    if device == "CPU":
        from tuner.kernels.cpu.library import CpuKernelLibrary

        return CpuKernelLibrary()
    raise UnsupportedDeviceError(unsupported_reason(device))

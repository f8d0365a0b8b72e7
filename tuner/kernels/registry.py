"""Custom-kernel libraries by MindSpore device name."""
from __future__ import annotations

from tuner.kernels.base import KernelLibrary

_IMPLEMENTED = ("CPU",)
_NEEDS = {"Ascend": "needs Ascend C", "GPU": "needs CUDA kernels"}


class UnsupportedDeviceError(ValueError):
    """No custom-kernel library exists for the requested device."""


def has_kernels(device: str) -> bool:
    return device in _IMPLEMENTED


def kernel_library(device: str) -> KernelLibrary:
    if device == "CPU":
        from tuner.kernels.cpu.library import CpuKernelLibrary

        return CpuKernelLibrary()
    reason = _NEEDS.get(device, "unknown device")
    raise UnsupportedDeviceError(
        f"custom kernels are not implemented for device {device} ({reason}); "
        f"available: {', '.join(_IMPLEMENTED)}"
    )

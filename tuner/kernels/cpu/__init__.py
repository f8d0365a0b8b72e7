"""The CPU custom-kernel library (``CpuKernelLibrary``)."""
from tuner.kernels.cpu.library import CpuKernelLibrary

__all__ = ["CpuKernelLibrary"]

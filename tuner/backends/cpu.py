"""The CPU backend: always available, the one that is complete and tested here; its kernel
library runs programs of oneDNN primitives and hand-written AVX-512 kernels."""
from pathlib import Path

from tuner.backends.base import Backend, register_backend


@register_backend
class CpuBackend(Backend):
    name = "CPU"
    kernels_missing = None

    def unavailable_reason(self) -> str | None:
        return None

    def plugin_problem(self, ms) -> str | None:
        return None  # built into MindSpore

    def kernel_library(self, params_file: Path | str | None = None):
        from tuner.kernels.cpu.library import CpuKernelLibrary

        return CpuKernelLibrary() if params_file is None else CpuKernelLibrary(params_file)

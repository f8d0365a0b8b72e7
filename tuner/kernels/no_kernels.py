"""The kernel library of a device that has none of its own (here Ascend and GPU): its trials run
through it as through any other library, every trial hook doing nothing (tuner.kernels.base);
asked for custom kernels, it says in one line what the device would need."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from mindspore import nn

from tuner.errors import UnsupportedDeviceError
from tuner.kernels.base import DEFAULT_REL_TOLERANCE, KernelLibrary, VerifyResult
from tuner.kernels.build import BuildResult
from tuner.kernels.workload import ConvWorkload, WorkloadGroup


class NoKernelLibrary(KernelLibrary):
    """No custom kernel on ``device``; ``missing`` says what it would need (the backend's
    ``kernels_missing``), and is the library's ``unavailable_reason``."""

    def __init__(self, device: str, missing: str):
        self.device = device
        self.missing = missing

    def _refusal(self) -> str:
        return f"custom kernels are not implemented for device {self.device} ({self.missing})"

    def unavailable_reason(self) -> str | None:
        return self.missing

    def find_workloads(self, net: nn.Cell, input_shape: tuple[int, ...],
                       graph: Any = None) -> list[WorkloadGroup]:
        return []

    def build(self, kernel_name: str, params: Mapping[str, Any]) -> BuildResult:
        return BuildResult(False, None, self._refusal(), 0.0, False)

    def verify(self, workload: ConvWorkload, params: Mapping[str, Any],
               rel_tolerance: float = DEFAULT_REL_TOLERANCE, seed: int = 0,
               kernel: str | None = None, reference_dir: Path | None = None) -> VerifyResult:
        return VerifyResult(False, float("inf"), float("inf"), self._refusal(), build_failed=True)

    def apply(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
              graph: Any = None, verify_in: Path | None = None, seed: int = 0,
              rel_tolerance: float = DEFAULT_REL_TOLERANCE) -> nn.Cell:
        """``net`` itself for a configuration without programs; UnsupportedDeviceError for
        one with them."""
        if config.programs.enabled or config.kernels:
            raise UnsupportedDeviceError(self._refusal())
        return net

    def explain(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                graph: Any = None) -> str:
        return f"{self._refusal()}: every layer is MindSpore's own"

"""The interface every device's custom-kernel library implements.

Rules for implementations:
  * ``find_workloads`` reports only layers the library can run; anything else (dilation,
    unsupported group counts, other dtypes or layouts) is silently left out and stays builtin.
  * ``build`` never raises for a compiler failure: it returns ``BuildResult(ok=False, error=...)``.
    Invalid parameters (not in the kernel's YAML space) are usage errors: ValueError.
  * ``verify`` compares a variant with MindSpore's own operators on random inputs and reports
    the result as a record; a failed build is ``VerifyResult(ok=False)``, not an exception.
  * ``apply`` rewrites only the workloads present in ``choices`` (others stay builtin), mutates
    the given network's sub-cells and returns a NEW top-level cell to compile (an already
    compiled top cell would reuse its old graph). A needed build that fails raises
    ``KernelBuildError`` carrying the compiler's message.
  * A custom result is never reported as faster unless its output matched the reference.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mindspore import nn

from tuner.kernels.build import BuildResult
from tuner.kernels.workload import ConvWorkload

DEFAULT_REL_TOLERANCE = 1e-4


class KernelBuildError(RuntimeError):
    """A kernel variant needed by ``apply`` failed to compile; ``compiler_message`` says why."""

    def __init__(self, kernel_name: str, params: Mapping[str, Any], compiler_message: str):
        super().__init__(f"building {kernel_name} {dict(params)} failed:\n{compiler_message}")
        self.kernel_name = kernel_name
        self.params = dict(params)
        self.compiler_message = compiler_message


@dataclass(frozen=True)
class WorkloadGroup:
    """A workload and the network layers (``cells_and_names`` paths) that share it.

    Layers share a group when their workload ``key`` is equal, i.e. they differ at most in
    their fused epilogue; ``workload`` carries the epilogue of the first layer (in network
    order). One tuning choice per key applies to all of them.
    """

    workload: ConvWorkload
    layer_paths: tuple[str, ...]


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    max_abs_error: float
    max_rel_error: float  # max|custom - reference| / max|reference|
    message: str
    build_failed: bool = False  # the variant did not compile (else: it ran, output compared)


class KernelLibrary(ABC):
    device: str

    @abstractmethod
    def find_workloads(self, net: nn.Cell, input_shape: tuple[int, ...]) -> list[WorkloadGroup]:
        """The supported convolution workloads of ``net`` for an input of ``input_shape``."""

    @abstractmethod
    def build(self, kernel_name: str, params: Mapping[str, Any]) -> BuildResult:
        """Compile (or fetch from the cache) one variant of a kernel."""

    @abstractmethod
    def verify(self, workload: ConvWorkload, params: Mapping[str, Any],
               rel_tolerance: float = DEFAULT_REL_TOLERANCE, seed: int = 0,
               kernel: str | None = None, reference_dir: Path | None = None) -> VerifyResult:
        """Check a variant of ``kernel`` (default: the workload's default kernel) against
        MindSpore's builtin operators on random inputs (drawn from ``seed``); the builtin
        outputs may be kept in ``reference_dir`` for later variants of the same workload."""

    @abstractmethod
    def apply(self, net: nn.Cell, choices: Mapping[str, Mapping[str, Any]],
              input_shape: tuple[int, ...], kernels: Mapping[str, str] | None = None) -> nn.Cell:
        """Replace the chosen workloads' layers by custom cells; return a new top-level cell.
        ``kernels`` names the kernel of a workload (default: the workload's default kernel)."""

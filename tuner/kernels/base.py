"""The interface every device's kernel library implements.

Rules for implementations:
  * ``unavailable_reason`` is cheap after its first call and never raises: None when the
    library can run here, else one sentence saying what is missing.
  * ``find_workloads`` reports the workloads (tuner.kernels.workload) of the operations the
    library can run, each with the kernels that can run all of its layers, default first;
    anything else stays MindSpore's own operators.
  * ``build`` never raises for a compiler failure: it returns ``BuildResult(ok=False, error=...)``.
    Invalid parameters (not in the kernel's YAML space) are usage errors: ValueError.
  * ``verify`` compares a hand-written kernel variant with MindSpore's own operators on random
    inputs and reports the result as a record; a failed build is ``VerifyResult(ok=False)``,
    not an exception. ``verify_programs`` does the same for every replaced region of a
    configuration, against the untuned cells' outputs that ``reference_outputs`` computed (in
    an untuned process) and kept in a directory.
  * ``apply`` mutates the given network's sub-cells as the configuration says and returns a
    NEW top-level cell to compile (an already compiled top cell would reuse its old graph). A
    needed build that fails raises ``KernelBuildError`` carrying the compiler's message.
  * ``explain`` lists, for a configuration, every replaced region with what it runs and every
    part of the network left to MindSpore with the reason.
  * A custom result is never reported as faster unless its output matched the reference.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from mindspore import nn

from tuner.kernels.build import BuildResult
from tuner.kernels.workload import ConvWorkload, WorkloadGroup

DEFAULT_REL_TOLERANCE = 1e-4


class KernelBuildError(RuntimeError):
    """A kernel variant needed by ``apply`` failed to compile; ``compiler_message`` says why."""

    def __init__(self, kernel_name: str, params: Mapping[str, Any], compiler_message: str):
        super().__init__(f"building {kernel_name} {dict(params)} failed:\n{compiler_message}")
        self.kernel_name = kernel_name
        self.params = dict(params)
        self.compiler_message = compiler_message


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
    def unavailable_reason(self) -> str | None:
        """None when the library can run here, else why not (one line)."""

    @abstractmethod
    def find_workloads(self, net: nn.Cell, input_shape: tuple[int, ...],
                       graph: Any = None) -> list[WorkloadGroup]:
        """The workloads of ``net`` for an input of ``input_shape`` (``graph``: its captured
        graph, if known)."""

    @abstractmethod
    def build(self, kernel_name: str, params: Mapping[str, Any]) -> BuildResult:
        """Compile (or fetch from the cache) one variant of a kernel."""

    @abstractmethod
    def verify(self, workload: ConvWorkload, params: Mapping[str, Any],
               rel_tolerance: float = DEFAULT_REL_TOLERANCE, seed: int = 0,
               kernel: str | None = None, reference_dir: Path | None = None) -> VerifyResult:
        """Check a variant of ``kernel`` against MindSpore's builtin operators on random inputs
        (drawn from ``seed``); the builtin outputs may be kept in ``reference_dir``."""

    @abstractmethod
    def reference_outputs(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                          directory: Path, seed: int = 0, graph: Any = None) -> int:
        """Run the untuned cells of every region ``config`` replaces on random inputs (from
        ``seed``) and keep their outputs in ``directory``; returns how many were computed."""

    @abstractmethod
    def missing_references(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                           directory: Path, seed: int = 0, graph: Any = None) -> int:
        """How many of ``config``'s regions have no reference output in ``directory``."""

    @abstractmethod
    def apply(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
              graph: Any = None, verify_in: Path | None = None, seed: int = 0,
              rel_tolerance: float = DEFAULT_REL_TOLERANCE) -> nn.Cell:
        """``net`` rewritten as ``config`` says; a new top-level cell. With ``verify_in`` (a
        reference directory), every replaced region is first compared with its reference
        output and a mismatch raises ``VerificationError`` naming the region."""

    @abstractmethod
    def explain(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                graph: Any = None) -> str:
        """What ``config`` makes of each part of the network, in lines."""


class VerificationError(RuntimeError):
    """A replaced region's output differs from MindSpore's; ``result`` has the figures."""

    def __init__(self, where: str, result: "VerifyResult"):
        super().__init__(f"{where}: {result.message}")
        self.where = where
        self.result = result

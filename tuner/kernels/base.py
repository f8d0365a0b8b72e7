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
  * A trial process (tuner.runner.worker) reaches the library only through its trial hooks
    (``prepare_study``, ``prepare_trial``, ``check_choices``, ``prepared_inputs``, the reference
    methods, ``reset_timers``, ``workload_times``, ``expand_profile``, ``write_call_trace``), in
    that order of a trial's steps. Their defaults are those of a library without custom kernels
    (tuner.kernels.no_kernels): no workloads, nothing to build, check, reference or time. Their
    ``assets`` is the study's assets directory, shared by all of its trial processes: what a
    library keeps there at the study's prepare step (untuned) or in a references process, its
    trials read. They never raise for a failure of the variant they check: it is a record.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from mindspore import nn

from tuner.kernels.build import BuildResult
from tuner.kernels.workload import ConvWorkload, Workload, WorkloadGroup

if TYPE_CHECKING:
    from tuner.config import KernelChoice

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


@dataclass(frozen=True)
class WorkloadSurvey:
    """What a study's prepare step found for the kernel choices: the workloads of its network
    (each with the kernels that can run it), or why there can be none (``unavailable``)."""

    groups: tuple[WorkloadGroup, ...] = ()
    unavailable: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The entries it fills in the study's model.json (tuner.trial.request)."""
        if self.unavailable is not None:
            return {"workloads": [], "kernels_unavailable": self.unavailable}
        return {"workloads": [group.to_dict() for group in self.groups]}


@dataclass(frozen=True)
class Rejection:
    """Why a kernel choice is not measured: it ran and its output differed from MindSpore's
    (``wrong_result``), or it could not be used at all (not built, no such workload)."""

    message: str
    wrong_result: bool = False


@dataclass(frozen=True)
class PreparedInputs:
    """What a trial passes to ``apply`` and to the reference methods, from the study's assets:
    the captured graph of the untuned network (None: captured anew), the directory of the
    untuned outputs that replaced regions are checked against (None: nothing is checked) and
    the seed of the inputs they were computed on."""

    graph: Any = None
    references: Path | None = None
    seed: int = 0


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

    # -- a trial's hooks (see the rules above) ----------------------------------------------
    def prepare_study(self, net: nn.Cell, input_shape: tuple[int, ...],
                      assets: Path) -> WorkloadSurvey:
        """At the study's prepare step, in its untuned process: the workloads of ``net`` the
        search draws kernel choices for, keeping in ``assets`` what the trials will read; a
        missing prerequisite is the survey's ``unavailable``, never an exception. By default:
        none, for ``unavailable_reason``."""
        return WorkloadSurvey(unavailable=self.unavailable_reason())

    def prepare_trial(self, config: Any, assets: Path) -> None:
        """Before a trial rewrites its network: make ready what ``config`` chooses (e.g. build
        its kernel variants at once); a failure is reported where the variant is used
        (``check_choice``, ``apply``). By default: nothing to make."""

    def check_choices(self, config: Any, workloads: Mapping[str, WorkloadGroup], network: str,
                      assets: Path) -> Rejection | None:
        """The first of ``config``'s kernel choices that must not be measured, and why (None:
        all may): a choice for none of ``workloads`` (the prepare step's, by key; ``network``
        names the model and its input shape), or one ``check_choice`` rejects."""
        for choice in config.kernels:
            if choice.workload not in workloads:
                return Rejection(f"kernels: {choice.workload} is not a workload of {network}")
            rejection = self.check_choice(choice, workloads[choice.workload].workload, assets)
            if rejection is not None:
                return Rejection(f"custom kernel for {choice.workload} {dict(choice.params)} "
                                 f"rejected before measuring: {rejection.message}",
                                 rejection.wrong_result)
        return None

    def check_choice(self, choice: "KernelChoice", workload: Workload,
                     assets: Path) -> Rejection | None:
        """Why ``choice`` (for ``workload``, one the prepare step found) must not be measured,
        or None; verdicts may be kept in ``assets``. By default: nothing to check."""
        return None

    def prepared_inputs(self, config: Any, assets: Path) -> PreparedInputs:
        """What ``config``'s trial passes to ``apply`` and to the reference methods. By
        default: nothing kept, nothing checked."""
        return PreparedInputs()

    def reference_outputs(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                          directory: Path, seed: int = 0, graph: Any = None) -> int:
        """Run the untuned cells of every region ``config`` replaces on random inputs (from
        ``seed``) and keep their outputs in ``directory``; returns how many were computed. By
        default: no region is replaced, 0."""
        return 0

    def missing_references(self, net: nn.Cell, config: Any, input_shape: tuple[int, ...],
                           directory: Path, seed: int = 0, graph: Any = None) -> int:
        """How many of ``config``'s regions have no reference output in ``directory``. By
        default: 0."""
        return 0

    def reset_timers(self, network: nn.Cell) -> None:
        """Start the own timings of ``network``'s custom operators again (before the runs a
        trial times or profiles). By default: none to reset."""

    def workload_times(self, network: nn.Cell) -> dict[str, float]:
        """Workload key -> milliseconds per inference its custom operators spent on it since
        ``reset_timers``. By default: empty (none timed)."""
        return {}

    def expand_profile(self, operators: Sequence[Any], network: nn.Cell) -> tuple[Any, ...]:
        """The profiler's rows of ``network`` (tuner.profiling.operator_times.OperatorTime) with
        each custom operator broken down into its parts (and operators the profiler did not see
        added). By default: as they are."""
        return tuple(operators)

    def write_call_trace(self, path: Path, network: nn.Cell, starts: Sequence[float],
                         durations: Sequence[float]) -> str:
        """A Chrome trace in ``path`` of profiled inferences whose custom operators ran outside
        MindSpore's graph (its profiler traced nothing; ``starts``, ``durations``: seconds);
        ``path``, or "" if none ran so. By default: ""."""
        return ""


class VerificationError(RuntimeError):
    """A replaced region's output differs from MindSpore's; ``result`` has the figures."""

    def __init__(self, where: str, result: "VerifyResult"):
        super().__init__(f"{where}: {result.message}")
        self.where = where
        self.result = result

"""The CPU kernel library: programs (regions of the network as one custom operator each, see
tuner.kernels.cpu.program) whose convolutions and matrix products run oneDNN's primitives or
the hand-written AVX-512 kernels of kernels/cpu, as each workload's choice says."""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from mindspore import Tensor, nn

from tuner.config import KernelChoice, TuningConfig
from tuner.graph.graph import Graph
from tuner.kernels.base import (DEFAULT_REL_TOLERANCE, KernelBuildError, KernelLibrary,
                                VerificationError, VerifyResult)
from tuner.kernels.build import BuildResult, build_variant
from tuner.kernels.cpu.cells import BuiltinConvUnit, CustomConv2d
from tuner.kernels.cpu.conv_reference import compare, verification_problem
from tuner.kernels.cpu.packing import WeightLayout
from tuner.kernels.cpu.program import program_runtime, verification
from tuner.kernels.cpu.program.apply import build_programs, install
from tuner.kernels.cpu.program.emit import HandKernel, NativeKernel
from tuner.kernels.cpu.program.kernel_graph import KOp, KernelGraph
from tuner.kernels.cpu.program.plan import ProgramPlan, plan_programs
from tuner.kernels.cpu.program.spec import Layout
from tuner.kernels.cpu.program.workloads import step_epilogue, workload_of
from tuner.kernels.cpu.trial_steps import TrialSteps
from tuner.kernels.param_space import DEFAULT_SPACE_PATH, KernelSpace, load_kernel_space
from tuner.kernels.workload import ConvWorkload, Workload, WorkloadGroup
from tuner.paths import REPO_ROOT

KERNEL_SOURCE_DIR = REPO_ROOT / "kernels" / "cpu"
ONEDNN = "onednn"
ENTRY_POINTS = {"conv2d_dense": "Conv2dDense", "conv2d_depthwise": "Conv2dDepthwise",
                "conv2d_winograd": "Conv2dWinograd"}
# WeightLayout field -> the symbol that reports it, per kernel with a tiling-dependent layout
_LAYOUT_SYMBOLS = {
    "conv2d_dense": {"register_rows": "Conv2dDenseRegisterRows"},
    "conv2d_winograd": {"register_rows": "Conv2dWinogradRegisterRows",
                        "tile_size": "Conv2dWinogradTileSize"},
}
LAYOUTS = {"any": Layout.ANY, "nhwc": Layout.NHWC, "blocked": Layout.BLOCKED}


def weight_layout(kernel_name: str, library: Path) -> WeightLayout:
    """The packed weight layout a built variant expects (its MR, Winograd tile size), asked
    from the library itself."""
    shared_object = ctypes.CDLL(str(library))
    return WeightLayout(kernel_name, **{
        field: int(getattr(shared_object, symbol)())
        for field, symbol in _LAYOUT_SYMBOLS.get(kernel_name, {}).items()})


class CpuKernelLibrary(TrialSteps, KernelLibrary):
    """Programs on CPU, float32. ``cache_dir``: where kernels are built (default:
    ``$TUNER_KERNEL_CACHE`` or ``~/.cache/tuner/kernels``). A choice's missing parameters take
    the YAML defaults; a workload without a choice runs its default kernel's defaults. Kernels
    whose required CPU flags ``flags`` lacks (default: this CPU's) are never offered, and
    building one is a failed build naming the missing flags."""

    device = "CPU"

    def __init__(self, space_path: Path | str = DEFAULT_SPACE_PATH, cache_dir: Path | None = None,
                 flags: frozenset[str] | None = None):
        self.spaces = load_kernel_space(space_path, None if flags is None else frozenset(flags))
        self.cache_dir = cache_dir
        self._last_plan = None

    # -- building -------------------------------------------------------------------------
    def space(self, kernel_name: str) -> KernelSpace:
        if kernel_name not in self.spaces:
            raise ValueError(f"unknown kernel {kernel_name!r}; known: {sorted(self.spaces)}")
        return self.spaces[kernel_name]

    def unsupported_reason(self, kernel_name: str) -> str | None:
        """Why this CPU cannot run a kernel (CPU flags it lacks), or None."""
        return self.space(kernel_name).unsupported_reason()

    def build(self, kernel_name: str, params: Mapping[str, Any]) -> BuildResult:
        space = self.space(kernel_name)
        space.validate(params)
        unsupported = self.unsupported_reason(kernel_name)
        if unsupported:
            return BuildResult(False, None, unsupported, 0.0, False)
        if space.runtime_params:
            return program_runtime.build(self.cache_dir)
        return build_variant(KERNEL_SOURCE_DIR / space.source, space.defines(params), self.cache_dir)

    def _built(self, kernel_name: str, params: Mapping[str, Any]) -> tuple[Path, WeightLayout]:
        result = self.build(kernel_name, params)
        if not result.ok:
            raise KernelBuildError(kernel_name, params, result.error)
        return result.library, weight_layout(kernel_name, result.library)

    def unavailable_reason(self) -> str | None:
        return program_runtime.unavailable_reason(self.cache_dir)

    # -- workloads ------------------------------------------------------------------------
    def kernel_names(self, workload: Workload,
                     epilogue: tuple[bool, str] | None = (False, "none")) -> tuple[str, ...]:
        """The kernels that can run ``workload`` with a layer's ``epilogue`` (has_residual,
        activation; None: one that only oneDNN's post-ops fuse), its default one first."""
        return tuple(name for name, space in self.spaces.items()
                     if space.can_run(workload) and space.takes_epilogue(epilogue)
                     and not space.missing_flags())

    def plan(self, net: nn.Cell, input_shape: tuple[int, ...], programs, graph: Graph | None = None,
             refused: dict | None = None) -> ProgramPlan:
        """The programs of ``net`` (the last plan is kept: a trial asks for the same one to
        check its references and then to apply it, until the network is rewritten)."""
        key = (id(net), tuple(input_shape), programs, id(graph),
               tuple(sorted((refused or {}).items())))
        if self._last_plan is None or self._last_plan[0] != key:
            self._last_plan = (key, plan_programs(net, tuple(input_shape), programs.limit,
                                                  programs.excluded_modules, graph, refused,
                                                  frozenset(programs.unfused)))
        return self._last_plan[1]

    def find_workloads(self, net: nn.Cell, input_shape: tuple[int, ...],
                       graph: Graph | None = None) -> list[WorkloadGroup]:
        """The workloads of the heavy ops that programs run at any granularity; a kernel is
        offered for a workload when it can run all of its layers at all granularities."""
        from tuner.config import GRANULARITY_LIMITS, ProgramConfig

        found: dict[str, tuple[Workload, list[str], set[str]]] = {}
        for granularity in GRANULARITY_LIMITS:
            plan = self.plan(net, input_shape, ProgramConfig(granularity=granularity), graph)
            graph = plan.graph
            for planned in plan.regions:
                kg = planned.kernel_graph
                for op in kg.heavy_ops():
                    workload = workload_of(op, kg)
                    kernels = set(self.kernel_names(workload, step_epilogue(op, kg)))
                    layer = _layer_of(op, plan)
                    key = workload.key
                    if key not in found:
                        found[key] = (workload, [], kernels)
                    entry = found[key]
                    if layer not in entry[1]:
                        entry[1].append(layer)
                    entry[2].intersection_update(kernels)
        return [WorkloadGroup(w, tuple(layers), tuple(k for k in self.spaces if k in kernels))
                for w, layers, kernels in found.values()]

    # -- rewriting ------------------------------------------------------------------------
    def apply(self, net: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...],
              graph: Graph | None = None, verify_in: Path | None = None, seed: int = 0,
              rel_tolerance: float = DEFAULT_REL_TOLERANCE) -> nn.Cell:
        """``net`` with its programs, each heavy op on the kernel its workload's choice names;
        a new top-level cell. ValueError for a choice the network has no workload for, or a
        kernel that cannot run its workload."""
        if not config.programs.enabled:
            if config.kernels:
                raise ValueError("kernels: choices given but programs.granularity is off")
            return net
        plan = self.plan(net, input_shape, config.programs, graph)
        choose = self._choices(config, plan)
        library = self._built(ONEDNN, {})[0]
        refused: dict[tuple[str, ...], str] = {}
        for _ in range(MAX_REPLANS):
            programs = build_programs(plan, library, LAYOUTS[config.programs.layout], choose)
            broken = _unbuildable(programs, library)
            if not broken:
                break
            refused.update(broken)  # those regions stay MindSpore's own; the rest is planned anew
            plan = self.plan(net, input_shape, config.programs, plan.graph, refused)
        else:
            raise RuntimeError(f"programs kept failing to build: {sorted(refused.values())[0]}")
        if verify_in is not None:
            failed = verification.check_programs(plan, programs, verify_in, seed, rel_tolerance,
                                                 compare)
            if failed:
                raise VerificationError(f"program {failed[0]}", failed[1])
        self._last_plan = None  # the network is about to change
        return install(net, plan, programs)

    def _choices(self, config: TuningConfig, plan: ProgramPlan):
        """How each heavy op runs: (oneDNN implementation rank, hand-written kernel, kernel of
        the runtime with its parameters, or None for oneDNN).
        With modules excluded, the choices for workloads only they have do not apply (the
        search draws choices for all of the model's workloads); otherwise every choice must be
        for a workload of the programs."""
        choices = {c.workload: c for c in config.kernels}
        present = {workload_of(op, p.kernel_graph).key
                   for p in plan.regions for op in p.kernel_graph.heavy_ops()}
        unknown = sorted(set(choices) - present)
        if unknown and not config.programs.excluded_modules:
            raise ValueError(f"kernels: {unknown[0]} is not a workload of this network's "
                             f"programs")

        def choice_for(op: KOp, kg: KernelGraph) -> tuple[int, HandKernel | NativeKernel | None]:
            workload = workload_of(op, kg)
            choice = choices.get(workload.key)
            kernel = choice.kernel if choice else self.kernel_names(workload)[0]
            params = self.space(kernel).complete(dict(choice.params) if choice else {}, workload)
            if kernel not in self.kernel_names(workload, step_epilogue(op, kg)):
                reason = self.unsupported_reason(kernel) or "cannot run it here"
                raise ValueError(f"kernels.{workload.key}: {reason}")
            if kernel == ONEDNN:
                return int(params["impl"]), None
            if self.space(kernel).runtime_params:
                return 0, NativeKernel(kernel, tuple(sorted(params.items())))
            library, layout = self._built(kernel, params)
            return 0, HandKernel(f"{library}:{ENTRY_POINTS[kernel]}", layout)
        return choice_for

    def reference_outputs(self, net: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...],
                          directory: Path, seed: int = 0, graph: Graph | None = None) -> int:
        if not config.programs.enabled:
            return 0
        plan = self.plan(net, input_shape, config.programs, graph)
        return verification.compute_references(net, plan, directory, seed)

    def missing_references(self, net: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...],
                           directory: Path, seed: int = 0, graph: Graph | None = None) -> int:
        if not config.programs.enabled:
            return 0
        plan = self.plan(net, input_shape, config.programs, graph)
        return verification.missing_references(plan, directory, seed)

    def explain(self, net: nn.Cell, config: TuningConfig, input_shape: tuple[int, ...],
                graph: Graph | None = None) -> str:
        if not config.programs.enabled:
            return "programs are off (programs.granularity: off): every layer is MindSpore's own"
        plan = self.plan(net, input_shape, config.programs, graph)
        choices = {c.workload: c.kernel for c in config.kernels}

        def kernel_of(op: KOp, kg: KernelGraph) -> str:
            workload = workload_of(op, kg)
            name = choices.get(workload.key) or self.kernel_names(workload)[0]
            return f"{name} {workload.key}"
        return plan.explain(kernel_of)

    # -- verification of the hand-written kernels -----------------------------------------
    def verify(self, workload: ConvWorkload, params: Mapping[str, Any],
               rel_tolerance: float = DEFAULT_REL_TOLERANCE, seed: int = 0,
               kernel: str | None = None, reference_dir: Path | None = None) -> VerifyResult:
        """A hand-written kernel against MindSpore's convolution (``kernel``: its name, by
        default the first hand-written kernel that can run the workload; oneDNN's steps are
        verified with their programs)."""
        kernel = kernel or next((k for k in self.kernel_names(workload)
                                 if not self.space(k).runtime_params), None)
        if kernel is None or self.space(kernel).runtime_params:
            raise ValueError(f"{kernel or 'no hand-written kernel'} for {workload.key}: "
                             "verify checks hand-written kernels")
        _, weight, bias, inputs = verification_problem(workload, seed)
        try:
            custom = self.custom_cell(workload, params, weight, bias, kernel)
        except KernelBuildError as error:
            return VerifyResult(False, float("inf"), float("inf"), str(error), build_failed=True)
        expected = self.reference_output(workload, seed, reference_dir)
        actual = custom(*inputs).asnumpy()
        return compare(actual, expected, rel_tolerance)

    def custom_cell(self, workload: ConvWorkload, params: Mapping[str, Any], weight: np.ndarray,
                    bias: np.ndarray, kernel: str) -> CustomConv2d:
        """A hand-written kernel's cell for one workload with the given weight and bias."""
        if kernel not in self.kernel_names(workload):
            raise ValueError(f"kernel {kernel!r} cannot run {workload.key}")
        library, layout = self._built(kernel, params)
        return CustomConv2d(library, layout, ENTRY_POINTS[kernel], weight, bias, workload.stride,
                            workload.padding, workload.activation, workload=workload.key)

    def reference_output(self, workload: ConvWorkload, seed: int = 0,
                         reference_dir: Path | None = None) -> np.ndarray:
        """The builtin operators' output on the verification problem of ``seed``, kept in
        ``reference_dir`` when given (the builtin convolution is the slow part)."""
        path = None
        if reference_dir is not None:
            digest = hashlib.sha256(json.dumps([workload.to_dict(), seed], sort_keys=True).encode())
            path = Path(reference_dir) / f"{digest.hexdigest()[:24]}.npy"
            if path.exists():
                return np.load(path)
        conv, _, _, inputs = verification_problem(workload, seed)
        expected = BuiltinConvUnit(conv, None, workload.activation)(*inputs).asnumpy()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(temporary, expected)
            os.replace(temporary, path)
        return expected


MAX_REPLANS = 8


def _unbuildable(programs, library: Path) -> dict[tuple[str, ...], str]:
    """The programs the runtime cannot build here (e.g. a primitive oneDNN does not implement
    for this machine), each tried once on zeros: region cells -> why."""
    broken = {}
    for program in programs:
        try:
            program.cell(Tensor(np.zeros(program.cell.input_shape, np.float32))).asnumpy()
        except RuntimeError as error:
            reason = program_runtime.last_error(library) or str(error).strip().splitlines()[0]
            broken[program.planned.region.cells] = f"the program runtime cannot run it: {reason}"
    return broken


def _layer_of(op: KOp, plan: ProgramPlan) -> str:
    """The module path of the captured operation an op computes first (its layer)."""
    return plan.graph.nodes[op.nodes[0]].path if op.nodes else ""


__all__ = ["CpuKernelLibrary", "KernelChoice", "weight_layout"]

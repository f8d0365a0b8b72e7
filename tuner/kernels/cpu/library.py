"""The CPU custom-kernel library: AVX-512/OpenMP convolution kernels via ops.Custom(aot)."""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from mindspore import Parameter, Tensor, nn

from tuner.kernels.base import (DEFAULT_REL_TOLERANCE, KernelBuildError, KernelLibrary,
                                VerifyResult, WorkloadGroup)
from tuner.kernels.build import BuildResult, build_variant
from tuner.kernels.cpu.cells import BuiltinConvUnit, CustomConv2d
from tuner.kernels.cpu.packing import WeightLayout
from tuner.rewrites.network import TunedNetwork
from tuner.kernels.cpu.plan import plan_network
from tuner.kernels.cpu.rewrite import rewrite_network
from tuner.kernels.space import DEFAULT_SPACE_PATH, REPO_ROOT, KernelSpace, load_kernel_space
from tuner.kernels.workload import ConvWorkload

KERNEL_SOURCE_DIR = REPO_ROOT / "kernels" / "cpu"
# WeightLayout field -> the symbol that reports it, per kernel with a tiling-dependent layout
_LAYOUT_SYMBOLS = {
    "conv2d_dense": {"register_rows": "Conv2dDenseRegisterRows"},
    "conv2d_winograd": {"register_rows": "Conv2dWinogradRegisterRows",
                        "tile_size": "Conv2dWinogradTileSize"},
}


def weight_layout(kernel_name: str, library: Path) -> WeightLayout:
    """The packed weight layout a built variant expects (its MR, Winograd tile size), asked
    from the library itself."""
    shared_object = ctypes.CDLL(str(library))
    return WeightLayout(kernel_name, **{
        field: int(getattr(shared_object, symbol)())
        for field, symbol in _LAYOUT_SYMBOLS.get(kernel_name, {}).items()})


class CpuKernelLibrary(KernelLibrary):
    """Dense (groups=1) and depthwise float32 NCHW convolutions with fused bias/residual/ReLU(6).

    ``cache_dir``: where variants are built (default: ``$TUNER_KERNEL_CACHE`` or
    ``~/.cache/tuner/kernels``). Parameters missing from a choice take the YAML defaults.
    A workload may be run by several kernels (``ConvWorkload.kernel_names``: dense 3x3
    stride-1 convolutions also by conv2d_winograd); ``kernel`` arguments name the one to use
    (default: the workload's default kernel).
    """

    device = "CPU"

    def __init__(self, space_path: Path | str = DEFAULT_SPACE_PATH, cache_dir: Path | None = None):
        self.spaces = load_kernel_space(space_path)
        self.cache_dir = cache_dir

    # -- building -------------------------------------------------------------------------
    def space(self, kernel_name: str) -> KernelSpace:
        if kernel_name not in self.spaces:
            raise ValueError(f"unknown kernel {kernel_name!r}; known: {sorted(self.spaces)}")
        return self.spaces[kernel_name]

    def build(self, kernel_name: str, params: Mapping[str, Any]) -> BuildResult:
        space = self.space(kernel_name)
        space.validate(params)
        return build_variant(KERNEL_SOURCE_DIR / space.source, space.defines(params), self.cache_dir)

    def _built(self, kernel_name: str, params: Mapping[str, Any]) -> tuple[Path, WeightLayout]:
        result = self.build(kernel_name, params)
        if not result.ok:
            raise KernelBuildError(kernel_name, params, result.error)
        return result.library, weight_layout(kernel_name, result.library)

    def kernel_names(self, workload: ConvWorkload) -> tuple[str, ...]:
        """The kernels of this library that can run ``workload``, its default one first."""
        return tuple(k for k in workload.kernel_names if k in self.spaces)

    def kernel_for(self, workload: ConvWorkload, params: Mapping[str, Any],
                   kernel: str | None = None) -> str:
        """``kernel`` if it can run ``workload`` (else ValueError). Without one: the workload's
        default kernel, unless ``params`` name parameters only an alternative kernel has (for
        callers that pass a choice's parameters without its kernel name)."""
        names = self.kernel_names(workload)
        if kernel is not None:
            if kernel not in names:
                raise ValueError(f"kernel {kernel!r} cannot run {workload.key}; it can: {names}")
            return kernel
        given = set(params)
        fitting = [k for k in names if given <= {p.name for p in self.spaces[k].params}]
        return fitting[0] if fitting else names[0]

    def custom_cell(self, workload: ConvWorkload, params: Mapping[str, Any], weight: np.ndarray,
                    bias: np.ndarray, kernel: str | None = None) -> CustomConv2d:
        """A custom cell for one workload with the given (folded) weight and bias."""
        library, layout = self._built(self.kernel_for(workload, params, kernel), params)
        return CustomConv2d(library, layout, weight, bias, workload.stride, workload.padding,
                            workload.activation, workload=workload.key)

    # -- finding and rewriting ------------------------------------------------------------
    def find_workloads(self, net: nn.Cell, input_shape: tuple[int, ...]) -> list[WorkloadGroup]:
        groups: dict[str, tuple[ConvWorkload, list[str]]] = {}
        for unit in plan_network(net, tuple(input_shape)).units():
            if unit.workload is not None:
                groups.setdefault(unit.workload.key, (unit.workload, []))[1].append(unit.path)
        return [WorkloadGroup(w, tuple(paths)) for w, paths in groups.values()]

    def apply(self, net: nn.Cell, choices: Mapping[str, Mapping[str, Any]],
              input_shape: tuple[int, ...], kernels: Mapping[str, str] | None = None) -> nn.Cell:
        """``choices``: workload key -> parameters; ``kernels``: workload key -> kernel name
        for the workloads not run by their default kernel."""
        kernels = dict(kernels or {})
        plan = plan_network(net, tuple(input_shape))
        workloads = {u.workload.key: u.workload for u in plan.units() if u.workload is not None}
        unknown = sorted(set(choices) - set(workloads))
        if unknown:
            raise ValueError(f"choices name workloads not in this network at {tuple(input_shape)}: "
                             f"{unknown}")
        unchosen = sorted(set(kernels) - set(choices))
        if unchosen:
            raise ValueError(f"kernels name workloads without a choice: {unchosen}")
        libraries = {key: self._built(self.kernel_for(workloads[key], params, kernels.get(key)),
                                      params)
                     for key, params in choices.items()}
        rewrite_network(plan, choices, libraries.__getitem__)
        return TunedNetwork(net)

    # -- verification ---------------------------------------------------------------------
    def verify(self, workload: ConvWorkload, params: Mapping[str, Any],
               rel_tolerance: float = DEFAULT_REL_TOLERANCE, seed: int = 0,
               kernel: str | None = None, reference_dir: Path | None = None) -> VerifyResult:
        _, weight, bias, inputs = verification_problem(workload, seed)
        try:
            custom = self.custom_cell(workload, params, weight, bias, kernel)
        except KernelBuildError as error:
            return VerifyResult(False, float("inf"), float("inf"), str(error), build_failed=True)
        expected = self.reference_output(workload, seed, reference_dir)
        actual = custom(*inputs).asnumpy()
        if actual.shape != expected.shape:
            return VerifyResult(False, float("inf"), float("inf"),
                                f"shape {actual.shape} != reference {expected.shape}")
        abs_error = float(np.max(np.abs(actual - expected)))
        rel_error = abs_error / max(float(np.max(np.abs(expected))), np.finfo(np.float32).tiny)
        ok = bool(np.isfinite(rel_error) and rel_error <= rel_tolerance)
        message = "ok" if ok else f"max rel error {rel_error:.3g} > {rel_tolerance:g}"
        return VerifyResult(ok, abs_error, rel_error, message)

    def reference_output(self, workload: ConvWorkload, seed: int = 0,
                         reference_dir: Path | None = None) -> np.ndarray:
        """The builtin operators' output on the verification problem of ``seed``, kept in
        ``reference_dir`` when given: it depends on the workload and the seed only, and the
        builtin convolution is the slow part (computing them all while preparing a study also
        keeps a trial's graph-kernel settings away from the reference)."""
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


def verification_problem(workload: ConvWorkload, seed: int):
    """(builtin conv with random weights, its weight, its bias, random inputs) from ``seed``."""
    rng = np.random.default_rng(seed)
    conv, weight, bias = random_reference_conv(workload, rng)
    inputs = [Tensor(rng.standard_normal(workload.input_shape).astype(np.float32))]
    if workload.has_residual:
        inputs.append(Tensor(rng.standard_normal(workload.output_shape).astype(np.float32)))
    return conv, weight, bias, inputs


def reference_conv(workload: ConvWorkload) -> nn.Conv2d:
    """MindSpore's builtin convolution for a workload (with bias; weights to be set)."""
    return nn.Conv2d(workload.in_channels, workload.out_channels, workload.kernel,
                     stride=workload.stride, pad_mode="pad", padding=workload.padding,
                     group=workload.in_channels if workload.kind == "depthwise" else 1,
                     has_bias=True)


def random_reference_conv(workload: ConvWorkload,
                          rng: np.random.Generator) -> tuple[nn.Conv2d, np.ndarray, np.ndarray]:
    """The builtin convolution of a workload with random weight (scaled by 1/sqrt(fan-in)) and
    bias, and those arrays (to build the custom cell with the same values)."""
    conv = reference_conv(workload)
    fan_in = conv.weight.shape[1] * workload.kernel[0] * workload.kernel[1]
    weight = (rng.standard_normal(conv.weight.shape) / np.sqrt(fan_in)).astype(np.float32)
    bias = rng.standard_normal(workload.out_channels).astype(np.float32)
    conv.weight = Parameter(Tensor(weight), name="weight")
    conv.bias = Parameter(Tensor(bias), name="bias")
    return conv, weight, bias

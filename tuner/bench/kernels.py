"""The kernels that can run each convolution, measured against each other and MindSpore.

For every convolution workload of the chosen models at 224x224: MindSpore's own layer (its
graph alone), oneDNN's convolution as a program step (its activations in the layout it chose,
the layout conversions around it timed apart, as a program that runs several steps does not
need them), and the best of a small sweep of each hand-written kernel that can run it (called
directly, plain NCHW in and out). Every candidate is checked against MindSpore's output first
(rel error <= 1e-4) and counts only then. GFLOP/s are the convolution's multiply-adds x 2 over
the time (a Winograd kernel's are "effective"); numpy's float32 matmul GFLOP/s, measured in
the same run, is the machine's reference. Then whole networks: untuned, programs with every
workload on oneDNN, and programs with each workload on the kernel that won, images/s.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

IMAGE = 224
TOLERANCE = 1e-4
ONEDNN = "onednn"


@dataclass(frozen=True)
class WorkloadResult:
    model: str
    key: str
    kind: str
    layers: int
    flops: int
    builtin_seconds: float                           # the layer alone as its own graph
    kernel_seconds: dict = field(default_factory=dict)  # kernel -> best verified time
    best_params: dict = field(default_factory=dict)     # kernel -> its best parameters
    reorder_seconds: float = 0.0                     # oneDNN's layout conversions, in and out
    failures: tuple[str, ...] = ()

    @property
    def best_kernel(self) -> str:
        return min(self.kernel_seconds, key=self.kernel_seconds.get) if self.kernel_seconds else ""

    def gflops(self, seconds: float | None) -> float | None:
        return self.flops / seconds / 1e9 if seconds else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--models", nargs="+", default=["resnet50", "mobilenet_v2_100"])
    parser.add_argument("--quick", action="store_true",
                        help="fewer variants and repeats; end to end at the smallest batch only")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end comparison")


def best_time(call: Callable[[], Any], min_repeats: int, budget: float) -> float:
    """Fastest of at least ``min_repeats`` calls (more while within ``budget`` seconds)."""
    times, started = [], time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - started < budget and len(times) < 50):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times)


def numpy_sgemm_gflops(n: int = 2048, repeats: int = 10) -> float:
    """Best of several 2048^3 float32 matmuls."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    a @ a  # warm-up (thread pool start)
    seconds = best_time(lambda: a @ a, repeats, 2.0)
    return 2 * n**3 / seconds / 1e9


def sweep(space, count: int) -> list[dict]:
    """The defaults, then one-parameter-at-a-time neighbours, each valid, at most ``count``."""
    defaults = space.defaults()
    candidates = [defaults]
    for param in space.params:
        for value in param.values():
            candidate = {**defaults, param.name: value}
            if candidate not in candidates and space.is_valid(candidate):
                candidates.append(candidate)
    head, rest = candidates[:1], candidates[1:]
    step = max(1, len(rest) // max(1, count - 1))
    return (head + rest[::step])[:count]


def _onednn_step(library, workload, weight, bias, x, impl: int, quick: bool):
    """(conv seconds, reorder seconds, output) of oneDNN's convolution as one program step."""
    from tuner.kernels.cpu.program import program_runtime
    from tuner.kernels.cpu.program import spec as s

    built = library.build(ONEDNN, {"impl": impl})
    if not built.ok:
        raise RuntimeError(built.error)
    top, bottom, left, right = workload.padding
    posts = {"none": (), "relu": (s.PostOp(s.Alg.RELU),),
             "relu6": (s.PostOp(s.Alg.CLIP, 0.0, 6.0),)}[workload.activation]
    packed, (w_at, b_at) = s.pack_constants([weight, bias])
    values = (s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, workload.input_shape),
              s.ValueDecl(s.Role.CONST, w_at, weight.shape),
              s.ValueDecl(s.Role.CONST, b_at, bias.shape),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, workload.output_shape))
    step = s.Conv(0, 1, 2, 3, workload.groups, workload.stride, (top, left, bottom, right),
                  workload.dilation, impl, posts)
    spec = s.ProgramSpec(int(np.random.default_rng().integers(1, 2**40)), s.Layout.ANY, values,
                         (step,)).encode()
    call = program_runtime.DirectProgram(built.library, spec, [x, packed], workload.output_shape)
    if call() != 0:
        raise RuntimeError("the program failed")
    output = call.output.copy()
    program_runtime.timings(built.library, spec, reset=True)
    best_time(call, 3 if quick else 5, 0.2 if quick else 0.5)
    times = program_runtime.timings(built.library, spec)
    conv = min_per_call(times, "step")
    reorders = min_per_call(times, "reorder")
    return conv, reorders, output


def _native_step(library, kernel: str, workload, weight, bias, inputs, params, quick: bool):
    """(seconds, output) of a kernel the program runtime runs itself (the Winograd step, the GEMM
    step), as a one-step program on channels-last values with the workload's whole epilogue."""
    from tuner.kernels.cpu.program import program_runtime
    from tuner.kernels.cpu.program import spec as s
    from tuner.kernels.cpu.program.emit import native_step, packed_native_weights

    built = library.build(kernel, params)
    if not built.ok:
        raise RuntimeError(built.error)
    x, residual = inputs[0], (inputs[1] if len(inputs) > 1 else None)
    constants = ([packed_native_weights(kernel, params, weight), bias]
                 + ([] if residual is None else [residual]))
    packed, offsets = s.pack_constants(constants)
    values = [s.ValueDecl(s.Role.INPUT, s.INPUT_INDEX, workload.input_shape),
              *(s.ValueDecl(s.Role.CONST, o, a.shape) for o, a in zip(offsets, constants)),
              s.ValueDecl(s.Role.OUTPUT, s.OUTPUT_INDEX, workload.output_shape)]
    top, _, left, _ = workload.padding
    step = native_step(kernel, params, 0, 1, 2, len(values) - 1,
                       None if residual is None else 3, workload.kernel, workload.stride,
                       (top, left), workload.activation)
    spec = s.ProgramSpec(int(np.random.default_rng().integers(1, 2**40)), s.Layout.NHWC,
                         tuple(values), (step,)).encode()
    call = program_runtime.DirectProgram(built.library, spec, [x, packed], workload.output_shape)
    if call() != 0:
        raise RuntimeError(program_runtime.last_error(built.library) or "the program failed")
    output = call.output.copy()
    program_runtime.timings(built.library, spec, reset=True)
    best_time(call, 3 if quick else 5, 0.2 if quick else 0.5)
    return min_per_call(program_runtime.timings(built.library, spec), "step"), output


def min_per_call(times, label: str) -> float:
    """Mean seconds per call of a program's actions with ``label`` (summed)."""
    actions = [a for a in times.actions if a.label == label and a.calls]
    return sum(a.total_us / a.calls for a in actions) / 1e6


def bench_workload(library, model, group, variants: dict[str, list[dict]], quick) -> WorkloadResult:
    """``variants``: kernel name -> parameter sets, for each hand-written kernel."""
    from tuner.kernels import KernelBuildError
    from tuner.kernels.cpu.cells import BuiltinConvUnit
    from tuner.kernels.cpu.direct import DirectKernelCall
    from tuner.kernels.cpu.conv_reference import verification_problem

    w = group.workload
    conv, weight, bias, inputs = verification_problem(w, seed=0)
    builtin = BuiltinConvUnit(conv, None, w.activation)
    builtin.compile(*inputs)
    t0 = time.perf_counter()
    reference = builtin(*inputs).asnumpy()
    builtin_seconds = time.perf_counter() - t0
    scale = max(float(np.abs(reference).max()), 1e-30)
    seconds: dict[str, float] = {}
    params: dict[str, dict] = {}
    failures, reorders = [], 0.0
    x = inputs[0].asnumpy()
    if w.has_residual:  # oneDNN's step: the residual as a post-op is measured in programs
        reference_plain = BuiltinConvUnit(conv, None, w.activation)(inputs[0]).asnumpy()
    else:
        reference_plain = reference
    for impl in (0, 1):
        try:
            onednn, reorder, output = _onednn_step(library, w, weight, bias, x, impl, quick)
        except RuntimeError as error:
            failures.append(f"onednn impl {impl}: {error}")
            continue
        error = float(np.abs(output - reference_plain).max()) / scale
        if not error <= TOLERANCE:
            failures.append(f"mismatch {error:.2g} onednn impl {impl}")
        elif onednn < seconds.get(ONEDNN, float("inf")):
            seconds[ONEDNN], params[ONEDNN], reorders = onednn, {"impl": impl}, reorder
    from tuner.kernels.cpu.program.emit import ONE_CONVOLUTION_KERNELS

    for kernel in (k for k in group.kernels if k in ONE_CONVOLUTION_KERNELS):
        arrays = [t.asnumpy() for t in inputs]
        for variant in variants[kernel]:
            try:
                time_, output = _native_step(library, kernel, w, weight, bias, arrays, variant,
                                             quick)
            except RuntimeError as error:
                failures.append(f"{kernel} {variant}: {error}")
                continue
            error = float(np.abs(output - reference).max()) / scale
            if not error <= TOLERANCE:
                failures.append(f"mismatch {error:.2g} {kernel} {variant}")
            elif time_ < seconds.get(kernel, float("inf")):
                seconds[kernel], params[kernel] = time_, variant
    for kernel in (k for k in group.kernels if not library.space(k).runtime_params):
        for variant in variants[kernel]:
            try:
                cell = library.custom_cell(w, variant, weight, bias, kernel)
            except KernelBuildError as error:
                failures.append(f"build {kernel} {variant}: {str(error).splitlines()[0]}")
                continue
            output = cell(*inputs).asnumpy()
            error = float(np.abs(output - reference).max()) / scale
            if not error <= TOLERANCE:
                failures.append(f"mismatch {error:.2g} {kernel} {variant}")
                continue
            direct = DirectKernelCall(cell, [t.asnumpy() for t in inputs], w.output_shape)
            if direct() != 0 or not np.array_equal(direct.output, output):
                failures.append(f"direct call differs from the graph run {kernel} {variant}")
                continue
            time_ = best_time(direct, 3 if quick else 5, 0.2 if quick else 0.5)
            if time_ < seconds.get(kernel, float("inf")):
                seconds[kernel], params[kernel] = time_, variant
    return WorkloadResult(model, w.key, w.kind, len(group.layers), w.flops, builtin_seconds,
                          seconds, params, reorders, tuple(failures))


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def print_workloads(results: list[WorkloadResult], numpy_gflops: float) -> None:
    print("\nbuiltin: MindSpore's layer alone as a graph; onednn: its convolution as a program "
          "step (reorders: its layout conversions in and out, apart); others: the kernel called "
          "directly, NCHW; ms per call, the best verified variant of each")
    print(f"{'model':16} {'workload':46} {'n':>2} {'builtin':>9} {'onednn':>8} {'reord':>6} "
          f"{'dense':>8} {'winograd':>8} {'wino_nhwc':>9} {'dwise':>8}  {'best':>15} {'GF/s':>5} "
          f"{'/numpy':>6}")
    for r in results:
        k = r.kernel_seconds
        best = k.get(r.best_kernel)
        gf = r.gflops(best)
        print(f"{r.model:16} {r.key:46} {r.layers:>2} {r.builtin_seconds * 1e3:>9.2f} "
              + " ".join(_fmt(k.get(n) and k[n] * 1e3, ">8.3f") for n in (ONEDNN,))
              + f" {r.reorder_seconds * 1e3:>6.3f} "
              + " ".join(_fmt(k.get(n) and k[n] * 1e3, f">{width}.3f") for n, width in
                         (("conv2d_dense", 8), ("conv2d_winograd", 8),
                          ("conv2d_winograd_nhwc", 9), ("conv2d_depthwise", 8)))
              + f"  {r.best_kernel.removeprefix('conv2d_'):>15} {_fmt(gf, '>5.0f')} "
              f"{_fmt(gf and gf / numpy_gflops, '>6.2f')}")
        for failure in r.failures:
            print(f"{'':20}! {failure}")


def summarize(results: list[WorkloadResult], numpy_gflops: float) -> None:
    print(f"\nsummary (numpy float32 matmul: {numpy_gflops:.0f} GFLOP/s)")
    groups: dict[tuple, list[WorkloadResult]] = {}
    for r in results:
        batch = int(r.key.split("_n", 1)[1].split("_", 1)[0])
        groups.setdefault((r.model, batch, r.kind), []).append(r)
    for (model, batch, kind), rs in sorted(groups.items()):
        verified = [r for r in rs if r.kernel_seconds]
        if not verified:
            print(f"{model} b{batch} {kind}: no verified kernel")
            continue
        onednn = [r.gflops(r.kernel_seconds[ONEDNN]) / numpy_gflops for r in verified
                  if ONEDNN in r.kernel_seconds]
        hand_wins = [r for r in verified if r.best_kernel != ONEDNN]
        time_best = sum(r.kernel_seconds[r.best_kernel] * r.layers for r in verified)
        time_onednn = sum(r.kernel_seconds.get(ONEDNN, float("nan")) * r.layers for r in verified)
        print(f"{model} b{batch} {kind}: {len(verified)}/{len(rs)} workloads verified; oneDNN "
              f"GFLOP/s / numpy median {statistics.median(onednn) if onednn else float('nan'):.2f}; "
              "won: " + ", ".join(f"{k.removeprefix('conv2d_')} {n}" for k, n in
                                  sorted(Counter(r.best_kernel for r in verified).items()))
              + f"; all layers on the winners {time_best * 1e3:.2f} ms vs all on oneDNN "
              f"{time_onednn * 1e3:.2f} ms" + (f" ({len(hand_wins)} hand-written wins)"
                                               if hand_wins else ""))


def bench_end_to_end(library, model, batch, winners, quick) -> None:
    import mindcv
    from mindspore import Tensor

    from tuner.config import KernelChoice, ProgramConfig, TuningConfig
    from tuner.rewrites.network import TunedNetwork

    shape = (batch, 3, IMAGE, IMAGE)
    x = Tensor(np.random.default_rng(1).standard_normal(shape).astype(np.float32))
    net = mindcv.create_model(model)
    net.set_train(False)
    untuned = TunedNetwork(net)
    untuned.compile(x)
    t0 = time.perf_counter()
    reference = untuned(x).asnumpy()
    untuned_seconds = time.perf_counter() - t0
    line = f"e2e {model} b{batch}: untuned {batch / untuned_seconds:.2f} images/s"
    configs = {"programs, all oneDNN": (), "programs, the winners": tuple(
        KernelChoice(key, kernel, tuple(sorted(params.items())))
        for key, (kernel, params) in winners.items())}
    for label, choices in configs.items():
        fresh = mindcv.create_model(model)
        fresh.set_train(False)
        from mindspore import load_param_into_net
        load_param_into_net(fresh, net.parameters_dict())
        tuned = TunedNetwork(library.apply(
            fresh, TuningConfig(programs=ProgramConfig("network"), kernels=choices), shape))
        output = tuned(x).asnumpy()
        error = float(np.abs(output - reference).max() / np.abs(reference).max())
        seconds = best_time(lambda: tuned(x).asnumpy(), 2 if quick else 3, 1.0 if quick else 3.0)
        verdict = "" if error <= 1e-3 else f" NOT counted: output mismatch {error:.1e}"
        line += f"; {label} {batch / seconds:.2f} images/s{verdict}"
    print(line)


def run(args: argparse.Namespace) -> int:
    import mindcv
    import mindspore as ms

    from tuner.backends import kernel_library

    ms.set_context(mode=ms.GRAPH_MODE)
    library = kernel_library("CPU")
    numpy_samples = [numpy_sgemm_gflops()]
    count = 3 if args.quick else 6
    variants = {name: sweep(space, count) for name, space in library.spaces.items()
                if name != ONEDNN and library.unsupported_reason(name) is None}
    results: list[WorkloadResult] = []
    winners: dict[tuple, dict] = {}
    for model in args.models:
        net = mindcv.create_model(model)
        net.set_train(False)
        for batch in args.batch:
            for group in library.find_workloads(net, (batch, 3, IMAGE, IMAGE)):
                if group.workload.op != "conv":
                    continue
                result = bench_workload(library, model, group, variants, args.quick)
                results.append(result)
                if result.kernel_seconds:
                    winners.setdefault((model, batch), {})[result.key] = (
                        result.best_kernel, result.best_params[result.best_kernel])
                per_kernel = ", ".join(f"{k.removeprefix('conv2d_')} {v * 1e3:.3f} ms"
                                       for k, v in result.kernel_seconds.items())
                print(f"  {model} {result.key}: builtin {result.builtin_seconds * 1e3:.1f} ms, "
                      f"{per_kernel or '-'}", flush=True)
            numpy_samples.append(numpy_sgemm_gflops())
    numpy_gflops = max(numpy_samples)
    print(f"\nnumpy float32 matmul (2048^3) GFLOP/s samples during the run: "
          f"{', '.join(f'{v:.0f}' for v in numpy_samples)}; ratios use the best, {numpy_gflops:.0f}")
    print_workloads(results, numpy_gflops)
    summarize(results, numpy_gflops)
    if not args.no_e2e:
        for model in args.models:
            for batch in ([min(args.batch)] if args.quick else args.batch):
                bench_end_to_end(library, model, batch, winners.get((model, batch), {}),
                                 args.quick)
    return 0

"""Custom CPU convolution kernels vs MindSpore's builtin ones, per workload and end to end.

For every conv workload of the chosen models at 224x224: the builtin layer's time, the best
custom time over a small sweep of the valid parameters (cpu_kernels.yaml) of every kernel that
can run it (dense 3x3 stride-1 workloads: conv2d_dense and conv2d_winograd; the row says which
won, and the other kernels' best times), GFLOP/s (a Winograd kernel's are "effective": the
direct convolution's multiply-adds over its time) and the ratio to numpy float32 matmul GFLOP/s
measured in the same run. A custom variant counts only if its output matched the builtin
reference (rel error <= tolerance). Then whole networks, untuned vs custom kernels (with each
workload's best verified kernel and variant), images/s.
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


@dataclass(frozen=True)
class WorkloadResult:
    model: str
    key: str
    kind: str
    layers: int
    flops: int
    builtin_seconds: float        # one builtin layer run as its own graph
    custom_seconds: float | None  # the best verified variant's kernel alone (direct call)
    custom_graph_seconds: float | None  # the same variant run as its own graph
    best_params: dict = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    best_kernel: str = ""
    kernel_seconds: dict = field(default_factory=dict)  # kernel name -> its best verified time

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
    """Best of several 2048^3 float32 matmuls (short kernels catch quiet moments of a shared
    machine more easily than this ~0.1 s call, so it gets more repeats)."""
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


def _run(cell, inputs):
    return cell(*inputs).asnumpy()


def bench_workload(library, model, group, variants: dict[str, list[dict]], quick) -> WorkloadResult:
    """``variants``: kernel name -> parameter sets, for each kernel that can run the workload."""
    from tuner.kernels.cpu.cells import BuiltinConvUnit
    from tuner.kernels import KernelBuildError
    from tuner.kernels.cpu.direct import DirectKernelCall
    from tuner.kernels.cpu.library import verification_problem

    w = group.workload
    conv, weight, bias, inputs = verification_problem(w, seed=0)
    builtin = BuiltinConvUnit(conv, None, w.activation)
    builtin.compile(*inputs)
    t0 = time.perf_counter()
    reference = _run(builtin, inputs)
    builtin_seconds = time.perf_counter() - t0
    scale = max(float(np.abs(reference).max()), 1e-30)
    best, best_graph, best_params, best_kernel, failures = None, None, {}, "", []
    kernel_seconds: dict[str, float] = {}
    for kernel, params in ((k, p) for k in library.kernel_names(w) for p in variants[k]):
        try:
            cell = library.custom_cell(w, params, weight, bias, kernel)
        except KernelBuildError as error:  # a failed build is a failed variant, reported below
            failures.append(f"build {kernel} {params}: {str(error).splitlines()[0]}")
            continue
        output = _run(cell, inputs)
        error = float(np.abs(output - reference).max()) / scale
        if not error <= TOLERANCE:
            failures.append(f"mismatch {error:.2g} {kernel} {params}")
            continue
        direct = DirectKernelCall(cell, [t.asnumpy() for t in inputs], w.output_shape)
        if direct() != 0 or not np.array_equal(direct.output, output):
            failures.append(f"direct call differs from the graph run {kernel} {params}")
            continue
        seconds = best_time(direct, 3 if quick else 5, 0.2 if quick else 0.5)
        kernel_seconds[kernel] = min(seconds, kernel_seconds.get(kernel, seconds))
        if best is None or seconds < best:
            best, best_params, best_kernel = seconds, params, kernel
            best_graph = best_time(lambda: _run(cell, inputs), 2, 0.1)
    return WorkloadResult(model, w.key, w.kind, len(group.layer_paths), w.flops, builtin_seconds,
                          best, best_graph, best_params, tuple(failures), best_kernel,
                          kernel_seconds)


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def print_workloads(results: list[WorkloadResult], numpy_gflops: float) -> None:
    print("\nbuiltin/graph: the layer alone as a graph (includes ~0.2 ms launch overhead); "
          "kernel: the custom kernel called directly; speedup = builtin / custom graph")
    print(f"{'model':16} {'workload':44} {'n':>2} {'builtin ms':>10} {'graph ms':>9} "
          f"{'kernel ms':>9} {'speedup':>7} {'GF/s':>5} {'/numpy':>6}  best kernel: params "
          f"[other kernels' best ms]")
    for r in results:
        speedup = r.builtin_seconds / r.custom_graph_seconds if r.custom_graph_seconds else None
        gf = r.gflops(r.custom_seconds)
        print(f"{r.model:16} {r.key:44} {r.layers:>2} {r.builtin_seconds * 1e3:>10.2f} "
              f"{_fmt(r.custom_graph_seconds and r.custom_graph_seconds * 1e3, '>9.3f')} "
              f"{_fmt(r.custom_seconds and r.custom_seconds * 1e3, '>9.3f')} "
              f"{_fmt(speedup, '>7.1f')} {_fmt(gf, '>5.0f')} "
              f"{_fmt(gf and gf / numpy_gflops, '>6.2f')}  "
              f"{r.best_kernel.removeprefix('conv2d_')}: {_short(r.best_params)}{_others(r)}")
        for failure in r.failures:
            print(f"{'':20}! {failure}")


_ABBREVIATIONS = {"oc_register_block": "mr", "spatial_vectors": "nv", "reduction_block": "kc",
                  "spatial_block": "nc", "oc_cache_block": "mc", "loop_order": "order",
                  "unroll": "unroll", "direct_output": "dout", "direct_pointwise": "dpw",
                  "balance_tasks": "bal", "ow_vectors": "owv", "oh_rows": "ohr",
                  "tile_size": "m", "tile_vectors": "nv", "tile_block": "tb", "oc_block": "ocb"}


def _others(r: WorkloadResult) -> str:
    others = {k: v for k, v in r.kernel_seconds.items() if k != r.best_kernel}
    return "".join(f" [{k.removeprefix('conv2d_')} {v * 1e3:.3f}]" for k, v in others.items())


def _short(params: dict) -> str:
    return ",".join(f"{_ABBREVIATIONS.get(k, k)}={v}" for k, v in params.items())


def summarize(results: list[WorkloadResult], numpy_gflops: float) -> None:
    print(f"\nsummary (numpy float32 matmul: {numpy_gflops:.0f} GFLOP/s)")
    groups: dict[tuple, list[WorkloadResult]] = {}
    for r in results:
        batch = int(r.key.split("_n")[1].split("_")[0])
        groups.setdefault((r.model, batch, r.kind), []).append(r)
    for (model, batch, kind), rs in sorted(groups.items()):
        verified = [r for r in rs if r.custom_seconds]
        ratios = [r.gflops(r.custom_seconds) / numpy_gflops for r in verified]
        speedups = [r.builtin_seconds / r.custom_graph_seconds for r in verified]
        if not verified:
            print(f"{model} b{batch} {kind}: no verified custom variant")
            continue
        print(f"{model} b{batch} {kind}: {len(verified)}/{len(rs)} workloads verified; "
              f"kernel GFLOP/s / numpy median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); graph speedup vs builtin median "
              f"{statistics.median(speedups):.1f}x (min {min(speedups):.1f}x); won: "
              + ", ".join(f"{k.removeprefix('conv2d_')} {n}" for k, n in
                          sorted(Counter(r.best_kernel for r in verified).items())))


def conv_multiply_adds_per_image(library, net, batch) -> float:
    """Multiply-adds of the network's convolutions for one image (ResNet50: ~4.1 G, the figure
    usually quoted as its "GFLOPs")."""
    groups = library.find_workloads(net, (batch, 3, IMAGE, IMAGE))
    return sum(g.workload.flops / 2 * len(g.layer_paths) for g in groups) / batch


def bench_end_to_end(library, model, batch, choices, kernels, quick, numpy_gflops) -> None:
    import mindcv
    from mindspore import Tensor
    from tuner.rewrites.network import TunedNetwork

    net = mindcv.create_model(model)
    net.set_train(False)
    x = Tensor(np.random.default_rng(1).standard_normal((batch, 3, IMAGE, IMAGE)).astype(np.float32))
    untuned = TunedNetwork(net)  # a fresh top-level cell around the unmodified network
    untuned.compile(x)
    t0 = time.perf_counter()
    reference = untuned(x).asnumpy()
    untuned_seconds = time.perf_counter() - t0
    multiply_adds = conv_multiply_adds_per_image(library, net, batch)
    tuned = library.apply(net, choices, (batch, 3, IMAGE, IMAGE), kernels)
    output = tuned(x).asnumpy()
    error = float(np.abs(output - reference).max() / np.abs(reference).max())
    seconds = best_time(lambda: tuned(x).asnumpy(), 2 if quick else 3, 1.0 if quick else 3.0)
    line = (f"e2e {model} b{batch}: untuned {batch / untuned_seconds:.2f} images/s, "
            f"custom kernels {batch / seconds:.2f} images/s")
    if error <= TOLERANCE:
        effective = multiply_adds * batch / seconds / 1e9
        print(f"{line}, speedup {untuned_seconds / seconds:.1f}x (output rel error {error:.1e}); "
              f"effective {effective:.0f} GFLOP/s ({multiply_adds / 1e9:.2f} G multiply-adds "
              f"per image x images/s) = {effective / numpy_gflops:.2f} of numpy's")
    else:
        print(f"{line}; NOT counted: output mismatch, rel error {error:.2e}")


def run(args: argparse.Namespace) -> int:
    import mindcv
    import mindspore as ms
    from tuner.kernels import kernel_library

    ms.set_context(mode=ms.GRAPH_MODE)
    library = kernel_library("CPU")
    # The machine may be shared: numpy is measured several times during the run and the
    # best value is used, which makes the reported ratios conservative.
    numpy_samples = [numpy_sgemm_gflops()]
    count = 3 if args.quick else 6
    variants = {name: sweep(space, count) for name, space in library.spaces.items()}
    results, choices, kernels = [], {}, {}
    for model in args.models:
        net = mindcv.create_model(model)
        net.set_train(False)
        for batch in args.batch:
            for group in library.find_workloads(net, (batch, 3, IMAGE, IMAGE)):
                result = bench_workload(library, model, group, variants, args.quick)
                results.append(result)
                if result.custom_seconds:
                    choices.setdefault((model, batch), {})[result.key] = result.best_params
                    kernels.setdefault((model, batch), {})[result.key] = result.best_kernel
                per_kernel = ", ".join(f"{k.removeprefix('conv2d_')} {v * 1e3:.2f} ms"
                                       for k, v in result.kernel_seconds.items())
                print(f"  {model} {result.key}: builtin {result.builtin_seconds * 1e3:.1f} ms, "
                      f"custom {per_kernel or '-'}", flush=True)
            numpy_samples.append(numpy_sgemm_gflops())
    numpy_gflops = max(numpy_samples)
    print(f"\nnumpy float32 matmul (2048^3) GFLOP/s samples during the run: "
          f"{', '.join(f'{v:.0f}' for v in numpy_samples)}; ratios use the best, {numpy_gflops:.0f}")
    print_workloads(results, numpy_gflops)
    summarize(results, numpy_gflops)
    if not args.no_e2e:
        e2e_batches = [min(args.batch)] if args.quick else args.batch
        for model in args.models:
            for batch in e2e_batches:
                bench_end_to_end(library, model, batch, choices.get((model, batch), {}),
                                 kernels.get((model, batch), {}), args.quick, numpy_gflops)
    print(f"\nnumpy float32 matmul re-measured at the end: {numpy_sgemm_gflops():.0f} GFLOP/s")
    return 0

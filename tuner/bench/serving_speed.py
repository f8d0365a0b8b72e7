"""Serving: a tuned export called as a server calls it, and loaded as a deployment loads it.

The export's model is built once (random weights, seed 0) and tuned in this process
(tuner.apply), and a bundle is written from the same weights. Then:

* load: ``tuner.load`` of the JSON and of the bundle, each in a fresh process, timed from after
  ``import mindspore`` to the loaded network and then to the end of its first call at the tuned
  shape; the bundle is loaded with no compiler on PATH and an empty kernel cache;
* batches: for each batch size, the tuned network's output against the untuned network's
  (relative max error), and images/s timed in ``--rounds`` rounds that alternate the batch sizes
  (a slot of at least ``--seconds`` per batch size and round; the median over rounds), for the
  network of ``tuner.apply`` (other batch sizes planned on first use) and the bundle's (planned
  at ``--bundle-batches``, other batch sizes in chunks of the tuned one); the ratio to the tuned
  batch's images/s;
* threads: ``--threads`` threads call the applied network at once, each with its own input of
  the tuned shape, ``--calls`` times each; how many outputs differed from the untuned network's.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from tuner import cpuinfo
from tuner.commands.options import add_trust_argument, positive_float, positive_int

LOAD_SCRIPT = r"""
import json, sys, time
import mindspore as ms
import numpy as np
started = time.perf_counter()
import tuner
net = tuner.load(sys.argv[1], trust_model_code=sys.argv[3] == "trust")
loaded = time.perf_counter()
net(ms.Tensor(np.zeros(json.loads(sys.argv[2]), np.float32))).asnumpy()
print(json.dumps({"load": loaded - started, "first_call": time.perf_counter() - loaded}))
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export", type=Path, help="an exported JSON (tuner.export)")
    parser.add_argument("--batches", type=positive_int, nargs="+", default=[1, 4, 7])
    parser.add_argument("--rounds", type=positive_int, default=5)
    parser.add_argument("--seconds", type=positive_float, default=1.0,
                        help="timing slot per batch size and round (default 1)")
    parser.add_argument("--bundle-batches", type=positive_int, nargs="*", default=[],
                        help="batch sizes the bundle also plans (tuner.export --bundle-batches)")
    parser.add_argument("--threads", type=positive_int, default=8)
    parser.add_argument("--calls", type=positive_int, default=10)
    add_trust_argument(parser)


def run(args: argparse.Namespace) -> int:
    import mindspore as ms

    import tuner
    from tuner.bundle import write_bundle
    from tuner.deploy import build_model
    from tuner.exported_config import read_export

    exported = read_export(args.export)
    shape = exported.target.input_shape
    print(f"serving {exported.target.model} tuned at {'x'.join(map(str, shape))} on "
          f"{cpuinfo.description()}")
    ms.set_seed(0)
    untuned = build_model(exported, trust_model_code=args.trust_model_code)
    applied = tuner.apply(copy.deepcopy(untuned), exported)
    with tempfile.TemporaryDirectory() as work:
        bundle = Path(work) / "bundle"
        write_bundle(exported, bundle, copy.deepcopy(untuned), tuple(args.bundle_batches))
        _print_load_times(args.export, bundle, shape, Path(work), args.trust_model_code)
        bundled = tuner.load(bundle, trust_model_code=args.trust_model_code)
        rng = np.random.default_rng(0)
        inputs = {b: ms.Tensor(rng.standard_normal((b, *shape[1:])).astype(np.float32))
                  for b in sorted(set(args.batches) | {shape[0]})}
        references = {b: untuned(x).asnumpy() for b, x in inputs.items()}
        for name, net in (("tuner.apply", applied), ("bundle", bundled)):
            _print_batches(name, net, inputs, references, shape[0], args)
    wrong = _threads(applied, shape, untuned, args.threads, args.calls)
    print(f"threads: {args.threads} x {args.calls} calls at once, {wrong} outputs differed "
          f"from the untuned network's")
    sys.stdout.flush()
    os._exit(0)  # MindSpore's teardown may crash after threads; every figure is printed


def _print_load_times(export: Path, bundle: Path, shape, work: Path, trust: bool) -> None:
    bare = {"PATH": str(work / "no-compiler"), "HOME": str(work / "home"),
            "TUNER_KERNEL_CACHE": str(work / "empty-cache"), "GLOG_v": "3",
            "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    for name, path, env in (("JSON", export, {**os.environ, "GLOG_v": "3"}),
                            ("bundle (no compiler, empty kernel cache)", bundle, bare)):
        process = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(Path(path).resolve()),
                                  json.dumps(list(shape)),
                                  "trust" if trust else ""], capture_output=True, text=True,
                                 env=env, cwd=work, timeout=1800)
        if process.returncode != 0:
            print(f"load from {name}: failed: {process.stderr.strip().splitlines()[-1:]}")
            continue
        times = json.loads(process.stdout.strip().splitlines()[-1])
        print(f"load from {name}: {times['load']:.2f} s after importing MindSpore, first call "
              f"{times['first_call']:.2f} s")


def _print_batches(name, net, inputs, references, tuned_batch, args) -> None:
    errors = {}
    for batch, x in inputs.items():
        y = net(x).asnumpy()
        reference = references[batch]
        errors[batch] = (float(np.abs(y - reference).max() / np.abs(reference).max())
                         if y.shape == reference.shape else float("inf"))
    rates: dict[int, list[float]] = {batch: [] for batch in inputs}
    for _ in range(args.rounds):
        for batch, x in inputs.items():
            calls, started = 0, time.perf_counter()
            while True:
                net(x).asnumpy()
                calls += 1
                elapsed = time.perf_counter() - started
                if elapsed >= args.seconds:
                    break
            rates[batch].append(calls * batch / elapsed)
    tuned_rate = statistics.median(rates[tuned_batch])
    for batch in inputs:
        rate = statistics.median(rates[batch])
        print(f"{name}: batch {batch}: {rate:.1f} images/s ({rate / tuned_rate:.2f}x the tuned "
              f"batch's), error {errors[batch]:.1e}")


def _threads(net, shape, untuned, threads: int, calls: int) -> int:
    import mindspore as ms

    rng = np.random.default_rng(1)
    inputs = [ms.Tensor(rng.standard_normal(shape).astype(np.float32)) for _ in range(threads)]
    expected = [untuned(x).asnumpy() for x in inputs]
    wrong = []

    def serve(k: int) -> None:
        for _ in range(calls):
            y = net(inputs[k]).asnumpy()
            if np.abs(y - expected[k]).max() > 1e-3 * np.abs(expected[k]).max():
                wrong.append(k)

    workers = [threading.Thread(target=serve, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(wrong)

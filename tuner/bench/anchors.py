"""Anchors: untuned and tuned MindSpore, ONNX Runtime and OpenVINO on the same network.

For each model and batch size: the model is built once with random weights (seed 0, as a study
does) with a fixed random input and the untuned output on it. The same network with the same
weights is exported to ONNX (``mindspore.export``; tuner.onnx.exportable first makes networks
that MindSpore's converter refuses exportable, without changing what they compute) and ONNX
Runtime's output is compared with the untuned MindSpore output: the ``ORT err`` column. ONNX
Runtime (default session options, graph optimisations ORT_ENABLE_ALL) and OpenVINO's CPU
plugin (tuner.onnx.openvino_cpu: ``--ov-hint`` latency, one synchronous request, or
throughput, its optimal number of requests in flight; f32) run that file. Then the four
engines (or those of ``--engines``), each in a process of its own that compiles once,
are timed in alternation (tuner.runner.interleave): ``--rounds`` rounds, in each of which every
engine times a slot of its runs (the trials' protocol, tuner.trial.measurement: a warmup run
before the first slot, then runs for at least ``--min-seconds`` and at most
``--max-seconds``) while the others idle. A row gives each engine's median images/s over its
slots, the ratios tuned/untuned, tuned/ONNX Runtime and tuned/best (the faster of ONNX Runtime
and OpenVINO in that row), and ``OV err``, OpenVINO's output against the untuned one. The tuned
configuration is the export given by ``--config`` for that model and shape, else the search
space's default for the model. A model that cannot be built, tuned or exported, and an engine
that is missing or fails, get a line that says why. Needs ``pip install -e ".[bench]"`` (onnx,
onnxruntime, openvino).
"""
from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tuner import cpuinfo
from tuner.commands.options import positive_float, positive_int
from tuner.config import TuningConfig
from tuner.exported_config import read_export
from tuner.files import atomic_write_text
from tuner.models import TuningTarget
from tuner.onnx.openvino_cpu import OPENVINO_HINTS
from tuner.runner.interleave import run_interleaved
from tuner.runner.isolate import run_isolated
from tuner.trial.measurement import MeasureSettings
from tuner.trial.request import MODEL_INFO_FILE, TrialRequest

DEFAULT_MODELS = ("resnet50", "mobilenet_v2_100", "efficientnet_b0", "densenet121",
                  "regnet_x_800mf", "convnext_tiny", "vit_b_32_224")
ENGINES = ("untuned", "tuned", "onnxruntime", "openvino")
OTHER_ENGINES = ("onnxruntime", "openvino")  # the yardsticks: tuned / the faster of them
SLOT_MIN_SECONDS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (default 1)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--config", type=Path, nargs="*", default=[],
                        help="exported JSONs; each is used for its own model and input shape")
    parser.add_argument("--rounds", type=positive_int, default=10,
                        help="interleaved rounds, a slot of each engine's runs in each "
                             "(default 10)")
    parser.add_argument("--min-seconds", type=positive_float, default=SLOT_MIN_SECONDS,
                        help="timing floor per engine and round (default 0.5; longer slots "
                             "outlast a host's slow first moments after an engine idled)")
    parser.add_argument("--max-seconds", type=positive_float, default=2.0,
                        help="timing cap per engine and round (default 2; at least one run)")
    parser.add_argument("--trial-timeout", type=positive_float, default=1800.0)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES),
                        help="engines to time (default all four; leave out untuned at batch 16, "
                             "where MindSpore's builtin ResNet50 takes minutes an inference)")
    parser.add_argument("--ov-hint", choices=OPENVINO_HINTS, default="latency",
                        help="OpenVINO's performance hint (default latency: one synchronous "
                             "request, images/s = batch / seconds of an inference, as for the "
                             "other engines); throughput: the THROUGHPUT hint and an "
                             "AsyncInferQueue of the plugin's optimal number n of requests, a "
                             "run starting n inferences of the batch and waiting for all, "
                             "images/s = n x batch / the run's seconds (a server with n "
                             "requests in flight; column 'OV tput')")
    parser.add_argument("--runs-dir", type=Path, default=Path("mlruns") / "bench-anchors")


@dataclass
class AnchorRow:
    model: str
    batch: int
    images_per_second: dict[str, list[float]] = field(default_factory=dict)
    onnx_rel_error: float | None = None
    openvino_rel_error: float | None = None  # max rel error of its last output, as ORT's
    openvino_hint: str = "latency"
    onnx_rewrites: dict = field(default_factory=dict)
    tuned_from: str = ""
    notes: list[str] = field(default_factory=list)

    def median(self, engine: str) -> float | None:
        values = self.images_per_second.get(engine)
        return statistics.median(values) if values else None

    def ratio(self, numerator: str, denominator: str) -> float | None:
        top, bottom = self.median(numerator), self.median(denominator)
        return top / bottom if top and bottom else None

    def best_other(self) -> str | None:
        """The faster of ONNX Runtime and OpenVINO in this row (None: neither was timed)."""
        timed = [engine for engine in OTHER_ENGINES if self.median(engine)]
        return max(timed, key=self.median) if timed else None

    def ratio_to_best(self) -> float | None:
        best = self.best_other()
        return self.ratio("tuned", best) if best else None

    def round_ratio_to_best(self) -> float | None:
        """The median over rounds of tuned's slot over the fastest other engine's slot in the
        same round: paired, so a host that changes speed between rounds moves both sides."""
        tuned = self.images_per_second.get("tuned") or []
        ratios = []
        for index, value in enumerate(tuned):
            others = [self.images_per_second[engine][index] for engine in OTHER_ENGINES
                      if len(self.images_per_second.get(engine) or []) > index]
            if others:
                ratios.append(value / max(others))
        return statistics.median(ratios) if ratios else None


def _tuned_config(target: TuningTarget, info: dict, exports: list) -> tuple[TuningConfig, str]:
    for exported in exports:
        if (exported.target.model, exported.target.input_shape) == (target.model, target.input_shape):
            return exported.config, str(exported.source)
    from tuner.backends import get_backend
    from tuner.space import load_space

    space = load_space(get_backend(target.device).default_space_path()).for_model(info)
    return space.default_config(), "the space's default"


def _anchor(target: TuningTarget, args, exports: list) -> AnchorRow:
    row = AnchorRow(target.model, target.batch_size)
    work = args.runs_dir / f"{target.model}_{'x'.join(map(str, target.input_shape))}"
    assets = work / "assets"
    timeout = args.trial_timeout
    if not (assets / MODEL_INFO_FILE).exists():
        prepared = run_isolated(TrialRequest("prepare", target, str(assets)), work / "prepare", timeout)
        if not prepared.ok:
            row.notes.append(f"cannot build: {prepared.reason()}")
            return row
    info = json.loads((assets / MODEL_INFO_FILE).read_text())
    config, row.tuned_from = _tuned_config(target, info, exports)
    exported = run_isolated(TrialRequest("onnx_export", target, str(assets)), work / "onnx", timeout)
    onnx_info = assets / "onnx.json"
    if onnx_info.exists():
        data = json.loads(onnx_info.read_text())
        row.onnx_rel_error, row.onnx_rewrites = data["max_rel_error"], data["rewrites"]
    if not exported.ok:
        row.notes.append(f"no ONNX Runtime or OpenVINO figure: export {exported.reason()}")
    settings = MeasureSettings(warmup_runs=1, min_runs=3,
                               min_seconds=min(args.min_seconds, args.max_seconds),
                               max_seconds=args.max_seconds, slots=args.rounds)
    requests = {"untuned": TrialRequest("measure", target, str(assets), measure=settings),
                "tuned": TrialRequest("measure", target, str(assets), config=config,
                                      measure=settings),
                "onnxruntime": TrialRequest("onnx_measure", target, str(assets), measure=settings),
                "openvino": TrialRequest("openvino_measure", target, str(assets),
                                         measure=settings, openvino_hint=args.ov_hint)}
    row.openvino_hint = args.ov_hint
    if not exported.ok:
        for engine in OTHER_ENGINES:
            del requests[engine]
    requests = {engine: request for engine, request in requests.items() if engine in args.engines}
    timed = run_interleaved([(request, work / engine) for engine, request in requests.items()],
                            timeout)
    for engine, outcome in zip(requests, timed):
        if engine == "openvino" and outcome.result.metrics:
            row.openvino_rel_error = outcome.result.metrics.max_rel_error
        if outcome.result.ok:
            row.images_per_second[engine] = [target.batch_size / seconds
                                             for seconds in outcome.slot_medians_s]
        else:
            row.notes.append(f"{engine}: {outcome.result.reason()}")
    return row


def _fmt(value: float | None, pattern: str = "{:.3g}") -> str:
    return "-" if value is None else pattern.format(value)


def render(rows: list[AnchorRow]) -> str:
    throughput = any(r.openvino_hint == "throughput" for r in rows)
    header = ["model", "batch", "untuned", "tuned", "ORT", "OV tput" if throughput else "OV",
              "tuned/untuned", "tuned/ORT", "tuned/best", "tuned/best(rounds)", "ORT err", "OV err",
              "tuned config"]
    table = [[r.model, str(r.batch), _fmt(r.median("untuned")), _fmt(r.median("tuned")),
              _fmt(r.median("onnxruntime")), _fmt(r.median("openvino")),
              _fmt(r.ratio("tuned", "untuned"), "{:.1f}x"),
              _fmt(r.ratio("tuned", "onnxruntime"), "{:.2f}"), _fmt(r.ratio_to_best(), "{:.2f}"),
              _fmt(r.round_ratio_to_best(), "{:.2f}"),
              _fmt(r.onnx_rel_error, "{:.1e}"), _fmt(r.openvino_rel_error, "{:.1e}"),
              r.tuned_from] for r in rows]
    widths = [max(len(line[i]) for line in [header] + table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(widths[i]) for i, c in enumerate(line)).rstrip()
             for line in [header] + table]
    for r in rows:
        lines += [f"  {r.model} b{r.batch}: {note}" for note in r.notes]
        if r.onnx_rewrites and any(r.onnx_rewrites.values()):
            lines.append(f"  {r.model} b{r.batch}: exported after "
                         f"{', '.join(f'{k}={v}' for k, v in r.onnx_rewrites.items() if v)}")
    for name, ratios in (("tuned/ORT", [r.ratio("tuned", "onnxruntime") for r in rows]),
                         ("tuned/best", [r.ratio_to_best() for r in rows]),
                         ("tuned/best(rounds)", [r.round_ratio_to_best() for r in rows])):
        ratios = [x for x in ratios if x is not None]
        if ratios:
            lines.append(f"median {name} over {len(ratios)} rows: "
                         f"{statistics.median(ratios):.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print('tuner.bench anchors needs ONNX Runtime: pip install -e ".[bench]"')
        return 2
    exports = [read_export(path) for path in args.config]
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    print(f"CPU: {cpuinfo.description()}; images/s, median of {args.rounds} interleaved rounds "
          f"(engines in processes of their own, timed in turn); "
          f"{args.image_size}x{args.image_size}; OpenVINO: "
          + ("LATENCY hint, one synchronous request" if args.ov_hint == "latency" else
             "THROUGHPUT hint, its optimal number of requests in flight (column OV tput)"))
    rows = []
    for model in args.models:
        for batch in args.batch:
            rows.append(_anchor(TuningTarget(model, batch, args.image_size), args, exports))
            print(render(rows[-1:]).splitlines()[1], flush=True)
    print(render(rows))
    atomic_write_text(args.runs_dir / "anchors.json", json.dumps([asdict(r) for r in rows], indent=1))
    return 0

"""``python -m tuner.measure best.json``: re-measure an exported configuration and its baseline
in fresh processes and print the same metrics the search reported."""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from tuner.commands.entry import OneLineParser
from tuner.commands.options import (add_measure_arguments, add_trial_timeout_argument,
                                    add_trust_argument, measure_settings)
from tuner.config import TuningConfig
from tuner.exported_config import check_for_model, read_export
from tuner.kernels.workload import WorkloadGroup
from tuner.runner.rebuilt_assets import prepare_export_assets
from tuner.runner.isolate import run_isolated
from tuner.trial.request import MODEL_INFO_FILE, TrialRequest

ROWS = (("throughput (images/s)", "throughput_ips", "{:.3f}"),
        ("latency p50 (ms)", "latency_p50_ms", "{:.1f}"),
        ("latency p99 (ms)", "latency_p99_ms", "{:.1f}"),
        ("latency IQR (ms)", "latency_iqr_ms", "{:.1f}"),
        ("median 95% CI (+/-)", "median_rel_precision", "{:.1%}"),
        ("timed runs", "timed_runs", "{}"),
        ("peak memory (MiB)", "peak_memory_mb", "{:.0f}"),
        ("compile (s)", "compile_seconds", "{:.2f}"),
        ("max rel error", "max_rel_error", "{:.2g}"))


def _table(columns: list[tuple[str, dict]]) -> str:
    rows = [[""] + [title for title, _ in columns]]
    for label, key, fmt in ROWS:
        rows.append([label] + [fmt.format(m[key]) if m.get(key) is not None else "-"
                               for _, m in columns])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)) for r in rows)


def main(argv: list[str]) -> int:
    parser = OneLineParser(prog="python -m tuner.measure", description=__doc__)
    parser.add_argument("config", type=Path, help="exported JSON (python -m tuner.export)")
    add_trial_timeout_argument(parser)
    add_trust_argument(parser)
    add_measure_arguments(parser)
    args = parser.parse_args(argv)
    exported = read_export(args.config)
    settings = measure_settings(args)
    with tempfile.TemporaryDirectory(prefix="tuner-measure-") as tmp:
        work = Path(tmp)
        seed = int(exported.study.get("weights_seed", 0))
        assets = prepare_export_assets(exported, args.config, work, args.trial_timeout,
                                       args.trust_model_code)
        info = json.loads((assets / MODEL_INFO_FILE).read_text())
        check_for_model(exported, [WorkloadGroup.from_dict(w) for w in info.get("workloads", [])])
        results = {}
        for label, config in (("baseline", TuningConfig()), ("tuned", exported.config)):
            request = TrialRequest("measure", exported.target, str(assets), config=config,
                                   measure=settings, seed=seed)
            results[label] = run_isolated(request, work / label, args.trial_timeout)
    for label, result in results.items():
        if not result.ok:
            print(f"error: {args.config}: the {label} configuration: {result.reason()}",
                  file=sys.stderr)
            return 1
    base, tuned = (results[k].metrics.to_dict() for k in ("baseline", "tuned"))
    print(f"{exported.target.model} {'x'.join(map(str, exported.target.input_shape))} "
          f"on {exported.target.device}")
    print(_table([("baseline now", base), ("tuned now", tuned),
                  ("baseline exported", exported.baseline_metrics),
                  ("tuned exported", exported.metrics)]))
    now = tuned["throughput_ips"] / base["throughput_ips"]
    print(f"speedup now: {now:.3f}x; exported: {exported.metrics.get('speedup') or 0:.3f}x "
          f"(search trial)")
    if exported.validation:
        low, high = exported.validation["spread"]
        verdict = "within" if low <= now <= high else "OUTSIDE"
        print(f"validated speedup: {exported.validation['speedup']:.3f}x over "
              f"{exported.validation['rounds']} interleaved rounds; a re-measurement is expected "
              f"in [{low:.3f}, {high:.3f}] (95 %): now is {verdict} it")
    return 0

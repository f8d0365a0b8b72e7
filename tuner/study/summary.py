"""The study's summary: the baseline-versus-best table, the validation, the pruning savings and
the exported knobs, read from the study alone (printed at the end of a search, logged to the
parent MLflow run, shown in the report)."""
from __future__ import annotations

from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import TrialKey
from tuner.study.validation import current_report, over_default


def summary_table(run) -> str:
    """Baseline vs best: throughput, latency, memory, speedup; and the trial counts."""
    trials = run.study.get_trials(deepcopy=False)
    base, best = run.baseline(), (run.best_trials() or [None])[0]
    statuses: dict[str, int] = {}
    for t in trials:
        result = trial_facts.trial_result(t)
        key = result.status.value if result else t.state.name.lower()
        statuses[key] = statuses.get(key, 0) + 1
    reused = sum(attrs.has(t, TrialKey.REUSED_FROM) for t in trials)
    lines = [f"study {run.study.study_name}: {len(trials)} trials "
             f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))}; "
             f"{reused} reused an identical configuration's measurement)"]
    if base is None or best is None:
        return "\n".join(lines + ["no successful trial yet"])
    rows = [("", "baseline", f"best (trial {best.number})")]
    b, w = trial_facts.trial_result(base).metrics, trial_facts.trial_result(best).metrics
    rows += [("throughput (images/s)", f"{b.throughput_ips:.3f}", f"{w.throughput_ips:.3f}"),
             ("latency p50 (ms)", f"{b.latency_p50_ms:.1f}", f"{w.latency_p50_ms:.1f}"),
             ("latency p99 (ms)", f"{b.latency_p99_ms:.1f}", f"{w.latency_p99_ms:.1f}"),
             ("latency IQR (ms)", f"{b.latency_iqr_ms:.1f}", f"{w.latency_iqr_ms:.1f}"),
             ("median 95% CI (+/-)", f"{b.median_rel_precision:.1%}", f"{w.median_rel_precision:.1%}"),
             ("timed runs", f"{b.timed_runs}", f"{w.timed_runs}"),
             ("peak memory (MiB)", f"{b.peak_memory_mb:.0f}", f"{w.peak_memory_mb:.0f}"),
             ("max rel error", f"{b.max_rel_error:.2g}", f"{w.max_rel_error:.2g}"),
             ("speedup", "1.000x", f"{_speedup(best, w, b):.3f}x")]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)) for r in rows]
    report = current_report(run.study)
    if report is not None:
        lines.append(f"validated in {report.rounds} interleaved rounds against the baseline "
                     f"(median speedup; 95 % CI of the mean; 95 % range of one re-measurement)"
                     + (f" on {report.host}" if report.host else "") + ":")
        for c in sorted(report.candidates, key=lambda c: -c.speedup):
            mark = "  <- winner" if c.trial == report.winner else ""
            lines.append(f"  trial {c.trial}: speedup {c.speedup:.3f}x CI {_interval(c.interval)}"
                         f" re-measured {_interval(c.spread)}"
                         f" (kernels, knobs unlike the space's default = {c.complexity}){mark}")
        if report.note:
            lines.append(f"  {report.note}")
        versus_default = over_default(report, run.study)
        if versus_default is not None and versus_default[0] != report.winner:
            default_trial, versus = versus_default
            lines.append(f"  the winner against the space's default (trial {default_trial}) in "
                         f"the same rounds: {versus.ratio:.3f}x CI {_interval(versus.interval)}")
        elif versus_default is not None:
            lines.append("  the winner is the space's default configuration")
    saved = pruning_savings(trials)
    if saved["pruned_trials"]:
        lines.append(f"pruned {saved['pruned_trials']:.0f} slow trials ({saved['pruned_seconds']:.0f} s "
                     f"spent on them): about {saved['estimated_seconds_saved']:.0f} s of timing saved")
    if run.noise:
        lines.append(f"machine noise at start: CV {run.noise['noise_cv']:.1%} of a fixed matmul")
    winner = best if report is None else run.study.get_trials(deepcopy=False)[report.winner]
    knobs = trial_facts.trial_config(winner).describe()
    lines.append(f"knobs of {'the validated winner' if report else 'the best'} (trial "
                 f"{winner.number}, the one exported): {knobs}")
    return "\n".join(lines)


def pruning_savings(trials) -> dict[str, float]:
    """How many trials were pruned, the wall time they took, and the timing they were spared
    (each pruned record's estimate; see tuner.runner.isolate)."""
    pruned = [r for t in trials
              if (r := trial_facts.trial_result(t)) and r.status.value == "pruned"]
    return {"pruned_trials": float(len(pruned)),
            "pruned_seconds": sum(r.wall_seconds for r in pruned),
            "estimated_seconds_saved": sum(r.saved_seconds for r in pruned)}


def _speedup(best, tuned, base) -> float:
    """The best trial's speedup over the baseline of the host that measured it."""
    stored = attrs.trial_get(best, TrialKey.SPEEDUP)
    return stored if stored is not None else tuned.throughput_ips / base.throughput_ips


def _interval(bounds: tuple[float, float]) -> str:
    return "[{:.3f}, {:.3f}]".format(*bounds)

"""The study's plots, as matplotlib figures (Agg: no display needed).

Each builder returns a ``Plot``: a figure, or no figure and the reason (too few trials, no
validation yet, ...), so that a report says what is missing instead of failing.
"""
from __future__ import annotations

import io
import textwrap
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from tuner.profiling.operator_times import Profile  # noqa: E402
from tuner.storages import attributes as attrs  # noqa: E402
from tuner.storages import trial_facts  # noqa: E402
from tuner.storages.attributes import StudyKey, TrialKey  # noqa: E402
from tuner.study.validation import ValidationReport  # noqa: E402

STATUS_COLOURS = {"ok": "tab:green", "pruned": "tab:gray", "wrong_result": "tab:red",
                  "compile_error": "tab:orange", "runtime_error": "tab:purple",
                  "timeout": "tab:brown", "invalid_config": "tab:pink",
                  "constraint_violated": "tab:olive"}
TOP_PARAMS = 3


@dataclass(frozen=True)
class Plot:
    """``name``: file stem (``history`` -> ``history.png``); ``title``: for people."""

    name: str
    title: str
    figure: Any = None
    reason: str = ""

    def png(self) -> bytes:
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue()


def _status(trial) -> str:
    result = trial_facts.trial_result(trial)
    return result.status.value if result else trial.state.name.lower()


def history(study: optuna.Study) -> Plot:
    """Each trial's first objective by trial number and by wall time since the study began,
    coloured by status, with the best so far as a step line."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.datetime_start is not None]
    if not trials:
        return Plot("history", "Search history", reason="the study has no trial yet")
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    start = min(t.datetime_start for t in trials)
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, x_of, label in ((axes[0], lambda t: t.number, "trial"),
                            (axes[1], lambda t: ((t.datetime_complete or t.datetime_start)
                                                 - start).total_seconds(), "seconds since start")):
        best, line_x, line_y = None, [], []
        for trial in sorted(trials, key=x_of):
            status = _status(trial)
            value = trial.values[0] if trial.state == TrialState.COMPLETE and trial.values else None
            y = value if value is not None else 0.0
            ax.scatter([x_of(trial)], [y], color=STATUS_COLOURS.get(status, "black"), s=22,
                       marker="o" if value is not None else "x", zorder=3)
            if value is not None and status == "ok":
                best = value if best is None else (max if maximize else min)(best, value)
            if best is not None:
                line_x.append(x_of(trial))
                line_y.append(best)
        ax.step(line_x, line_y, where="post", color="tab:blue", label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"objective 1 ({'max' if maximize else 'min'}); failed trials at 0")
    handles = [plt.Line2D([], [], marker="o", linestyle="", color=c, label=s)
               for s, c in STATUS_COLOURS.items() if any(_status(t) == s for t in trials)]
    axes[1].legend(handles=handles + [plt.Line2D([], [], color="tab:blue", label="best so far")],
                   fontsize=8, loc="lower right")
    figure.suptitle(f"{study.study_name}: search history")
    return Plot("history", "Search history", figure)


def _quiet(call: Callable[[], Any]) -> Any:
    """Call one of Optuna's plots without its experimental warning and without letting the
    style it sets (ggplot) leak into the next figures."""
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")
        return call()


def _importances(study: optuna.Study) -> dict[str, float]:
    return _quiet(lambda: optuna.importance.get_param_importances(study))


def importances(study: optuna.Study) -> Plot:
    """Optuna's parameter importances (its default evaluator, PED-ANOVA in Optuna 5, copes with
    conditional knobs), over the completed trials."""
    try:
        values = _importances(study)
    except (ValueError, RuntimeError) as exc:
        return Plot("importances", "Knob importances", reason=f"not computable yet ({exc})")
    if not values:
        return Plot("importances", "Knob importances", reason="no knob varied over the trials")
    top = list(values.items())[:15][::-1]
    figure, ax = plt.subplots(figsize=(8, 0.35 * len(top) + 1.2))
    ax.barh([k for k, _ in top], [v for _, v in top], color="tab:blue")
    ax.set_xlabel("importance for objective 1 (Optuna, default evaluator)")
    ax.set_title("Which knobs mattered")
    return Plot("importances", "Knob importances", figure)


def slices(study: optuna.Study) -> Plot:
    """Optuna's slice plot of the most important knobs."""
    try:
        names = list(_importances(study))[:TOP_PARAMS]
    except (ValueError, RuntimeError) as exc:
        return Plot("slices", "Slices of the important knobs", reason=f"not computable yet ({exc})")
    if not names:
        return Plot("slices", "Slices of the important knobs", reason="no knob varied")
    axes = _quiet(lambda: optuna.visualization.matplotlib.plot_slice(study, params=names))
    each = list(axes.flat) if hasattr(axes, "flat") else [axes]
    for ax in each:
        ax.set_xlabel(textwrap.fill(ax.get_xlabel(), 28), fontsize=8)
    figure = each[0].figure
    figure.set_size_inches(4.5 * len(names), 4.5)
    return Plot("slices", "Slices of the important knobs", figure)


def validation(report: ValidationReport | None) -> Plot:
    """Each validated candidate's speedup (median of the rounds' ratios), its 95 % confidence
    interval and the 95 % range of one re-measurement; the baseline at 1."""
    if report is None:
        return Plot("validation", "Validation", reason="the winners were not validated")
    candidates = sorted(report.candidates, key=lambda c: c.speedup)
    figure, ax = plt.subplots(figsize=(8, 0.6 * len(candidates) + 1.5))
    for row, c in enumerate(candidates):
        colour = "tab:green" if c.trial == report.winner else "tab:blue"
        ax.plot(c.spread, [row, row], color=colour, alpha=0.35, linewidth=8, solid_capstyle="butt")
        ax.plot(c.interval, [row, row], color=colour, linewidth=3)
        ax.scatter([c.speedup], [row], color="black", zorder=3)
    ax.axvline(1.0, color="gray", linestyle="--", label="baseline")
    ax.set_yticks(range(len(candidates)),
                  [f"trial {c.trial}" + (" (winner)" if c.trial == report.winner else "")
                   for c in candidates])
    ax.set_xscale("log")
    ax.set_xlabel(f"speedup over the baseline ({report.rounds} interleaved rounds; thick: 95 % CI, "
                  f"pale: 95 % range of one re-measurement)")
    return Plot("validation", "Validation", figure)


def kernels(profile: Profile | None, baseline: Profile | None) -> Plot:
    """Per custom-kernel workload of the winner: its milliseconds per inference in the winner's
    profile and those its layers took in the baseline's. Milliseconds, not shares of each side's
    own inference: a faster winner's shares grow as its whole inference shrinks, and its bars
    would read as a slowdown."""
    if profile is None or baseline is None:
        return Plot("kernels", "Kernels", reason="the winner was not profiled")
    times: dict[str, list[float]] = {}
    base_by_layer = baseline.per_inference("layer")
    for op in profile.operators:
        if op.kernel:
            entry = times.setdefault(f"{op.kernel}\n{op.workload}", [0.0, 0.0])
            entry[0] += op.total_ms / profile.runs
            entry[1] += base_by_layer.get(op.layer, (0.0, 0.0))[1]
    if not times:
        return Plot("kernels", "Kernels", reason="the winner runs no custom kernel")
    labels = sorted(times, key=lambda k: times[k][0])
    figure, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.5))
    rows = range(len(labels))
    ax.barh([r + 0.2 for r in rows], [times[k][1] for k in labels], height=0.4,
            color="tab:gray", label="baseline (builtin)")
    ax.barh([r - 0.2 for r in rows], [times[k][0] for k in labels], height=0.4,
            color="tab:green", label="winner (custom)")
    ax.set_yticks(list(rows), labels, fontsize=7)
    ax.set_xlabel("ms per inference (profile)")
    ax.set_title(f"per workload; whole inference: baseline {baseline.wall_ms:.3g} ms, "
                 f"winner {profile.wall_ms:.3g} ms", fontsize=9)
    ax.legend()
    return Plot("kernels", "Kernels: ms per workload", figure)


def pareto(study: optuna.Study, exported: int | None) -> Plot:
    """Optuna's Pareto-front plot, the exported member marked (several objectives only)."""
    if len(study.directions) < 2:
        return Plot("pareto", "Pareto front", reason="a single objective")
    names = attrs.get(study, StudyKey.OBJECTIVES)
    ax = _quiet(lambda: optuna.visualization.matplotlib.plot_pareto_front(
        study, target_names=names))
    if exported is not None:
        chosen = study.get_trials(deepcopy=False)[exported]
        ax.scatter([chosen.values[0]], [chosen.values[1]], s=160, facecolors="none",
                   edgecolors="red", linewidths=2, label=f"exported (trial {exported})")
        ax.legend()
    return Plot("pareto", "Pareto front", ax.figure)


PHASE_COLOURS = {"build": "tab:orange", "wait": "lightgray", "measure": "tab:green",
                 "run": "tab:blue"}


def timeline(study: optuna.Study, jobs: int) -> Plot:
    """Each trial's process over wall time, split into its phases as the study saw them
    (tuner.trial.result.TrialResult.phases): with ``--jobs`` > 1 several trials build
    together, wait at the gate, and are measured one at a time."""
    if jobs <= 1:
        return Plot("timeline", "Trial timeline", reason="trials ran one at a time (--jobs 1)")
    spans = [(t.number, trial_facts.trial_result(t).phases)
             for t in study.get_trials(deepcopy=False)
             if trial_facts.trial_result(t) is not None and trial_facts.trial_result(t).phases
             and not attrs.has(t, TrialKey.REUSED_FROM)]
    if not spans:
        return Plot("timeline", "Trial timeline", reason="no trial recorded its phases")
    origin = min(start for _, phases in spans for _, start, _ in phases)
    figure, ax = plt.subplots(figsize=(11, 0.3 * len(spans) + 1.5))
    for number, phases in spans:
        for name, start, end in phases:
            ax.broken_barh([(start - origin, max(end - start, 1e-3))], (number - 0.4, 0.8),
                           color=PHASE_COLOURS.get(name, "black"))
    ax.legend(handles=[plt.Line2D([], [], color=c, linewidth=6, label=n)
                       for n, c in PHASE_COLOURS.items()], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.01, 1.0))
    ax.set_xlabel("seconds since the first trial started")
    ax.set_ylabel("trial")
    ax.invert_yaxis()
    return Plot("timeline", "Trial timeline", figure)


def study_plots(study: optuna.Study, report: ValidationReport | None = None,
                profiles: tuple[Profile, Profile] | None = None, exported: int | None = None,
                jobs: int = 1) -> list[Plot]:
    baseline, winner = profiles if profiles else (None, None)
    return [history(study), importances(study), slices(study), validation(report),
            kernels(winner, baseline), pareto(study, exported), timeline(study, jobs)]


def close(plots: list[Plot]) -> None:
    for plot in plots:
        if plot.figure is not None:
            plt.close(plot.figure)

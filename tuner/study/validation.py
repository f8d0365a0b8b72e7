"""Validated winners: the top configurations and the baseline re-measured, interleaved.

A search's best trial is often just its luckiest measurement. Before a study reports or exports
its best, the top-k distinct configurations and the untuned baseline are measured again, each
in a fresh process of its own that compiles once, in interleaved rounds: in each round every
one times a slot of its runs in turn while the others idle (A B C base, base C B A, ...;
tuner.runner.interleave), so that the machine's drifts hit every candidate alike.

Each round gives a candidate one ratio: its throughput / the baseline's in the same round.
Ratios are treated as log-normal (Student's t on their logarithms, R rounds, R - 1 degrees of
freedom). The standard deviation s of the log ratios is never taken below what the rounds'
own measurements imply: each median latency has a relative standard error of about
1.2533 * CV / sqrt(timed runs), and a ratio's is the root of the sum of the two squares (a few
agreeing rounds do not make the interval narrower than the timings they come from):

* ``speedup``: the median of the per-round ratios;
* ``interval``: the 95 % confidence interval of the (geometric) mean ratio,
  exp(m +/- t * s / sqrt(R)); two candidates whose intervals overlap are within noise;
* ``spread``: the 95 % prediction interval of ONE new round, exp(m +/- t * s * sqrt(1 + 1/R)):
  where a re-measurement of the candidate and the baseline in fresh processes
  (``python -m tuner.measure``) is expected to fall. It is what the export records. With fewer
  than 2 valid rounds neither interval is bounded: (0, inf).

The winner is the fastest by median speedup, except that a simpler candidate (fewer kernel
choices, then fewer knobs, other than the space's default's) within noise of the fastest is
preferred: within noise, simpler wins. Where the fastest beats the space's default beyond noise
(the default, complexity (0, 0), among the candidates), a simpler candidate must beat it beyond
noise too: "within noise" is not transitive, and a candidate within noise both of the fastest
and of the default is no evidence that the search found anything. Two candidates are compared
directly (``relative``): per round, one's throughput over the other's (the baseline cancels out: its slow, noisy
builtin timing widens the speedup intervals of both alike, but says nothing about which of the
two is faster); within noise when the 95 % confidence interval of that ratio's geometric mean
reaches 1, its standard deviation taken as at least what the two candidates' own timings imply.
A winner other than the space's default that beats it beyond noise is confirmed before it is
believed: it, the default and the baseline are measured again in fresh processes, as many
rounds more; where it does not beat the default beyond noise there too, the default wins and
the note says why (``_confirmed``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from tuner.config import TuningConfig
from tuner.runner.interleave import run_interleaved
from tuner.trial.request import RequestKind, TrialRequest
from tuner.storages import attributes as attrs
from tuner.storages import trial_facts
from tuner.storages.attributes import StudyKey
from tuner.study.workload_screening import incumbent_trial

MIN_ROUNDS = 2
"""The fewest rounds that bound the intervals (``--validation-rounds`` must be at least this)."""

_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
          2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086)


def t_quantile_975(degrees_of_freedom: int) -> float:
    """Student's t 97.5 % quantile (two-sided 95 %); the normal 1.96 beyond 20 degrees."""
    return _T_975[degrees_of_freedom - 1] if degrees_of_freedom <= len(_T_975) else 1.96


def median_rel_se(latency_cv: float, timed_runs: int) -> float:
    """Approximate relative standard error of a median of ``timed_runs`` timings."""
    return 1.2533 * latency_cv / np.sqrt(timed_runs)


def log_t_interval(ratios, prediction: bool, min_sd: float = 0.0) -> tuple[float, float]:
    """95 % interval of the geometric mean of ``ratios`` (prediction=False) or of one new ratio
    (prediction=True), from Student's t on their logarithms, their standard deviation taken as
    at least ``min_sd``; (0, inf) below 2 finite ratios."""
    logs = np.log([r for r in ratios if np.isfinite(r) and r > 0])
    if len(logs) < MIN_ROUNDS:
        return 0.0, float("inf")
    scale = np.sqrt(1 + 1 / len(logs)) if prediction else np.sqrt(1 / len(logs))
    half = t_quantile_975(len(logs) - 1) * max(float(logs.std(ddof=1)), min_sd) * scale
    return float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half))


@dataclass(frozen=True)
class ValidatedCandidate:
    trial: int                      # the study trial whose configuration this is (-1: baseline)
    throughputs: tuple[float, ...]  # images/s per round (nan where a round failed)
    speedups: tuple[float, ...]     # throughput / baseline's throughput in the same round
    complexity: tuple[int, int]     # (kernel choices, knobs) unlike the space's default
    ratio_se: tuple[float, ...] = ()  # per round: relative standard error of that ratio
    rel_se: tuple[float, ...] = ()    # per round: relative standard error of the throughput

    @property
    def speedup(self) -> float:
        return float(np.nanmedian(self.speedups)) if np.isfinite(self.speedups).any() else 0.0

    @property
    def observed_range(self) -> tuple[float, float]:
        finite = [s for s in self.speedups if np.isfinite(s)]
        return (min(finite), max(finite)) if finite else (0.0, 0.0)

    @property
    def measurement_sd(self) -> float:
        """The log-ratio standard deviation the rounds' own timings imply (0 if unknown)."""
        finite = [e for e in self.ratio_se if np.isfinite(e)]
        return float(np.sqrt(np.mean(np.square(finite)))) if finite else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """95 % confidence interval of the mean speedup (see the module)."""
        return log_t_interval(self.speedups, prediction=False, min_sd=self.measurement_sd)

    @property
    def spread(self) -> tuple[float, float]:
        """95 % prediction interval of one re-measured speedup (see the module)."""
        return log_t_interval(self.speedups, prediction=True, min_sd=self.measurement_sd)


@dataclass(frozen=True)
class ValidationReport:
    rounds: int
    candidates: tuple[ValidatedCandidate, ...]
    winner: int                     # trial number chosen
    note: str = ""
    baseline_throughputs: tuple[float, ...] = field(default_factory=tuple)
    after_trials: int = 0           # the study's trial count when validated
    host: str = ""                  # the machine that re-measured (Host.describe())

    def candidate(self, trial: int) -> ValidatedCandidate:
        return next(c for c in self.candidates if c.trial == trial)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for entry, candidate in zip(data["candidates"], self.candidates):
            entry["speedup"] = candidate.speedup
            entry["spread"] = list(candidate.spread)
            entry["interval"] = list(candidate.interval)
            entry["observed_range"] = list(candidate.observed_range)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ValidationReport":
        fields = {f.name for f in dataclasses.fields(ValidatedCandidate)}
        candidates = tuple(ValidatedCandidate(**{k: (tuple(v) if isinstance(v, list) else v)
                                                 for k, v in c.items() if k in fields})
                           for c in data["candidates"])
        return cls(data["rounds"], candidates, data["winner"], data.get("note", ""),
                   tuple(data.get("baseline_throughputs", ())), data.get("after_trials", 0),
                   data.get("host", ""))


class Comparison(NamedTuple):
    """One candidate's throughput over another's, measured in the same rounds."""

    ratio: float                    # median of the per-round ratios (nan: no common round)
    interval: tuple[float, float]   # 95 % confidence interval of their geometric mean


def relative(candidate: ValidatedCandidate, reference: ValidatedCandidate) -> Comparison:
    """``candidate``'s throughput over ``reference``'s, round by round (see the module)."""
    ratios = [a / b for a, b in zip(candidate.throughputs, reference.throughputs)
              if np.isfinite(a / b) and a / b > 0]
    errors = [float(np.hypot(a, b)) for a, b in zip(candidate.rel_se, reference.rel_se)
              if np.isfinite(a) and np.isfinite(b)]
    min_sd = float(np.sqrt(np.mean(np.square(errors)))) if errors else 0.0
    return Comparison(float(np.median(ratios)) if ratios else float("nan"),
                      log_t_interval(ratios, prediction=False, min_sd=min_sd))


def over_default(report: "ValidationReport", study) -> tuple[int, Comparison] | None:
    """(the space default's trial, the winner's throughput over it in the same rounds) when the
    space's default was validated; None otherwise."""
    trials = study.get_trials(deepcopy=False)
    default = next((c for c in report.candidates
                    if trial_facts.origin(trials[c.trial]) == "default"), None)
    if default is None:
        return None
    return default.trial, relative(report.candidate(report.winner), default)


def complexity(config: TuningConfig, space_default: TuningConfig) -> tuple[int, int]:
    """(kernel choices other than the space default's, graph-kernel/rewrite/runtime/program
    knobs set otherwise than in the space's default): lower is simpler, the space's default
    itself (0, 0): what a user gets without searching wins whatever is within noise of it."""
    defaults, knobs = set(space_default.kernels), space_default.flat()
    return (sum(c not in defaults for c in config.kernels),
            sum(knobs.get(k) != v for k, v in config.flat().items() if k in knobs))


def distinct_top(run, k: int) -> list:
    """The k best ok trials with distinct configurations, baseline excluded; with several
    objectives only Pareto members, so that the validated winner is never a dominated trial."""
    pareto = ({t.number for t in run.study.best_trials}
              if len(run.study.directions) > 1 else None)
    chosen, seen = [], {TuningConfig().canonical_hash()}
    for trial in trial_facts.ranked_trials(run.study):
        if pareto is not None and trial.number not in pareto:
            continue
        digest = trial_facts.trial_config(trial).canonical_hash()
        if digest in seen:
            continue
        seen.add(digest)
        chosen.append(trial)
        if len(chosen) == k:
            break
    return chosen


class Measured(NamedTuple):
    """One configuration's throughput in one validation round (nan where it failed)."""

    images_per_second: float
    rel_se: float  # relative standard error of the median it is


def _throughputs(run, configs: list[TuningConfig], workdir, rounds: int) -> list[list[Measured]]:
    """Each configuration's throughput in each round (nan where it failed): all in processes
    of their own, compiled once (``--jobs`` at a time), then timed in turns, a slot a round."""
    measure = dataclasses.replace(run.measure, max_seconds=min(run.measure.max_seconds, 15.0),
                                  slots=rounds)
    requests = [TrialRequest(RequestKind.MEASURE, run.target, str(run.assets_dir), config=config,
                             kernel_space=run.kernel_space,
                             measure=measure.for_baseline() if config == TuningConfig() else measure,
                             seed=run.settings.weights_seed) for config in configs]
    outcomes = run_interleaved([(request, workdir / str(index))
                                for index, request in enumerate(requests)],
                               run.settings.trial_timeout, compile_jobs=run.settings.jobs)
    failed = Measured(float("nan"), float("nan"))
    batch = run.target.batch_size
    return [[Measured(batch / slot.median_s, median_rel_se(slot.cv, slot.runs))
             for slot in outcome.slots] + [failed] * (rounds - len(outcome.slots))
            if outcome.result.ok else [failed] * rounds for outcome in outcomes]


def _measured(run, configs: dict[int, TuningConfig], workdir,
              rounds: int) -> tuple[list[ValidatedCandidate], list[Measured]]:
    """Each configuration (by trial number) and the baseline measured in interleaved rounds:
    the candidates, and the baseline's round by round."""
    *rows, baseline = _throughputs(run, [*configs.values(), TuningConfig()], workdir, rounds)
    space_default = run.space.default_config()
    return [ValidatedCandidate(
        number, tuple(v.images_per_second for v in values),
        tuple(v.images_per_second / b.images_per_second for v, b in zip(values, baseline)),
        complexity(configs[number], space_default),
        tuple(float(np.hypot(v.rel_se, b.rel_se)) for v, b in zip(values, baseline)),
        tuple(v.rel_se for v in values))
        for number, values in zip(configs, rows)], baseline


def _confirmed(run, candidates: list[ValidatedCandidate], configs: dict[int, TuningConfig],
               winner: int, note: str, rounds: int) -> tuple[int, str]:
    """A winner that beat the space's default beyond noise, confirmed: the two and the baseline
    measured again, ``rounds`` more rounds in fresh processes. It stands only if it beats the
    default beyond noise there too; otherwise the default wins. (A transient slowdown of one
    process's slots can last all the rounds of one validation: seen once in seven on a 2-vCPU
    host, a winner 1.131x the default CI [1.016, 1.237] that paired inference by inference
    in one process ran at 0.998x of it.)"""
    default = next((c for c in candidates if c.complexity == (0, 0)), None)
    chosen = next(c for c in candidates if c.trial == winner)
    if default is None or chosen is default or relative(chosen, default).interval[0] <= 1.0:
        return winner, note
    again, _ = _measured(run, {winner: configs[winner], default.trial: configs[default.trial]},
                         run.directory / "validation" / "confirmation", rounds)
    versus = relative(again[0], again[1])
    figures = (f"{rounds} more rounds in fresh processes: {versus.ratio:.3f}x CI "
               f"[{versus.interval[0]:.3f}, {versus.interval[1]:.3f}]")
    if versus.interval[0] > 1.0:
        return winner, "; ".join(filter(None, [note, f"confirmed over the space's default in "
                                                     f"{figures}"]))
    return default.trial, (f"trial {winner} beat the space's default (trial {default.trial}) "
                           f"beyond noise, but not in {figures}: the default wins")


def choose_winner(candidates: list[ValidatedCandidate]) -> tuple[int, str]:
    ranked = sorted(candidates, key=lambda c: -c.speedup)
    fastest = ranked[0]
    default = next((c for c in ranked if c.complexity == (0, 0)), None)
    fastest_beats_default = (default is not None and default is not fastest
                             and relative(fastest, default).interval[0] > 1.0)

    def stands_in_for_the_fastest(c: ValidatedCandidate) -> bool:
        if c is fastest:
            return True
        if relative(c, fastest).interval[1] < 1.0:
            return False
        return not fastest_beats_default or relative(c, default).interval[0] > 1.0

    within_noise = [c for c in ranked if stands_in_for_the_fastest(c)]
    simplest = min(within_noise, key=lambda c: (c.complexity, -c.speedup))
    if simplest is not fastest:
        return simplest.trial, (f"trials {', '.join(str(c.trial) for c in within_noise)} are "
                                f"within noise of each other; trial {simplest.trial} is the "
                                f"simplest (kernels, knobs unlike the space's default = "
                                f"{simplest.complexity})")
    if len(within_noise) > 1:
        return fastest.trial, (f"trials {', '.join(str(c.trial) for c in within_noise)} are "
                               f"within noise of each other; trial {fastest.trial} is also the simplest")
    return fastest.trial, ""


def with_references(run, top: list) -> list:
    """``top``, the space's default configuration's trial and workload screening's incumbent
    (each when it measured and is not among them): the winner is then also compared with the
    default in the same rounds, and the screening's result is re-measured even where its one
    timing in a slow window ranked it below the top (tuner.study.workload_screening)."""
    def measured(trial) -> bool:
        result = None if trial is None else trial_facts.trial_result(trial)
        return result is not None and result.ok

    trials = run.study.get_trials(deepcopy=False)
    default = next((t for t in trials if trial_facts.origin(t) == "default" and measured(t)), None)
    chosen = list(top)
    digests = {trial_facts.trial_config(t).canonical_hash() for t in chosen}
    for trial in (default, incumbent_trial(run.study)):
        if measured(trial) and trial_facts.trial_config(trial).canonical_hash() not in digests:
            chosen.append(trial)
            digests.add(trial_facts.trial_config(trial).canonical_hash())
    return chosen


def validate_winners(run, k: int = 3, rounds: int = 3) -> ValidationReport | None:
    """Re-measure the top-k configurations, the space's default, workload screening's
    incumbent and the baseline in interleaved rounds (see module)."""
    if k < 1 or rounds < 1:
        return None
    top = distinct_top(run, k)
    if not top:
        return None
    top = with_references(run, top)
    configs = {t.number: trial_facts.trial_config(t) for t in top}
    candidates, baseline = _measured(run, configs, run.directory / "validation", rounds)
    winner, note = choose_winner(candidates)
    winner, note = _confirmed(run, candidates, configs, winner, note, rounds)
    report = ValidationReport(rounds, tuple(candidates), winner, note,
                              tuple(b.images_per_second for b in baseline),
                              after_trials=trial_facts.trial_count(run.study),
                              host=run.host.describe() if hasattr(run, "host") else "")
    attrs.put(run.study, StudyKey.VALIDATION, report.to_dict())
    return report


def current_report(study) -> ValidationReport | None:
    """The stored validation, if no trial was added to the study since it ran."""
    data = attrs.get(study, StudyKey.VALIDATION)
    if not data or data.get("after_trials") != trial_facts.trial_count(study):
        return None
    return ValidationReport.from_dict(data)

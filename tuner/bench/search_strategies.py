"""The search itself: default strategy vs random search, --jobs, and warm start.

Every study is a real ``python -m tuner.search`` run with its own study name in the benchmark's
storage under ``--runs-dir`` (see tuner.bench.studies), so what is compared is what users run:

* ``default``: TPE, starting from the space's default configuration after the baseline, with
  workload screening (tuner.study.workload_screening);
* ``random``: Optuna's RandomSampler over the same space, the baseline only enqueued, no
  screening (its trials depend on the seed alone).

1. Strategies. For each seed and strategy: the best throughput among the first 10, 25 and 50
   trials (the baseline is trial 0) and how many trials it took to reach 95 % of the default
   strategy's 50-trial best with the same seed (the issue: "our default should reach 95 % of its
   50-trial best in fewer trials than random") and 95 % of the study's own best. A search's
   time is the span from its first trial's start to its last trial's end. The first seed's
   default search also validates its top 3 and exports its winner
   (``<runs-dir>/exports/default-seed<S>.json``, for ``python -m tuner.measure``); its validated
   kernels become the tuning records of step 3.
2. ``--compare-jobs M``: the same random search (same seed, so the same configuration at each
   trial number) with ``--jobs M`` and with ``--jobs`` (the benchmark's), interleaved in chunks
   of 10 trials, each building its kernels into an empty cache of its own, without pruning (so
   that both do the same work) and with at most 10 s of timing per trial: wall time of each,
   and the throughput of every configuration both measured, one against the other.
3. Warm start: a default search on ``--warm-model`` without tuning records and the same search
   with the records of step 1 (another model: it reuses them for the convolutions both models
   have), interleaved the same way: wall time and trials to reach 95 % of the better best.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np

from tuner.bench.studies import (SearchOutcome, StudySpec, run_interleaved, run_study,
                                 warm_started)

STRATEGIES = {"default": ("--sampler", "tpe"),
              "random": ("--sampler", "random", "--no-default-trial", "--no-workload-screening")}
NO_VALIDATION = ("--validate-top", "0", "--no-warm-start")
REACH_FRACTION = 0.95
# Without pruning both searches do the same work and every configuration that runs has a full
# figure to compare; a shorter timing cap keeps the slow random configurations affordable.
JOBS_CHECK_FLAGS = ("--pruner", "none", "--max-seconds", "10")
CHUNK = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="passed to every search")
    parser.add_argument("--runs-dir", type=Path, default=Path("mlruns") / "bench-search")
    parser.add_argument("--compare-jobs", type=int, metavar="M",
                        help="also compare a random search with --jobs M against --jobs")
    parser.add_argument("--warm-model", default="resnet18",
                        help="model of the warm-start comparison (default resnet18)")
    parser.add_argument("--no-warm-start-check", action="store_true",
                        help="skip the searches without and with tuning records")


def _spec(args, name: str, seed: int, flags: tuple[str, ...], **changes) -> StudySpec:
    fields = dict(name=name, seed=seed, flags=flags, model=args.model,
                  batch_size=args.batch_size, image_size=args.image_size, jobs=args.jobs)
    return StudySpec(**{**fields, **changes})


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def strategies(args) -> dict[tuple[str, int], SearchOutcome]:
    outcomes = {}
    for seed in args.seeds:
        for strategy, flags in STRATEGIES.items():
            validated = strategy == "default" and seed == args.seeds[0]
            extra = ("--no-warm-start",) if validated else NO_VALIDATION
            outcomes[(strategy, seed)] = run_study(
                args.runs_dir, _spec(args, f"{strategy}-seed{seed}", seed, flags + extra),
                args.trials)
    return outcomes


def trials_to_reach(outcomes: dict[tuple[str, int], SearchOutcome], last: int
                    ) -> dict[tuple[str, int], tuple[int | None, int | None]]:
    """Per study: the trials it took to reach 95 % of its own best after ``last`` trials, and
    to reach 95 % of the default strategy's best after ``last`` trials with the same seed (the
    issue's "95 % of its 50-trial best", "its" being our default's); None if never."""
    reached = {}
    for (strategy, seed), outcome in outcomes.items():
        own = outcome.best_after(last)
        default = outcomes.get(("default", seed))
        target = default.best_after(last) if default else None
        reached[(strategy, seed)] = (
            outcome.trials_to_reach(REACH_FRACTION * own) if own else None,
            outcome.trials_to_reach(REACH_FRACTION * target) if target else None)
    return reached


def verdicts(reached: dict[tuple[str, int], tuple[int | None, int | None]], last: int
             ) -> list[str]:
    """One line per reading and strategy (median over seeds; never reached counts as
    ``last + 1``), then whether the default needs fewer trials than random."""
    lines = []
    for index, reading in ((1, "95 % of the default's best with the same seed"),
                           (0, "95 % of its own best")):
        medians = {}
        for strategy in dict.fromkeys(s for s, _ in reached):
            counts = [r[index] if r[index] is not None else last + 1
                      for (s, _), r in reached.items() if s == strategy]
            medians[strategy] = statistics.median(counts)
            lines.append(f"{strategy}: reaches {reading} in median {medians[strategy]:g} trials "
                         f"(per seed {counts})")
        if {"default", "random"} <= set(medians):
            better = medians["default"] < medians["random"]
            lines.append(f"default reaches {reading} in fewer trials than random: "
                         f"{'yes' if better else 'NO'}")
    return lines


def print_strategies(outcomes: dict[tuple[str, int], SearchOutcome], checkpoints) -> None:
    """Per study: best after each checkpoint; trials to 95 % of the default's best with the
    same seed ('dflt') and of its own best ('own'), '-' if never."""
    last = max(checkpoints)
    reached = trials_to_reach(outcomes, last)
    print(f"\nbest throughput (images/s) after N trials; trials to reach 95 % of the default "
          f"strategy's {last}-trial best with the same seed ('dflt') and of the study's own "
          f"best ('own')")
    print(f"{'strategy':<9}{'seed':>5}" + "".join(f"{'N=' + str(c):>10}" for c in checkpoints)
          + f"{'dflt':>6}{'own':>6}{'wall min':>10}")
    for (strategy, seed), outcome in outcomes.items():
        own, to_default = reached[(strategy, seed)]
        print(f"{strategy:<9}{seed:>5}"
              + "".join(f"{_fmt(outcome.best_after(c)):>10}" for c in checkpoints)
              + f"{_fmt(to_default, 'd'):>6}{_fmt(own, 'd'):>6}"
              + f"{outcome.wall_seconds / 60:>10.1f}")
    for line in verdicts(reached, last):
        print(line)


def same_figures(first: SearchOutcome, second: SearchOutcome) -> np.ndarray:
    """second's throughput / first's, for every configuration both measured in full."""
    common = sorted(set(first.figures) & set(second.figures))
    return np.array([second.figures[h] / first.figures[h] for h in common])


def jobs_check(args) -> None:
    seed, flags = args.seeds[0], STRATEGIES["random"] + NO_VALIDATION + JOBS_CHECK_FLAGS
    fewer, more = sorted((args.jobs, args.compare_jobs))
    specs = [_spec(args, f"jobs{jobs}-random-seed{seed}", seed, flags, jobs=jobs,
                   own_kernel_cache=True) for jobs in (more, fewer)]
    parallel, serial = run_interleaved(args.runs_dir, specs, args.trials, CHUNK)
    print(f"\n{args.trials}-trial random search, seed {seed}, interleaved in chunks of {CHUNK}:")
    for outcome, jobs in ((parallel, more), (serial, fewer)):
        print(f"  --jobs {jobs}: {outcome.wall_seconds / 60:.1f} min, best "
              f"{_fmt(outcome.best_after(args.trials))} images/s")
    print(f"  wall time --jobs {more} / --jobs {fewer}: "
          f"{parallel.wall_seconds / serial.wall_seconds:.2f}")
    ratios = same_figures(serial, parallel)
    if len(ratios):
        q1, median, q3 = np.percentile(ratios, [25, 50, 75])
        print(f"  the {len(ratios)} configurations both measured in full: throughput with "
              f"--jobs {more} / --jobs {fewer}: median {median:.3f}, "
              f"quartiles [{q1:.3f}, {q3:.3f}], min {ratios.min():.3f}, max {ratios.max():.3f}")


def warm_start_check(args) -> None:
    seed = args.seeds[0]
    specs = [_spec(args, f"{name}-{args.warm_model}", seed,
                   STRATEGIES["default"] + ("--validate-top", "0") + extra,
                   model=args.warm_model, own_kernel_cache=True)
             for name, extra in (("warm-start-off", ("--no-warm-start",)), ("warm-start-on", ()))]
    cold, warm = run_interleaved(args.runs_dir, specs, args.trials, CHUNK)
    target = REACH_FRACTION * max(cold.best_after(args.trials) or 0, warm.best_after(args.trials) or 0)
    print(f"\n{args.trials}-trial default search on {args.warm_model}, interleaved in chunks of "
          f"{CHUNK}; 95 % of the better best = {target:.3f} images/s:")
    for outcome, label in ((cold, "without tuning records"),
                           (warm, f"with the records of {args.model}'s validated search")):
        print(f"  {label}: {outcome.wall_seconds / 60:.1f} min, best "
              f"{_fmt(outcome.best_after(args.trials))} images/s, reaches 95 % after "
              f"{_fmt(outcome.trials_to_reach(target), 'd')} trials")
    started = warm_started(args.runs_dir, warm.name)
    print(f"  warm start: trial {started[0]} took tuning records for {started[1]} of its "
          f"{started[2]} kernel workloads" if started else "  warm start: no tuning record applied")


def run(args: argparse.Namespace) -> int:
    print_strategies(strategies(args), args.checkpoints)
    if args.compare_jobs:
        jobs_check(args)
    if not args.no_warm_start_check:
        warm_start_check(args)
    return 0

"""The search itself: default strategy vs random search, and warm start.

Every study is a real ``python -m tuner.search`` run (one process, its own study name, in the
benchmark's own storage under ``--runs-dir``), so what is compared is what users run:

* ``default``: TPE, starting from the space's default configuration after the baseline;
* ``random``: Optuna's RandomSampler over the same space, the baseline only enqueued.

For each seed and strategy: the best throughput among the first 10, 25 and 50 trials (the
baseline is trial 0) and how many trials it took to reach 95 % of the study's own best. Then
a search without tuning records (it saves its validated winner's kernels as records) and the
same search again with them (warm start): wall time and trials to 95 % of the cold best.
A study already complete in the storage is read, not run again (an interrupted benchmark
resumes with the missing trials). A search's time is the span from its first trial's start
to its last trial's end (the final validation of winners is not part of it).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

STRATEGIES = {"default": ("--sampler", "tpe"),
              "random": ("--sampler", "random", "--no-default-trial")}
STRATEGY_FLAGS = {name: (*flags, "--validate-top", "0", "--no-warm-start")
                  for name, flags in STRATEGIES.items()}
REACH_FRACTION = 0.95


@dataclass(frozen=True)
class SearchOutcome:
    """One study: each trial's measured throughput in trial order (None: no valid
    measurement) and the wall time of the search command."""

    name: str
    throughputs: tuple[float | None, ...]
    wall_seconds: float

    def best_after(self, trials: int) -> float | None:
        measured = [t for t in self.throughputs[:trials] if t is not None]
        return max(measured) if measured else None

    def trials_to_reach(self, target: float) -> int | None:
        """The fewest leading trials whose best is at least ``target``."""
        for count in range(1, len(self.throughputs) + 1):
            best = self.best_after(count)
            if best is not None and best >= target:
                return count
        return None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="passed to every search")
    parser.add_argument("--runs-dir", type=Path, default=Path("mlruns") / "bench-search")
    parser.add_argument("--no-warm-start-check", action="store_true",
                        help="skip the searches without and with tuning records")
    parser.add_argument("--compare-jobs", type=int, metavar="M",
                        help="also run the first seed's default search with --jobs M, and "
                        "compare its wall time and best with the --jobs one")


def _search_command(args, name: str, seed: int, extra: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "tuner.search", "--model", args.model,
            "--batch-size", str(args.batch_size), "--image-size", str(args.image_size),
            "--trials", str(args.trials), "--seed", str(seed), "--study-name", name,
            "--runs-dir", str(args.runs_dir), "--jobs", str(args.jobs), "--no-progress", *extra]
    # a later "--jobs" in extra overrides this one (argparse keeps the last)


def _read_study(storage: str, name: str) -> tuple[tuple[float | None, ...], float] | None:
    """Each trial's throughput (None: no valid measurement) and the seconds from the first
    trial's start to the last one's end (the search itself, without the final validation)."""
    import optuna

    from tuner.study import records

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    if not trials:
        return (), 0.0
    ok = {t.number for t in records.ok_trials(trials)}
    span = (max(t.datetime_complete for t in trials)
            - min(t.datetime_start for t in trials)).total_seconds()
    return tuple(t.values[0] if t.number in ok else None for t in trials), span


def run_study(args, name: str, seed: int, extra: tuple[str, ...]) -> SearchOutcome:
    """Run one search command for the trials the storage does not hold yet, read its trials."""
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{args.runs_dir / 'optuna.db'}"
    found = _read_study(storage, name)
    missing = args.trials - len(found[0]) if found else args.trials
    if missing > 0:
        log = args.runs_dir / f"{name}.log"
        print(f"  {name}: running (log {log})", flush=True)
        command = _search_command(args, name, seed, extra)
        command[command.index("--trials") + 1] = str(missing)
        with open(log, "a") as out:
            code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise SystemExit(f"{name}: tuner.search exited with {code}; see {log}")
        found = _read_study(storage, name)
    throughputs, span = found
    outcome = SearchOutcome(name, throughputs[:args.trials], span)
    print(f"  {name}: {len(outcome.throughputs)} trials, best "
          f"{_fmt(outcome.best_after(args.trials))} images/s, {outcome.wall_seconds / 60:.1f} min",
          flush=True)
    return outcome


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_strategies(outcomes: dict[tuple[str, int], SearchOutcome], checkpoints) -> None:
    print("\nbest throughput (images/s) after N trials; 'to 95%': trials to reach 95 % of the "
          "study's own best")
    print(f"{'strategy':<9}{'seed':>5}" + "".join(f"{'N=' + str(c):>10}" for c in checkpoints)
          + f"{'to 95%':>9}{'wall min':>10}")
    reach: dict[str, list[int]] = {}
    for (strategy, seed), outcome in outcomes.items():
        final = outcome.best_after(max(checkpoints))
        needed = outcome.trials_to_reach(REACH_FRACTION * final) if final else None
        reach.setdefault(strategy, []).append(needed if needed is not None else max(checkpoints) + 1)
        print(f"{strategy:<9}{seed:>5}"
              + "".join(f"{_fmt(outcome.best_after(c)):>10}" for c in checkpoints)
              + f"{_fmt(needed, 'd'):>9}{outcome.wall_seconds / 60:>10.1f}")
    for strategy, counts in reach.items():
        print(f"{strategy}: reaches 95 % of its best in median {statistics.median(counts):g} trials "
              f"(per seed {counts})")
    if {"default", "random"} <= set(reach):
        better = statistics.median(reach["default"]) < statistics.median(reach["random"])
        print(f"default reaches 95 % of its best in fewer trials than random: "
              f"{'yes' if better else 'NO'}")


def warm_start_check(args) -> None:
    cold = run_study(args, "warm-start-off", args.seeds[0], STRATEGIES["default"])
    warm = run_study(args, "warm-start-on", args.seeds[0], STRATEGIES["default"])  # same flags
    target = REACH_FRACTION * (cold.best_after(args.trials) or float("inf"))
    print(f"\n50-trial search without tuning records: {cold.wall_seconds / 60:.1f} min, "
          f"95 % of its best after {_fmt(cold.trials_to_reach(target), 'd')} trials")
    print(f"the same search with the records the first one saved: {warm.wall_seconds / 60:.1f} "
          f"min, 95 % of the first one's best after {_fmt(warm.trials_to_reach(target), 'd')} "
          f"trials")


def jobs_check(args, reference: SearchOutcome, jobs: int) -> None:
    seed = args.seeds[0]
    other = run_study(args, f"default-seed{seed}-jobs{jobs}", seed,
                      (*STRATEGY_FLAGS["default"], "--jobs", str(jobs)))
    print(f"\n{args.trials}-trial default search, seed {seed}:")
    for outcome, count in ((reference, args.jobs), (other, jobs)):
        print(f"  --jobs {count}: {outcome.wall_seconds / 60:.1f} min, best "
              f"{_fmt(outcome.best_after(args.trials))} images/s")
    print(f"  wall time --jobs {args.jobs} / --jobs {jobs}: "
          f"{reference.wall_seconds / other.wall_seconds:.2f}")


def run(args: argparse.Namespace) -> int:
    outcomes = {}
    for seed in args.seeds:
        for strategy in STRATEGIES:
            outcomes[(strategy, seed)] = run_study(args, f"{strategy}-seed{seed}", seed,
                                                   STRATEGY_FLAGS[strategy])
    print_strategies(outcomes, args.checkpoints)
    if args.compare_jobs:
        jobs_check(args, outcomes[("default", args.seeds[0])], args.compare_jobs)
    if not args.no_warm_start_check:
        warm_start_check(args)
    return 0

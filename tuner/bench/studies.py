"""Running ``python -m tuner.search`` studies for the search benchmark and reading them back.

A study is described by a :class:`StudySpec`; :func:`run_study` runs it to its trial count in
one command, :func:`run_interleaved` runs several of them alternately, ``chunk`` trials per
command, so that slow drifts of the machine hit each of them alike. Studies already complete in
the benchmark's storage are read, not run again (an interrupted benchmark resumes).
"""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tuner.children import child_environment, python_command
from tuner.files import atomic_write_text
from tuner.kernels.build import CACHE_ENV


@dataclass(frozen=True)
class StudySpec:
    """One ``tuner.search`` study. ``own_kernel_cache``: its kernel builds go to a cache of its
    own (empty at its start), so that it never reuses what another study of the benchmark built."""

    name: str
    seed: int
    flags: tuple[str, ...]
    model: str
    batch_size: int
    image_size: int
    jobs: int = 1
    own_kernel_cache: bool = False


@dataclass(frozen=True)
class SearchOutcome:
    """One study: each trial's measured throughput in trial order (None: no valid
    measurement), the search's wall time, and ``figures``: the throughput of every
    configuration the study measured in full (config hash -> images/s; not pruned, not reused)."""

    name: str
    throughputs: tuple[float | None, ...]
    wall_seconds: float
    figures: dict[str, float] | None = None

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


def storage_url(runs_dir: Path) -> str:
    return f"sqlite:///{runs_dir / 'optuna.db'}"


def search_command(spec: StudySpec, runs_dir: Path, trials: int) -> list[str]:
    return [*python_command("tuner.search"), "--model", spec.model,
            "--batch-size", str(spec.batch_size), "--image-size", str(spec.image_size),
            "--trials", str(trials), "--seed", str(spec.seed), "--study-name", spec.name,
            "--runs-dir", str(runs_dir), "--jobs", str(spec.jobs), "--no-progress", "--no-profile",
            "--no-report", *spec.flags]


def read_trials(runs_dir: Path, name: str):
    """The study's finished trials, or None when the storage has no such study."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage_url(runs_dir))
    except KeyError:
        return None
    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def warm_started(runs_dir: Path, name: str) -> tuple[int, int, int] | None:
    """(trial number, workloads set from tuning records, the model's kernel workloads) of the
    study's warm-start trial, or None when it had no tuning record to start from."""
    import optuna

    from tuner.storages import attributes as attrs
    from tuner.storages.attributes import StudyKey, TrialKey

    study = optuna.load_study(study_name=name, storage=storage_url(runs_dir))
    workloads = len(attrs.get(study, StudyKey.MODEL_INFO, {}).get("workloads", []))
    return next(((t.number, len(attrs.trial_get(t, TrialKey.WARM_START)), workloads)
                 for t in study.get_trials(deepcopy=False)
                 if attrs.has(t, TrialKey.WARM_START)), None)


def _walls_file(runs_dir: Path, name: str) -> Path:
    return runs_dir / f"{name}.walls.json"


def _run_command(spec: StudySpec, runs_dir: Path, trials: int) -> None:
    log = runs_dir / f"{spec.name}.log"
    env = child_environment(spec.model)
    if spec.own_kernel_cache:
        env[CACHE_ENV] = str(runs_dir / "kernel-caches" / spec.name)
    started = time.perf_counter()
    with open(log, "a") as out:
        code = subprocess.run(search_command(spec, runs_dir, trials), stdout=out,
                              stderr=subprocess.STDOUT, env=env).returncode
    if code != 0:
        raise SystemExit(f"{spec.name}: tuner.search exited with {code}; see {log}")
    walls = _walls_file(runs_dir, spec.name)
    done = json.loads(walls.read_text()) if walls.exists() else []
    atomic_write_text(walls, json.dumps(done + [time.perf_counter() - started]))


def _missing(runs_dir: Path, spec: StudySpec, trials: int) -> int:
    found = read_trials(runs_dir, spec.name)
    return trials - len(found) if found is not None else trials


def outcome(runs_dir: Path, spec: StudySpec, trials: int, wall: str) -> SearchOutcome:
    """Read a study back. ``wall="trials"``: from its first trial's start to its last trial's
    end (the final validation of winners is not part of it); ``wall="commands"``: the summed
    wall time of the search commands that ran it (for studies run in several commands)."""
    from tuner.storages import attributes as attrs
    from tuner.storages import trial_facts
    from tuner.storages.attributes import TrialKey

    finished = read_trials(runs_dir, spec.name) or []
    ok = {t.number: t for t in trial_facts.ok_trials(finished)}
    if wall == "trials":
        seconds = ((max(t.datetime_complete for t in finished)
                    - min(t.datetime_start for t in finished)).total_seconds() if finished else 0.0)
    else:
        walls = _walls_file(runs_dir, spec.name)
        seconds = sum(json.loads(walls.read_text())) if walls.exists() else 0.0
    figures = {attrs.trial_get(t, TrialKey.CONFIG_HASH): t.values[0] for t in ok.values()
               if not attrs.has(t, TrialKey.REUSED_FROM)}
    throughputs = tuple(ok[t.number].values[0] if t.number in ok else None for t in finished)
    return SearchOutcome(spec.name, throughputs[:trials], seconds, figures)


def _report(result: SearchOutcome, trials: int) -> None:
    best = result.best_after(trials)
    print(f"  {result.name}: {len(result.throughputs)} trials, best "
          f"{'-' if best is None else f'{best:.3f}'} images/s, {result.wall_seconds / 60:.1f} min",
          flush=True)


def run_study(runs_dir: Path, spec: StudySpec, trials: int) -> SearchOutcome:
    """Run the trials the storage does not hold yet in one command; read the study."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    missing = _missing(runs_dir, spec, trials)
    if missing > 0:
        print(f"  {spec.name}: running (log {runs_dir / (spec.name + '.log')})", flush=True)
        _run_command(spec, runs_dir, missing)
    result = outcome(runs_dir, spec, trials, wall="trials")
    _report(result, trials)
    return result


def run_interleaved(runs_dir: Path, specs: list[StudySpec], trials: int,
                    chunk: int) -> list[SearchOutcome]:
    """Run the studies in turns of ``chunk`` trials (A B, then B A, ...) until each has
    ``trials``; their wall time is the sum of their commands' (see :func:`outcome`)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    missing = {spec.name: _missing(runs_dir, spec, trials) for spec in specs}
    turn = 0
    while any(count > 0 for count in missing.values()):
        for spec in (specs if turn % 2 == 0 else specs[::-1]):
            if missing[spec.name] > 0:
                run_now = min(chunk, missing[spec.name])
                print(f"  {spec.name}: {run_now} trials (log "
                      f"{runs_dir / (spec.name + '.log')})", flush=True)
                _run_command(spec, runs_dir, run_now)
                missing[spec.name] -= run_now
        turn += 1
    results = [outcome(runs_dir, spec, trials, wall="commands") for spec in specs]
    for result in results:
        _report(result, trials)
    return results

"""Profiling a configuration and the untuned baseline, each in a fresh trial process, and
writing what they measured (tables, raw profiler output, one Chrome trace) to a directory."""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from tuner.config import TuningConfig
from tuner.files import atomic_write_text
from tuner.models import TuningTarget
from tuner.profiling.compare import compare, profiler_note, render_csv, render_markdown
from tuner.profiling.operator_times import Profile
from tuner.profiling.trace import merged_trace
from tuner.runner.isolate import run_isolated
from tuner.trial.measurement import MeasureSettings
from tuner.trial.request import TrialRequest
from tuner.trial.protocol import PROFILE_FILE

DEFAULT_RUNS = 10
BASELINE_RUNS = 2
"""The untuned baseline's profiled runs, whatever is asked: each is seconds long and already
holds thousands of operator calls, and a search profiles it at its end."""
PROFILER_SLOWDOWN_BOUND = 2.0
"""How much slower than measured a profiled run may be, for ``profile_one``'s time budget."""


@dataclass(frozen=True)
class ProfileOutcome:
    """Both sides' profiles, or the first failure in one line (``error``): a profiler or build
    failure is a result, never an exception."""

    baseline: Profile | None
    tuned: Profile | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.baseline is not None and self.tuned is not None


def profile_one(target: TuningTarget, assets_dir: Path, config: TuningConfig, label: str,
                workdir: Path, runs: int = DEFAULT_RUNS, warmup_runs: int = 2, seed: int = 0,
                timeout: float = 300.0, measured_latency_s: float = 0.0
                ) -> tuple[Profile | None, str]:
    """(profile, "") or (None, why) for ``config`` in a fresh process in ``workdir``; the
    untuned baseline with at most ``BASELINE_RUNS`` runs after one warmup run.

    ``timeout`` bounds the process's set-up; with the configuration's ``measured_latency_s``
    (one inference, as a trial measured it) the process also gets its runs' time: the warmup
    runs, ``runs`` unprofiled and ``runs`` profiled ones (tuner.profiling.trace_capture), these
    up to ``PROFILER_SLOWDOWN_BOUND`` times slower (the untuned ResNet50 at batch 16 takes a minute
    per inference)."""
    if config == TuningConfig():
        runs, warmup_runs = min(runs, BASELINE_RUNS), min(warmup_runs, 1)
    timeout += (warmup_runs + runs + runs * PROFILER_SLOWDOWN_BOUND) * measured_latency_s
    request = TrialRequest("profile", target, str(assets_dir), config=config,
                           measure=MeasureSettings(warmup_runs=warmup_runs), seed=seed,
                           profile_runs=runs)
    result = run_isolated(request, workdir, timeout)
    if not result.ok:
        return None, f"{label}: {result.reason()}"
    profile = Profile.from_dict(json.loads((workdir / PROFILE_FILE).read_text()))
    return Profile.from_dict({**profile.to_dict(), "label": f"{label}: {profile.label}"}), ""


def profile_pair(target: TuningTarget, assets_dir: Path, config: TuningConfig, workdir: Path,
                 runs: int = DEFAULT_RUNS, seed: int = 0, timeout: float = 300.0) -> ProfileOutcome:
    """The untuned baseline, then ``config``, each profiled in its own process."""
    profiles = {}
    for label, side_config in (("baseline", TuningConfig()), ("tuned", config)):
        profile, error = profile_one(target, assets_dir, side_config, label, workdir / label,
                                     runs, seed=seed, timeout=timeout)
        if profile is None:
            return ProfileOutcome(profiles.get("baseline"), None, error)
        profiles[label] = profile
    return ProfileOutcome(profiles["baseline"], profiles["tuned"])


TABLE_FILES = ("table.csv", "table.json", "table.md", "trace.json")


def write_outputs(outcome: ProfileOutcome, out_dir: Path, top: int = 15) -> list:
    """Write the raw profiler output of each side (``raw/<side>/``), the comparison as CSV,
    JSON and Markdown, and ``trace.json`` with both runs; return the comparison's rows."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pair = (outcome.baseline, outcome.tuned)
    for side, profile in zip(("baseline", "tuned"), pair):
        target = out_dir / "raw" / side
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(profile.raw_dir, target)
    rows, all_rows = compare(*pair, top=top), compare(*pair, top=0)
    atomic_write_text(out_dir / "table.csv", render_csv(all_rows))
    atomic_write_text(out_dir / "table.md", render_markdown(rows, *pair))
    atomic_write_text(out_dir / "table.json", json.dumps(
        {"baseline": outcome.baseline.to_dict(), "tuned": outcome.tuned.to_dict(),
         "rows": [r.to_dict() for r in all_rows],
         "notes": [n for n in map(profiler_note, pair) if n]}, indent=1))
    atomic_write_text(out_dir / "trace.json", json.dumps(merged_trace(pair)))
    return rows

"""Shared fixtures: a tiny target, prepared assets, isolated runs dirs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tuner.config import TuningConfig
from tuner.cpuinfo import flags as cpu_flags
from tuner.models import TuningTarget
from tuner.runner.isolate import run_isolated
from tuner.trial.measurement import MeasureSettings
from tuner.trial.result import TrialResult
from tuner.trial.request import TrialRequest

TINY_MODEL = "tests.fixtures.tiny_models:tiny_net"


def needs_flags(*flags: str):
    """Skip where the CPU lacks one of ``flags``: the kernels written for them are not offered
    there (the hand-written ones are AVX-512 code, AMD Zen 3 has none), nor can they run."""
    missing = [flag for flag in flags if flag not in cpu_flags()]
    return pytest.mark.skipif(bool(missing), reason=f"this CPU has no {', '.join(missing)}")


needs_avx512 = needs_flags("avx512f")
needs_avx2_fma = needs_flags("avx2", "fma")  # the program runtime's own Winograd
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _run_from_repo(monkeypatch):
    """Trial processes import test factories by module path from the working directory."""
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="session")
def tiny_target() -> TuningTarget:
    return TuningTarget(TINY_MODEL, batch_size=2, image_size=16)


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory, tiny_target) -> Path:
    """Weights, input and reference output of the tiny net, prepared once per test session."""
    work = tmp_path_factory.mktemp("tiny")
    result = run_isolated(TrialRequest("prepare", tiny_target, str(work / "assets")),
                          work / "prepare", timeout=120)
    assert result.ok, result.error
    return work / "assets"


@pytest.fixture
def measure_tiny(tiny_target, tiny_assets, tmp_path):
    """Run one isolated measurement of the tiny net under a configuration."""
    def measure(config: TuningConfig = TuningConfig(), dump_graph: bool = False,
                timeout: float = 120) -> TrialResult:
        request = TrialRequest("measure", tiny_target, str(tiny_assets), config=config,
                               measure=MeasureSettings(max_seconds=3.0), dump_graph=dump_graph)
        return run_isolated(request, tmp_path / "trial", timeout)
    return measure


PROFILED = ["--model", TINY_MODEL, "--batch-size", "2", "--image-size", "16", "--min-runs", "2",
            "--min-seconds", "0", "--max-seconds", "3", "--no-progress", "--seed", "1",
            "--validate-top", "2", "--validation-rounds", "2"]
FAST = [*PROFILED, "--no-profile"]


def tuner(module, *args, runs_dir=None, check=True):
    """Run ``python -m tuner.<module>`` as a user does; its CompletedProcess."""
    runs_args = ["--runs-dir", str(runs_dir)] if runs_dir else []
    process = subprocess.run([sys.executable, "-m", f"tuner.{module}", *map(str, args), *runs_args],
                             cwd=REPO, capture_output=True, text=True, timeout=600)
    if check:
        assert process.returncode == 0, process.stderr[-3000:]
    return process


@pytest.fixture(scope="session")
def searched(tmp_path_factory):
    """A 3-trial search that profiles its winner, then the same command again with 2 more
    trials (resume): (runs dir, first process, second process). Without pruning: on the tiny
    net a trial's running throughput against the baseline's is mostly noise (CI once pruned
    the space's default there, leaving nothing to validate or profile); pruning has its own
    tests (tests/study/test_loop.py)."""
    runs = tmp_path_factory.mktemp("runs")
    first = tuner("search", *PROFILED, "--pruner", "none", "--trials", "3", runs_dir=runs)
    second = tuner("search", *FAST, "--pruner", "none", "--trials", "2", runs_dir=runs)
    return runs, first, second

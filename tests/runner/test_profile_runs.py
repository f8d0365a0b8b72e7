"""tuner.runner.profile_runs.profile_one: the profiled runs and the time budget it asks for."""
from types import SimpleNamespace

import pytest

from tuner.config import ProgramConfig, TuningConfig
from tuner.runner import profile_runs


@pytest.fixture
def requests(monkeypatch):
    """The (request, timeout) pairs profile_one hands to run_isolated, which fails at once."""
    seen = []

    def run_isolated(request, workdir, timeout):
        seen.append((request, timeout))
        return SimpleNamespace(ok=False, reason=lambda: "timeout: no result")

    monkeypatch.setattr(profile_runs, "run_isolated", run_isolated)
    return seen


@pytest.mark.parametrize("config, runs, warmup", [
    (TuningConfig(), profile_runs.BASELINE_RUNS, 1),
    (TuningConfig(programs=ProgramConfig("network")), 5, 2),
])
def test_the_timeout_grows_with_the_runs_at_the_measured_latency(requests, tmp_path, config,
                                                                  runs, warmup):
    profile, error = profile_runs.profile_one(None, tmp_path, config, "side", tmp_path / "w", runs=5,
                                         timeout=300.0, measured_latency_s=60.0)
    assert profile is None and error == "side: timeout: no result"
    (request, timeout), = requests
    assert (request.profile_runs, request.measure.warmup_runs) == (runs, warmup)
    assert timeout == pytest.approx(
        300.0 + (warmup + runs + runs * profile_runs.PROFILER_SLOWDOWN_BOUND) * 60.0)


def test_without_a_measured_latency_the_timeout_is_the_one_given(requests, tmp_path):
    profile_runs.profile_one(None, tmp_path, TuningConfig(), "side", tmp_path / "w", timeout=120.0)
    assert requests[0][1] == 120.0

"""Shared fixtures: a tiny target, prepared assets, isolated runs dirs."""
from __future__ import annotations

from pathlib import Path

import pytest

from tuner.config import TuningConfig
from tuner.models import TuningTarget
from tuner.runner.isolate import run_isolated
from tuner.runner.measurement import MeasureSettings
from tuner.runner.record import TrialResult
from tuner.runner.request import TrialRequest

TINY_MODEL = "tests.fixtures.tiny_models:tiny_net"
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

"""Engines timed in alternation, each in its own process compiled once: a slot each in turn,
the order reversed every slot; an engine that fails drops out, the others go on."""
import json

import pytest

from tuner.config import TuningConfig
from tuner.models import TuningTarget
from tuner.runner.interleave import run_interleaved
from tuner.trial.measurement import MeasureSettings
from tuner.trial.protocol import SLOTS_FILE
from tuner.trial.result import Status
from tuner.trial.request import TrialRequest

SLOTS = 3
CRASHY = "tests.fixtures.tiny_models:crash_or_hang_by_threads"


def _request(tiny_target, tiny_assets, config=TuningConfig(), model=None):
    target = tiny_target if model is None else TuningTarget(model, 2, 16)
    return TrialRequest("measure", target, str(tiny_assets), config=config,
                        measure=MeasureSettings(min_runs=3, min_seconds=0.1, max_seconds=0.3,
                                                slots=SLOTS))


def test_engines_take_turns_slot_by_slot_and_a_failed_one_drops_out(tiny_target, tiny_assets,
                                                                     tmp_path):
    crash = TuningConfig.from_knobs({"runtime.omp_num_threads": 3})  # SIGSEGV while loading
    trials = [(_request(tiny_target, tiny_assets), tmp_path / "a"),
              (_request(tiny_target, tiny_assets, crash, CRASHY), tmp_path / "crashy"),
              (_request(tiny_target, tiny_assets), tmp_path / "b")]
    a, crashy, b = run_interleaved(trials, timeout=120)

    assert crashy.result.status is Status.COMPILE_ERROR and crashy.slot_medians_s == ()
    ended = {}
    for outcome, name in ((a, "a"), (b, "b")):
        assert outcome.result.status is Status.OK
        lines = [json.loads(line) for line in (tmp_path / name / SLOTS_FILE).read_text().splitlines()]
        assert [line["slot"] for line in lines] == list(range(SLOTS))
        assert outcome.slot_medians_s == tuple(line["median_s"] for line in lines)
        assert [(slot.runs, slot.cv) for slot in outcome.slots] == [
            (line["runs"], line["cv"]) for line in lines] and all(s.cv >= 0 for s in outcome.slots)
        assert outcome.result.metrics.timed_runs == sum(line["runs"] for line in lines)
        ended.update({(name, line["slot"]): line["ended_at"] for line in lines})
    order = sorted(ended, key=ended.get)
    assert order == [("a", 0), ("b", 0), ("b", 1), ("a", 1), ("a", 2), ("b", 2)]


def test_compile_jobs_bound_how_many_compile_at_once(tiny_target, tiny_assets, tmp_path,
                                                     monkeypatch):
    """With one compile job, each process starts when the one before it is ready; all are
    ready before the first slot."""
    from tuner.runner.isolate import TrialProcess

    events = []
    start, wait_ready = TrialProcess.start, TrialProcess.wait_ready

    def recording_start(self):
        events.append(("start", self.workdir.name))
        return start(self)

    def recording_wait_ready(self):
        ready = wait_ready(self)
        events.append(("ready", self.workdir.name))
        return ready

    monkeypatch.setattr(TrialProcess, "start", recording_start)
    monkeypatch.setattr(TrialProcess, "wait_ready", recording_wait_ready)
    trials = [(_request(tiny_target, tiny_assets), tmp_path / name) for name in "abc"]
    outcomes = run_interleaved(trials, timeout=120, compile_jobs=1)
    assert all(outcome.result.status is Status.OK and len(outcome.slots) == SLOTS
               for outcome in outcomes)
    assert events == [("start", "a"), ("ready", "a"), ("start", "b"), ("ready", "b"),
                      ("start", "c"), ("ready", "c")]
    with pytest.raises(ValueError, match="compile_jobs must be at least 1"):
        run_interleaved(trials, timeout=120, compile_jobs=0)

import itertools

import numpy as np
import pytest

from tuner.errors import UsageError
from tuner.trial.measurement import (BASELINE_MAX_SECONDS, MeasureSettings, latency_summary,
                                      measured_result, median_confidence_interval, output_error,
                                      relative_precision, time_runs)
from tuner.trial.result import Status


def test_median_interval_needs_eight_samples_and_brackets_the_median():
    assert median_confidence_interval([1.0] * 7) == (float("-inf"), float("inf"))
    assert median_confidence_interval([1.0] * 8) == (1.0, 1.0)
    samples = list(np.random.default_rng(0).normal(10.0, 1.0, 200))
    low, high = median_confidence_interval(samples)
    assert low < np.median(samples) < high and high - low < 1.0


def test_relative_precision_shrinks_with_more_samples():
    rng = np.random.default_rng(1)
    few, many = list(rng.normal(10, 1, 10)), list(rng.normal(10, 1, 1000))
    assert relative_precision(many) < relative_precision(few) < 1.0


def test_timing_stops_once_the_median_is_precise(monkeypatch):
    clock = itertools.count(0.0, 0.01)  # every call advances 10 ms: identical durations
    monkeypatch.setattr("tuner.trial.measurement.time.perf_counter", lambda: next(clock))
    durations = time_runs(lambda: None, MeasureSettings(warmup_runs=0, min_runs=3, min_seconds=0,
                                                        max_seconds=100))
    assert len(durations) == 8  # the first count with a bounded interval; zero width then


def test_only_the_last_warmup_run_is_reported(monkeypatch):
    clock = itertools.count(0.0, 0.01)
    monkeypatch.setattr("tuner.trial.measurement.time.perf_counter", lambda: next(clock))
    warmups, timed = [], []
    time_runs(lambda: None, MeasureSettings(warmup_runs=3, min_runs=1, min_seconds=0,
                                            max_seconds=0), on_run=timed.append,
              on_warmup=warmups.append)
    assert warmups == [pytest.approx(0.01)] and len(timed) == 1


def test_timing_gives_up_at_the_cap_when_noise_stays_high(monkeypatch):
    noisy = itertools.cycle([0.01, 0.5, 0.02, 0.9])
    state = {"now": 0.0}

    def perf_counter():
        return state["now"]

    def run():
        state["now"] += next(noisy)

    monkeypatch.setattr("tuner.trial.measurement.time.perf_counter", perf_counter)
    settings = MeasureSettings(warmup_runs=0, min_runs=3, min_seconds=0, max_seconds=5,
                               rel_precision=0.01)
    durations = time_runs(run, settings)
    assert sum(durations) >= 5 and relative_precision(durations) > 0.01


def test_summary_reports_spread_and_throughput_from_the_median():
    summary = latency_summary([0.010, 0.010, 0.012, 0.010, 0.030, 0.010], batch_size=4)
    assert summary["latency_p50_ms"] == pytest.approx(10.0)
    assert summary["throughput_ips"] == pytest.approx(400.0)
    assert summary["latency_iqr_ms"] == pytest.approx(1.5)
    assert summary["latency_cv"] > 0.3 and summary["timed_runs"] == 6


def test_output_error_is_relative_to_the_reference_scale():
    ref = np.array([[2.0, -4.0]])
    assert output_error(ref + [[0.0, 0.4]], ref) == pytest.approx((0.4, 0.1))
    assert output_error(ref[:, :1], ref) == (float("inf"), float("inf"))


def test_settings_are_validated():
    with pytest.raises(UsageError):
        MeasureSettings(min_seconds=5, max_seconds=1)
    with pytest.raises(UsageError):
        MeasureSettings(rel_precision=0)
    with pytest.raises(UsageError):
        MeasureSettings(slots=0)


class _RecordingGate:
    def __init__(self, events):
        self.events = events

    def wait(self, slot):
        self.events.append(("wait", slot))

    def done(self, slot, durations):
        self.events.append(("done", slot, len(durations)))


def test_a_measurement_in_slots_idles_at_its_gate_between_them_and_reports_each(monkeypatch):
    clock = itertools.count(0.0, 0.01)
    monkeypatch.setattr("tuner.trial.measurement.time.perf_counter", lambda: next(clock))
    events = []

    def infer():
        events.append("run")
        return np.ones(3)

    settings = MeasureSettings(warmup_runs=2, min_runs=3, min_seconds=0, max_seconds=100, slots=3)
    result = measured_result(infer, settings, 1, np.ones(3), 0.0, 0.0, gate=_RecordingGate(events))
    gates = [e for e in events if e != "run"]
    assert gates == [("done", 0, 8), ("wait", 1), ("done", 1, 8), ("wait", 2), ("done", 2, 8)]
    first_wait = events.index(("wait", 1))
    assert events[:first_wait].count("run") == 2 + 8  # the warmup comes before the first slot only
    assert result.status is Status.OK and result.metrics.timed_runs == 24


def test_a_call_of_concurrent_batches_is_timed_per_batch(monkeypatch):
    clock = itertools.count(0.0, 0.04)  # every call advances 40 ms: 4 batches of 10 ms each
    monkeypatch.setattr("tuner.trial.measurement.time.perf_counter", lambda: next(clock))
    events = []
    settings = MeasureSettings(warmup_runs=0, min_runs=3, min_seconds=0, max_seconds=100, slots=2)
    result = measured_result(lambda: np.ones(3), settings, 2, np.ones(3), 0.0, 0.0,
                             gate=_RecordingGate(events), batches_per_call=4)
    assert result.metrics.latency_p50_ms == pytest.approx(10.0)
    assert result.metrics.throughput_ips == pytest.approx(200.0)  # 2 images every 10 ms


def test_a_measurement_in_slots_without_a_gate_is_a_programming_error():
    with pytest.raises(ValueError, match="SlotGate"):
        measured_result(lambda: np.ones(1), MeasureSettings(slots=2), 1, np.ones(1), 0.0, 0.0)


def test_the_baseline_is_timed_for_at_most_its_cap_and_never_longer_than_asked():
    assert MeasureSettings(max_seconds=30.0).for_baseline().max_seconds == BASELINE_MAX_SECONDS
    assert MeasureSettings(min_seconds=0.5, max_seconds=2.0).for_baseline() == MeasureSettings(
        min_seconds=0.5, max_seconds=2.0)

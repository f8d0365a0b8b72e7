"""Trials forked from a zygote are trial processes like fresh ones: same record, their crash,
kill and the zygote's death come back as what a fresh process's would."""
import dataclasses
import os
import signal
import time

import pytest

from tuner.config import TuningConfig
from tuner.runner import zygote
from tuner.runner.isolate import TrialProcess, run_isolated, trial_environment
from tuner.trial.measurement import MeasureSettings
from tuner.trial.protocol import PHASE_FILE, Phase
from tuner.trial.result import Status
from tuner.trial.request import TrialRequest



@pytest.fixture
def request_for(tiny_target, tiny_assets):
    def make(config=TuningConfig(), **changes):
        return TrialRequest("measure", tiny_target, str(tiny_assets), config=config,
                            measure=MeasureSettings(max_seconds=2.0), **changes)
    return make


@pytest.fixture
def forking(request_for, tmp_path):
    """A zygote of the tiny target, closed after the test."""
    request = request_for()
    started = zygote.Zygote(zygote.ZygoteKey.of(request), trial_environment(request, tmp_path))
    yield started
    started.close()


def _start(forking, request, workdir):
    workdir.mkdir(parents=True)
    (workdir / "request.json").write_text(request.to_json())
    return forking.fork(workdir)


def _wait_for_phase(workdir, phase, timeout=60):
    deadline = time.monotonic() + timeout
    while (workdir / PHASE_FILE).exists() is False or (workdir / PHASE_FILE).read_text() != phase:
        assert time.monotonic() < deadline, f"no phase {phase} in {timeout} s"
        time.sleep(0.05)


@pytest.mark.parametrize("knobs, dump_graph, forked", [
    ({}, False, True),
    ({"rewrites.fold_batchnorm": "all"}, False, True),
    ({"runtime.omp_num_threads": 1}, False, True),  # from a zygote of its own environment
    ({}, True, False),
])
def test_which_trials_fork(request_for, tmp_path, knobs, dump_graph, forked):
    request = request_for(TuningConfig.from_knobs(knobs), dump_graph=dump_graph)
    result = run_isolated(request, tmp_path / "trial", timeout=120)
    assert result.status is Status.OK and result.metrics.max_rel_error < 1e-5
    assert (tmp_path / "trial" / zygote.EXIT_FILE).exists() is forked


def test_forked_trial_measures_what_a_fresh_one_does(request_for, tmp_path, monkeypatch):
    forked = run_isolated(request_for(), tmp_path / "forked", timeout=120)
    monkeypatch.setattr(zygote, "eligible", lambda request: False)
    fresh = run_isolated(request_for(), tmp_path / "fresh", timeout=120)
    assert (tmp_path / "forked" / zygote.EXIT_FILE).exists()
    for result in (forked, fresh):
        assert result.status is Status.OK and result.metrics.max_abs_error == 0.0
        assert result.metrics.timed_runs >= 3 and result.metrics.peak_memory_mb > 100


def test_a_forked_trial_that_fails_is_its_exit_code_and_stderr(forking, request_for, tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "request.json").write_text("{not json")
    child = forking.fork(tmp_path / "broken")
    assert child.wait() == 1
    assert "JSONDecodeError" in (tmp_path / "broken" / "stderr.txt").read_text()
    again = _start(forking, request_for(), tmp_path / "after")  # the zygote goes on forking
    assert again.wait() == 0 and (tmp_path / "after" / "result.json").exists()


def test_a_killed_forked_trial_is_reaped_as_killed(forking, request_for, tmp_path):
    child = _start(forking, request_for(gated=True), tmp_path / "gated")
    _wait_for_phase(tmp_path / "gated", Phase.READY)
    assert child.poll() is None
    os.killpg(child.pid, signal.SIGKILL)  # what a timeout does: its session is its own
    assert child.wait() == -signal.SIGKILL


def test_forked_trials_die_with_their_zygote(forking, request_for, tmp_path):
    child = _start(forking, request_for(gated=True), tmp_path / "gated")
    _wait_for_phase(tmp_path / "gated", Phase.READY)
    forking.close()
    deadline = time.monotonic() + 10
    while child.poll() is None:
        assert time.monotonic() < deadline, "the forked trial outlived its zygote"
        time.sleep(0.05)
    assert forking.fork(tmp_path / "later") is None  # a closed zygote forks nothing


def test_a_gated_forked_trial_times_out_as_a_record(request_for, tmp_path):
    process = TrialProcess(request_for(gated=True), tmp_path / "trial", 60).start()
    assert isinstance(process.process, zygote.ForkedProcess)
    assert process.wait_ready()
    process.kill()
    assert process.process.returncode == -signal.SIGKILL
    assert "SIGKILL" in process.finish().error


def test_a_zygote_that_cannot_load_its_network_sends_trials_to_fresh_processes(
        request_for, tmp_path):
    request = dataclasses.replace(request_for(), target=dataclasses.replace(
        request_for().target, model="tests.fixtures.tiny_models:no_such_factory"))
    failed = zygote.Zygote(zygote.ZygoteKey.of(request), trial_environment(request, tmp_path))
    assert not failed.ready and failed.fork(tmp_path) is None


def test_a_zygote_whose_network_started_threads_sends_trials_to_fresh_processes(
        request_for, tmp_path):
    """A fork keeps only the calling thread: locks that MindSpore's runtime threads held
    would stay held in the child (mindcv's ConvNeXt runs operators while it is built)."""
    request = dataclasses.replace(request_for(), target=dataclasses.replace(
        request_for().target, model="tests.fixtures.tiny_models:tiny_net_running_an_operator"))
    threaded = zygote.Zygote(zygote.ZygoteKey.of(request), trial_environment(request, tmp_path))
    assert not threaded.ready and "not safe to fork" in threaded.refusal
    result = run_isolated(request, tmp_path / "trial", timeout=120)
    assert result.status is Status.OK and result.metrics.max_rel_error < 1e-5
    assert not (tmp_path / "trial" / zygote.EXIT_FILE).exists()


def test_each_openmp_environment_has_its_zygote_and_the_oldest_is_closed(
        request_for, tmp_path, monkeypatch):
    monkeypatch.setattr(zygote, "MAX_ZYGOTES", 2)
    zygote.close_all()
    for policy, threads in (("ACTIVE", 1), ("PASSIVE", 2), ("ACTIVE", 1), ("default", 3)):
        config = TuningConfig.from_knobs({"runtime.omp_wait_policy": policy,
                                          "runtime.omp_num_threads": threads})
        result = run_isolated(request_for(config), tmp_path / str(threads), timeout=120)
        assert result.status is Status.OK
    assert [dict(key.environment) for key in zygote._live] == [
        {"OMP_WAIT_POLICY": "ACTIVE", "OMP_NUM_THREADS": "1"}, {"OMP_NUM_THREADS": "3"}]
    graph_kernel = TuningConfig.from_knobs({"graph_kernel.enabled": True})
    assert "MS_DEV_GRAPH_KERNEL_FLAGS" in graph_kernel.environment()
    assert dict(zygote.ZygoteKey.of(request_for(graph_kernel)).environment) == {
        "OMP_WAIT_POLICY": "PASSIVE"}  # the flags are read at compile time, set by the child


@pytest.mark.parametrize("kind, forked", [("measure", True), ("profile", True),
                                          ("references", True), ("prepare", False),
                                          ("onnx_export", False)])
def test_the_kinds_that_build_the_network_fork(request_for, kind, forked):
    assert zygote.eligible(dataclasses.replace(request_for(), kind=kind)) is forked

"""A trial's failures come back as records: crash, hang, Python error, wrong output, its
directory removed under it; a gated trial compiles, then waits to be released before timing."""
import dataclasses
import re
import shutil
import time

from tuner.config import TuningConfig
from tuner.cpuinfo import flags as cpu_flags
from tuner.models import TuningTarget
from tuner.runner.isolate import TrialProcess, _WarmupClock, run_compiled_together, run_isolated
from tuner.trial.measurement import MeasureSettings
from tuner.trial.result import Status
from tuner.trial.request import TrialRequest
from tuner.trial.protocol import PHASE_FILE, UNDER_WAY, WARMUP_STEP, Phase
from tuner.runner.worker import PROGRESS_FILE

CRASHY = "tests.fixtures.tiny_models:crash_or_hang_by_threads"


def _request(tiny_assets, config, model=CRASHY, **measure):
    return TrialRequest("measure", TuningTarget(model, 2, 16), str(tiny_assets), config=config,
                        measure=MeasureSettings(**measure))


def test_ok_trial_measures_everything(measure_tiny):
    result = measure_tiny()
    assert result.status is Status.OK
    m = result.metrics
    assert m.timed_runs >= 3 and m.latency_p50_ms > 0 and m.throughput_ips > 0
    assert m.latency_p50_ms <= m.latency_p90_ms <= m.latency_p99_ms
    assert m.peak_memory_mb > 100 and m.compile_seconds > 0
    assert m.max_abs_error == 0.0  # the untuned network reproduces its own reference


def test_segfault_is_a_compile_error_record(tiny_assets, tmp_path):
    crash = TuningConfig.from_knobs({"runtime.omp_num_threads": 3})
    result = run_isolated(_request(tiny_assets, crash), tmp_path, timeout=60)
    assert result.status is Status.COMPILE_ERROR
    assert "SIGSEGV" in result.error and "phase load" in result.error


def test_hang_is_killed_at_the_timeout(tiny_assets, tmp_path):
    hang = TuningConfig.from_knobs({"runtime.omp_num_threads": 4})
    result = run_isolated(_request(tiny_assets, hang), tmp_path, timeout=8)
    assert result.status is Status.TIMEOUT
    assert 8 <= result.wall_seconds < 20
    assert "killed during phase load" in result.error


def test_compile_failure_keeps_the_compiler_message(measure_tiny):
    config = TuningConfig.from_knobs({"graph_kernel.enabled": True,
                                      "graph_kernel.enable_cluster_ops": ["BatchNorm"]})
    result = measure_tiny(config)
    assert result.status is Status.COMPILE_ERROR
    assert "Traceback" in result.error and result.metrics is None
    # MindSpore says only "Response is empty"; the reason is AKG's, in the trial's stdout
    assert re.fullmatch(r"compile_error: AkgCompileError: graph-kernel fusion \(AKG\) could not "
                        r"compile Fused_BatchNorm_\w+ \(BatchNorm of stage\d\.bn\d\)",
                        result.reason()), result.reason()


def test_output_beyond_tolerance_is_a_wrong_result(tiny_assets, tmp_path):
    # Folding BatchNorm changes float rounding (~1e-7 relative): a tolerance below that fails it.
    folded = TuningConfig.from_knobs({"rewrites.fold_batchnorm": "all"})
    request = _request(tiny_assets, folded, model="tests.fixtures.tiny_models:tiny_net",
                       rel_tolerance=1e-12)
    result = run_isolated(request, tmp_path, timeout=60)
    assert result.status is Status.WRONG_RESULT
    assert result.metrics.max_rel_error > 1e-12 and "tolerance" in result.error


def test_gated_trial_compiles_then_waits_until_released(tiny_assets, tmp_path):
    request = _request(tiny_assets, TuningConfig(), model="tests.fixtures.tiny_models:tiny_net")
    process = TrialProcess(dataclasses.replace(request, gated=True), tmp_path, 60).start()
    assert process.wait_ready()
    time.sleep(1.0)
    assert process.process.poll() is None and not (tmp_path / PROGRESS_FILE).exists()
    result = process.finish()
    assert result.status is Status.OK and result.metrics.timed_runs >= 3
    assert result.wall_seconds < time.perf_counter() - process.started - 0.9  # wait not counted


def test_gated_trial_that_crashes_while_compiling_is_a_record(tiny_assets, tmp_path):
    crash = TuningConfig.from_knobs({"runtime.omp_num_threads": 3})
    process = TrialProcess(dataclasses.replace(_request(tiny_assets, crash), gated=True),
                           tmp_path, 60).start()
    assert not process.wait_ready()
    result = process.finish()
    assert result.status is Status.COMPILE_ERROR and "SIGSEGV" in result.error


def test_a_warmup_run_under_way_is_reported_and_can_be_pruned(tmp_path):
    entries = []

    def prune_under_way(entry):
        entries.append(entry)
        return entry.get(UNDER_WAY, False)

    # MindSpore's builtin convolutions are some 50x faster on CPUs without AVX-512 (AMD Zen 3:
    # 25 ms a run at 48x48, seconds with AVX-512): a bigger image keeps the warmup run long
    image_size = 48 if "avx512f" in cpu_flags() else 192
    target = TuningTarget("tests.fixtures.tiny_models:slow_net", 2, image_size)
    assets = tmp_path / "assets"
    assert run_isolated(TrialRequest("prepare", target, str(assets)), tmp_path / "prepare", 120).ok
    request = TrialRequest("measure", target, str(assets), measure=MeasureSettings(warmup_runs=1))
    result = run_isolated(request, tmp_path, timeout=60, on_progress=prune_under_way)
    assert result.status is Status.PRUNED and "into its warmup run" in result.error
    assert entries and entries[-1]["runs"] == WARMUP_STEP and entries[-1]["median_s"] >= 0
    assert not (tmp_path / PROGRESS_FILE).exists()  # stopped before its warmup run ended


def test_the_warmup_clock_starts_when_the_run_phase_is_seen(tmp_path):
    clock = _WarmupClock(tmp_path / PHASE_FILE)
    assert clock.under_way() == []
    (tmp_path / PHASE_FILE).write_text(Phase.RUN.value)
    first = clock.under_way()[0]
    time.sleep(0.2)
    second = clock.under_way()[0]
    assert first[UNDER_WAY] and 0 <= first["median_s"] < 0.1 <= second["median_s"] - first["median_s"]


def _tiny_request(tiny_target, tiny_assets):
    return TrialRequest("measure", tiny_target, str(tiny_assets),
                        measure=MeasureSettings(max_seconds=2.0))


def _assert_vanished(result, workdir):
    assert result.status is Status.RUNTIME_ERROR and result.metrics is None
    assert result.error.startswith(f"the trial's directory {workdir} was removed while the "
                                   "trial ran ("), result.error


def test_a_running_trial_whose_directory_is_removed_is_an_error_record(tiny_target, tiny_assets,
                                                                       tmp_path):
    workdir = tmp_path / "trials" / "3"

    def remove(entry):
        shutil.rmtree(workdir, ignore_errors=True)
        return False
    result = run_isolated(_tiny_request(tiny_target, tiny_assets), workdir, 120, remove)
    _assert_vanished(result, workdir)


def test_a_batch_goes_on_when_a_waiting_trials_directory_is_removed(tiny_target, tiny_assets,
                                                                    tmp_path):
    """Two trials compile together; while the first is timed, the second's directory goes."""
    first, second = tmp_path / "trials" / "1", tmp_path / "trials" / "2"

    def remove_second(entry):
        shutil.rmtree(second, ignore_errors=True)
        return False
    request = _tiny_request(tiny_target, tiny_assets)
    results = list(run_compiled_together([(request, first, remove_second), (request, second, None)],
                                         timeout=120))
    assert results[0].status is Status.OK
    _assert_vanished(results[1], second)

"""The trial process: ``python -m tuner.runner.worker request.json`` in the trial's directory.

It writes ``phase`` before each step (so that a crash can be attributed) and ``result.json`` at
the end, then leaves with ``os._exit`` (MindSpore's interpreter teardown is slow and noisy).
Everything MindSpore-related happens here, never in the study's process. What the device's
kernel library does at a trial's steps, the worker asks it through its trial hooks only
(tuner.kernels.base), from the library its backend gives (``Backend.trial_kernel_library``);
building the configured network is tuner.runner.trial_network's.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from tuner import cpuinfo
from tuner.errors import UsageError, one_line
from tuner.runner import engine_requests
from tuner.trial.gate import Gate
from tuner.trial.protocol import (COMPILE_PHASES, PARENT_PID_ENV, PHASE_FILE, PROFILE_FILE,
                                   PROFILER_DIR, PROGRESS_FILE, RESULT_FILE, WARMUP_STEP, Phase,
                                   RequestKind, is_progress_step)
from tuner.trial.request import (INPUT_FILE, MODEL_INFO_FILE, REFERENCE_FILE, WEIGHTS_FILE,
                                  TrialRequest)
from tuner.trial.result import Status, TrialResult
from tuner.runner.trial_network import build, kernel_library, network, new_network, setup
from tuner.runner.trial_outcome import TrialFailed, enter, error_text


def _report_progress(durations: list[float]) -> None:
    """Append the timing so far to the progress file (read by the study for pruning) at the
    protocol's progress steps."""
    if is_progress_step(len(durations)):
        _append_progress({"runs": len(durations), "median_s": float(np.median(durations))})


def _report_warmup(seconds: float) -> None:
    """The last warmup run, as progress entry 0 (see tuner.trial.protocol)."""
    _append_progress({"runs": WARMUP_STEP, "median_s": seconds})


def _append_progress(entry: dict) -> None:
    with open(PROGRESS_FILE, "a") as progress:
        progress.write(json.dumps(entry) + "\n")


def _prepare(request: TrialRequest) -> TrialResult:
    enter(Phase.LOAD)
    from tuner.models import (check_model_name, fingerprint, model_stages,
                              randomize_normalization)

    try:
        check_model_name(request.target.model)
    except UsageError as exc:
        raise TrialFailed(Status.USAGE_ERROR, str(exc)) from None
    ms = setup(request.target.device)
    from tuner.tuned_network import rewrite_network
    from tuner.config import TuningConfig

    ms.set_seed(request.seed)
    net = randomize_normalization(new_network(request.target.model, ms), request.seed)
    assets = Path(request.assets_dir)
    assets.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint(net, str(assets / WEIGHTS_FILE))
    rng = np.random.default_rng(request.seed)
    x = rng.standard_normal(request.target.input_shape).astype(np.float32)
    np.save(assets / INPUT_FILE, x)
    info = {"stages": list(model_stages(net)), "fingerprint": fingerprint(net),
            "mindspore_version": ms.__version__, "cpu_model": cpuinfo.model_name(),
            "parameters": int(sum(int(np.prod(p.shape)) for p in net.get_parameters())),
            **kernel_library(request).prepare_study(net, request.target.input_shape,
                                                    assets).to_dict()}
    enter(Phase.COMPILE)
    reference = rewrite_network(net, TuningConfig())(ms.Tensor(x)).asnumpy()
    np.save(assets / REFERENCE_FILE, reference)
    (assets / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2))
    return TrialResult(Status.OK)


def _references(request: TrialRequest) -> TrialResult:
    """The untuned outputs of the regions ``request.config`` replaces (into the assets)."""
    ms = setup(request.target.device)
    net = network(request, ms)
    net.set_train(False)
    library = kernel_library(request)
    enter(Phase.RUN)
    prepared = library.prepared_inputs(request.config, Path(request.assets_dir))
    library.reference_outputs(net, request.config, request.target.input_shape,
                              prepared.references, prepared.seed, prepared.graph)
    return TrialResult(Status.OK)


def _profile(request: TrialRequest) -> TrialResult:
    """Profile the configured network (tuner.profiling.trace_capture) into ``profile.json``."""
    from tuner.backends import get_backend
    from tuner.profiling.trace_capture import LayerNames, capture

    built = build(request)
    enter(Phase.RUN)
    try:
        profile = capture(lambda: built.network(built.x).asnumpy(), request.profile_runs,
                          request.measure.warmup_runs, Path(PROFILER_DIR),
                          get_backend(request.target.device).profiler_activities(built.ms),
                          LayerNames(built.original, built.network), request.config.describe(),
                          built.network, built.library)
    except Exception:
        raise TrialFailed(Status.RUNTIME_ERROR, error_text()) from None
    Path(PROFILE_FILE).write_text(json.dumps(profile.to_dict()))
    return TrialResult(Status.OK)


def _measure(request: TrialRequest) -> TrialResult:
    from tuner.trial.measurement import measured_result, read_hwm_mb, reset_hwm

    built = build(request)
    compile_peak = read_hwm_mb()
    reset_hwm()
    gate = Gate(request.gated)
    gate.release()
    built.library.reset_timers(built.network)
    try:
        result = measured_result(lambda: built.network(built.x).asnumpy(), request.measure,
                                 request.target.batch_size, built.reference,
                                 built.compile_seconds, compile_peak, on_run=_report_progress,
                                 on_warmup=_report_warmup, gate=gate)
    except Exception:
        raise TrialFailed(Status.RUNTIME_ERROR, error_text()) from None
    return result.with_(workload_ms=built.library.workload_times(built.network))


def run(request: TrialRequest) -> TrialResult:
    started = time.perf_counter()
    try:
        result = KINDS[request.kind](request)
    except TrialFailed as failure:
        result = TrialResult(failure.status, error=str(failure))
    except UsageError as exc:  # e.g. a model factory that returned no Cell
        result = TrialResult(Status.USAGE_ERROR, error=one_line(exc))
    except Exception:
        phase = Path(PHASE_FILE).read_text() if Path(PHASE_FILE).exists() else Phase.LOAD
        status = Status.COMPILE_ERROR if phase in COMPILE_PHASES else Status.RUNTIME_ERROR
        result = TrialResult(status, error=error_text())
    if request.dump_graph and result.ok:
        from tuner.runner.graph_dump import GRAPHS_DIR, count_graph_ops

        result = result.with_(graph_ops=count_graph_ops(Path(GRAPHS_DIR)))
    return result.with_(wall_seconds=time.perf_counter() - started)


KINDS = {RequestKind.PREPARE: _prepare, RequestKind.MEASURE: _measure,
         RequestKind.PROFILE: _profile, RequestKind.ONNX_EXPORT: engine_requests.onnx_export,
         RequestKind.ONNX_MEASURE: engine_requests.onnx_measure,
         RequestKind.OPENVINO_MEASURE: engine_requests.openvino_measure,
         RequestKind.REFERENCES: _references}


def _die_with_parent() -> None:
    """SIGKILL this process when the study process that started it dies (see protocol)."""
    parent = os.environ.get(PARENT_PID_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):  # it died before the signal was armed
        os._exit(1)


def main(argv: list[str]) -> int:
    _die_with_parent()
    request = TrialRequest.from_json(Path(argv[0]).read_text())
    result = run(request)
    Path(RESULT_FILE + ".tmp").write_text(json.dumps(result.to_dict()))
    os.replace(RESULT_FILE + ".tmp", RESULT_FILE)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

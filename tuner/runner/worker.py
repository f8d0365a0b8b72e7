"""The trial process: ``python -m tuner.runner.worker request.json`` in the trial's directory.

It writes ``phase`` before each step (so that a crash can be attributed) and ``result.json`` at
the end, then leaves with ``os._exit`` (MindSpore's interpreter teardown is slow and noisy).
Everything MindSpore-related happens here, never in the study's process.
"""
from __future__ import annotations

import gc
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tuner import cpuinfo
from tuner.errors import UsageError, one_line
from tuner.runner.akg_errors import AKG_ERROR, akg_failure
from tuner.runner.gate import Gate, wait_for
from tuner.runner.result import Metrics, Status, TrialResult
from tuner.runner.request import (GRAPH_FILE, INPUT_FILE, MODEL_INFO_FILE, REFERENCE_FILE,
                                  WEIGHTS_FILE, TrialRequest)
from tuner.runner.protocol import (COMPILE_PHASES, PHASE_FILE, PROFILE_FILE,  # noqa: F401
                                   PARENT_PID_ENV, PROFILER_DIR, PROGRESS_FILE,
                                   REFERENCES_DONE_FILE, REFERENCES_REQUEST_FILE, RESULT_FILE,
                                   STDOUT_FILE, WARMUP_STEP, Phase, RequestKind, is_progress_step)

REFERENCES_DIR = "kernel_references"  # builtin outputs for kernel verification, in the assets
VERIFICATION_SEED = 0
REFERENCES_POLL_SECONDS = 0.02


class _Failed(Exception):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


def _phase(phase: Phase) -> None:
    Path(PHASE_FILE).write_text(phase.value)


def _error_text(limit: int = 4000) -> str:
    return traceback.format_exc()[-limit:]


def _compile_error_text() -> str:
    """The compile's traceback and, where graph-kernel fusion's build server failed (MindSpore
    then says only "Response is empty"), the kernel it could not compile, from this process's
    standard output where the server printed it."""
    text = _error_text()
    sys.stdout.flush()
    try:
        cause = akg_failure(Path(STDOUT_FILE).read_text(errors="replace"))
    except OSError:
        cause = None
    return f"{text}\n{AKG_ERROR}: {cause}" if cause else text


def _report_progress(durations: list[float]) -> None:
    """Append the timing so far to the progress file (read by the study for pruning) at the
    protocol's progress steps."""
    if is_progress_step(len(durations)):
        _append_progress({"runs": len(durations), "median_s": float(np.median(durations))})


def _report_warmup(seconds: float) -> None:
    """The last warmup run, as progress entry 0 (see tuner.runner.protocol)."""
    _append_progress({"runs": WARMUP_STEP, "median_s": seconds})


def _append_progress(entry: dict) -> None:
    with open(PROGRESS_FILE, "a") as progress:
        progress.write(json.dumps(entry) + "\n")


def _setup(request: TrialRequest):
    import mindspore as ms

    from tuner.backends import get_backend

    backend = get_backend(request.target.device)
    if backend.name != "CPU" and not ms.hal.is_available(backend.name):
        raise _Failed(Status.USAGE_ERROR, f"--device {backend.name}: MindSpore {ms.__version__} "
                      f"cannot load its {backend.name} plugin on this machine")
    backend.configure_context(ms)
    return ms


def _prepare(request: TrialRequest) -> TrialResult:
    _phase(Phase.LOAD)
    from tuner.models import (check_model_name, fingerprint, model_stages,
                              randomize_normalization)

    try:
        check_model_name(request.target.model)
    except UsageError as exc:
        raise _Failed(Status.USAGE_ERROR, str(exc)) from None
    ms = _setup(request)
    from tuner.deploy import rewrite_network
    from tuner.config import TuningConfig

    ms.set_seed(request.seed)
    net = randomize_normalization(_new_network(request.target.model, ms), request.seed)
    assets = Path(request.assets_dir)
    assets.mkdir(parents=True, exist_ok=True)
    ms.save_checkpoint(net, str(assets / WEIGHTS_FILE))
    rng = np.random.default_rng(request.seed)
    x = rng.standard_normal(request.target.input_shape).astype(np.float32)
    np.save(assets / INPUT_FILE, x)
    info = {"stages": list(model_stages(net)), "fingerprint": fingerprint(net),
            "mindspore_version": ms.__version__, "cpu_model": cpuinfo.model_name(),
            "parameters": int(sum(int(np.prod(p.shape)) for p in net.get_parameters())),
            **_workloads(net, request)}
    _phase(Phase.COMPILE)
    reference = rewrite_network(net, TuningConfig())(ms.Tensor(x)).asnumpy()
    np.save(assets / REFERENCE_FILE, reference)
    (assets / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2))
    return TrialResult(Status.OK)


def _workloads(net, request: TrialRequest) -> dict:
    """The workloads of the device's kernel library in this model (with the captured graph
    saved for the trials), or why there are none."""
    from tuner.backends import get_backend

    backend = get_backend(request.target.device)
    if not backend.has_kernels:
        return {"workloads": [], "kernels_unavailable": backend.kernels_missing}
    library = backend.kernel_library(request.kernel_space or None)
    reason = library.unavailable_reason()
    if reason:
        return {"workloads": [], "kernels_unavailable": reason}
    from tuner.graph.capture import CaptureError, capture

    try:
        graph = capture(net, request.target.input_shape)
    except CaptureError as error:
        return {"workloads": [], "kernels_unavailable": str(error)}
    request.asset(GRAPH_FILE).write_text(json.dumps(graph.to_dict()))
    groups = library.find_workloads(net, request.target.input_shape, graph)
    for group in groups:  # in this untuned process, as the trials' own settings may break them
        if group.workload.op == "conv" and any(
                not library.space(k).runtime_params for k in group.kernels):
            library.reference_output(group.workload, VERIFICATION_SEED,
                                     request.asset(REFERENCES_DIR))
    return {"workloads": [g.to_dict() for g in groups]}


def _stored_graph(request: TrialRequest):
    from tuner.graph.graph import Graph

    path = request.asset(GRAPH_FILE)
    return Graph.from_dict(json.loads(path.read_text())) if path.exists() else None


def _build_in_parallel(library, choices) -> None:
    """Build the variants a configuration needs, one compiler per core (the build cache makes
    the later, sequential lookups instant; a failed build is reported where it is used)."""
    from concurrent.futures import ThreadPoolExecutor

    def build(variant) -> None:
        try:
            library.build(variant[0], dict(variant[1]))
        except ValueError:  # parameters outside the kernel's space: verification says so
            pass

    variants = {(c.kernel, tuple(sorted(dict(c.params).items()))) for c in choices}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(build, variants))


def _verify_kernels(request: TrialRequest, library) -> None:
    """Check each hand-written kernel variant against MindSpore's operator before measuring.

    The workloads are the ones the prepare step found (model.json). Verdicts are cached per
    choice in the study's assets, as verification runs the slow builtin convolution."""
    from tuner.kernels.workload import WorkloadGroup

    info = json.loads(request.asset(MODEL_INFO_FILE).read_text())
    groups = {w["key"]: WorkloadGroup.from_dict(w) for w in info.get("workloads", [])}
    cache = request.asset("verified")
    cache.mkdir(exist_ok=True)
    for choice in request.config.kernels:
        if choice.workload not in groups:
            raise _Failed(Status.COMPILE_ERROR, f"kernels: {choice.workload} is not a workload "
                          f"of {request.target.model} at {request.target.input_shape}")
        workload = groups[choice.workload].workload
        if workload.op != "conv" or library.space(choice.kernel).runtime_params:
            continue  # oneDNN's steps are verified with their programs
        key = hashlib.sha256(json.dumps(choice.to_dict(), sort_keys=True).encode()).hexdigest()[:24]
        verdict_path = cache / f"{key}.json"
        if verdict_path.exists():
            verdict = json.loads(verdict_path.read_text())
        else:
            result = library.verify(workload, dict(choice.params), seed=VERIFICATION_SEED,
                                    kernel=choice.kernel,
                                    reference_dir=request.asset(REFERENCES_DIR))
            verdict = {"ok": result.ok, "message": result.message,
                       "max_rel_error": result.max_rel_error, "build_failed": result.build_failed}
            verdict_path.write_text(json.dumps(verdict))
        if not verdict["ok"]:
            status = Status.COMPILE_ERROR if verdict.get("build_failed") else Status.WRONG_RESULT
            raise _Failed(status, f"custom kernel for {choice.workload} {dict(choice.params)} "
                          f"rejected before measuring: {verdict['message']}")


def _ensure_region_references(request: TrialRequest, library, net, graph) -> None:
    """The untuned outputs of the regions this configuration's programs replace: when some
    are missing, the parent computes them in a process without this trial's settings while
    this one waits (tuner.runner.protocol)."""
    from tuner.config import TuningConfig

    references = request.asset(REFERENCES_DIR)

    def missing() -> int:
        return library.missing_references(net, request.config, request.target.input_shape,
                                          references, VERIFICATION_SEED, graph)

    if not missing():
        return
    child = TrialRequest(RequestKind.REFERENCES, request.target, request.assets_dir,
                         config=TuningConfig(programs=request.config.programs),
                         seed=request.seed, kernel_space=request.kernel_space)
    Path(REFERENCES_REQUEST_FILE).write_text(child.to_json())
    _phase(Phase.REFERENCES)
    wait_for(REFERENCES_DONE_FILE, REFERENCES_POLL_SECONDS)
    why = Path(REFERENCES_DONE_FILE).read_text().strip()
    _phase(Phase.REWRITE)
    if missing():
        raise _Failed(Status.COMPILE_ERROR, "the untuned outputs of this configuration's regions "
                      f"could not be computed: {why or 'their process left them missing'}")


def _references(request: TrialRequest) -> TrialResult:
    """The untuned outputs of the regions of ``request.config``'s programs (into the assets)."""
    ms = _setup(request)
    from tuner.backends import get_backend

    net = _network(request, ms)
    net.set_train(False)
    library = get_backend(request.target.device).kernel_library(request.kernel_space or None)
    _phase(Phase.RUN)
    library.reference_outputs(net, request.config, request.target.input_shape,
                              request.asset(REFERENCES_DIR), VERIFICATION_SEED,
                              _stored_graph(request))
    return TrialResult(Status.OK)


_preloaded: dict[tuple[str, str], object] = {}  # (model, device) -> network, for one trial


def preload(model: str, device: str, weights: Path) -> None:
    """Load MindSpore and the network with the study's weights ahead of the trial that will
    use it (a zygote's, tuner.runner.zygote): ``_build`` takes it instead of creating one."""
    from tuner.models import TuningTarget

    ms = _setup(TrialRequest(RequestKind.MEASURE, TuningTarget(model, device=device), ""))
    _preloaded[(model, device)] = _new_network(model, ms, weights)


def _network(request: TrialRequest, ms):
    """The network with the study's weights: the preloaded one (once), else a new one."""
    net = _preloaded.pop((request.target.model, request.target.device), None)
    if net is None:
        net = _new_network(request.target.model, ms, request.asset(WEIGHTS_FILE))
    return net


def _new_network(model: str, ms, weights: Path | None = None):
    """The network (with ``weights`` when given), then every object alive frozen out of the
    cyclic garbage collector (``gc.freeze``): MindSpore collects garbage before it compiles
    each graph, which with a network loaded takes ~0.1 s (a trial whose programs are checked
    one by one compiles dozens), and in a trial forked from a zygote it would write to every
    page the two share."""
    from tuner.models import create_model

    net = create_model(model)
    if weights is not None:
        ms.load_param_into_net(net, ms.load_checkpoint(str(weights)))
    gc.freeze()
    return net


class Built(NamedTuple):
    ms: object
    network: object
    x: object
    reference: np.ndarray
    compile_seconds: float
    original: list


def _build(request: TrialRequest):
    """The configured network, compiled, its input and the reference output; ``original``
    lists the untuned network's cells by path (taken before the rewrite, for profiles)."""
    _phase(Phase.LOAD)
    ms = _setup(request)
    from tuner.deploy import apply_process_settings, rewrite_network

    net = _network(request, ms)
    original = list(net.cells_and_names())
    x = ms.Tensor(np.load(request.asset(INPUT_FILE)))
    reference = np.load(request.asset(REFERENCE_FILE))
    _phase(Phase.REWRITE)
    graph, references = None, None
    if request.config.programs.enabled:
        from tuner.backends import get_backend

        library = get_backend(request.target.device).kernel_library(request.kernel_space or None)
        _build_in_parallel(library, request.config.kernels)
        _verify_kernels(request, library)
        graph = _stored_graph(request)
        _ensure_region_references(request, library, net, graph)
        references = request.asset(REFERENCES_DIR)
    from tuner.kernels import VerificationError

    try:
        apply_process_settings(request.config)
        try:
            tuned = rewrite_network(net, request.config, request.target.input_shape,
                                    request.target.device, graph, references, VERIFICATION_SEED,
                                    request.measure.rel_tolerance)
        except VerificationError as mismatch:
            raise _Failed(Status.WRONG_RESULT, f"{mismatch} (rejected before measuring)") from None
        _phase(Phase.COMPILE)
        started = time.perf_counter()
        tuned.compile(x)
        compile_seconds = time.perf_counter() - started
    except _Failed:
        raise
    except Exception:
        raise _Failed(Status.COMPILE_ERROR, _compile_error_text()) from None
    return Built(ms, tuned, x, reference, compile_seconds, original)


def _profile(request: TrialRequest) -> TrialResult:
    """Profile the configured network (tuner.profiling.trace_capture) into ``profile.json``."""
    from tuner.backends import get_backend
    from tuner.profiling.trace_capture import LayerNames, capture

    built = _build(request)
    _phase(Phase.RUN)
    try:
        profile = capture(lambda: built.network(built.x).asnumpy(), request.profile_runs,
                          request.measure.warmup_runs, Path(PROFILER_DIR),
                          get_backend(request.target.device).profiler_activities(built.ms),
                          LayerNames(built.original, built.network), request.config.describe(),
                          built.network)
    except Exception:
        raise _Failed(Status.RUNTIME_ERROR, _error_text()) from None
    Path(PROFILE_FILE).write_text(json.dumps(profile.to_dict()))
    return TrialResult(Status.OK)


def _onnx_export(request: TrialRequest) -> TrialResult:
    """The model in ONNX, checked by ONNX Runtime against the reference (tuner.onnx.export)."""
    from tuner.onnx.export import export_onnx

    ms = _setup(request)
    _phase(Phase.COMPILE)
    exported = export_onnx(request, ms)
    if not exported.max_rel_error <= request.measure.rel_tolerance:
        return TrialResult(Status.WRONG_RESULT, error=f"ONNX Runtime's output differs from the "
                           f"untuned MindSpore output: max rel error {exported.max_rel_error:.3g}")
    return TrialResult(Status.OK)


def _onnx_measure(request: TrialRequest) -> TrialResult:
    from tuner.onnx.runtime import measure_onnx_runtime

    _phase(Phase.COMPILE)
    return measure_onnx_runtime(request, Gate(request.gated))


def _openvino_measure(request: TrialRequest) -> TrialResult:
    from tuner.onnx.openvino_cpu import measure_openvino

    _phase(Phase.COMPILE)
    return measure_openvino(request, Gate(request.gated))


def _measure(request: TrialRequest) -> TrialResult:
    from tuner.profiling import programs
    from tuner.runner.measurement import measured_result, read_hwm_mb, reset_hwm

    built = _build(request)
    compile_peak = read_hwm_mb()
    reset_hwm()
    gate = Gate(request.gated)
    gate.release()
    programs.reset(built.network)
    try:
        result = measured_result(lambda: built.network(built.x).asnumpy(), request.measure,
                                 request.target.batch_size, built.reference,
                                 built.compile_seconds, compile_peak, on_run=_report_progress,
                                 on_warmup=_report_warmup, gate=gate)
    except Exception:
        raise _Failed(Status.RUNTIME_ERROR, _error_text()) from None
    return result.with_(workload_ms=programs.workload_times(built.network))


def run(request: TrialRequest) -> TrialResult:
    started = time.perf_counter()
    try:
        result = KINDS[request.kind](request)
    except _Failed as failure:
        result = TrialResult(failure.status, error=str(failure))
    except UsageError as exc:  # e.g. a model factory that returned no Cell
        result = TrialResult(Status.USAGE_ERROR, error=one_line(exc))
    except Exception:
        phase = Path(PHASE_FILE).read_text() if Path(PHASE_FILE).exists() else Phase.LOAD
        status = Status.COMPILE_ERROR if phase in COMPILE_PHASES else Status.RUNTIME_ERROR
        result = TrialResult(status, error=_error_text())
    if request.dump_graph and result.ok:
        from tuner.runner.graph_dump import GRAPHS_DIR, count_graph_ops

        result = result.with_(graph_ops=count_graph_ops(Path(GRAPHS_DIR)))
    return result.with_(wall_seconds=time.perf_counter() - started)


KINDS = {RequestKind.PREPARE: _prepare, RequestKind.MEASURE: _measure,
         RequestKind.PROFILE: _profile, RequestKind.ONNX_EXPORT: _onnx_export,
         RequestKind.ONNX_MEASURE: _onnx_measure, RequestKind.OPENVINO_MEASURE: _openvino_measure,
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

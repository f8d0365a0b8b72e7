"""MindSpore and the network in a trial process: MindSpore set up for the request's device, the
network with the study's weights, loaded ahead by a zygote (``preload``, tuner.runner.zygote) or
on demand, and (``build``) the network as a request configures it, compiled: rewritten through
the device's kernel library, whose choices are checked and whose references are ensured first."""
from __future__ import annotations

import gc
import json
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from tuner.trial.gate import wait_for
from tuner.trial.protocol import REFERENCES_DONE_FILE, REFERENCES_REQUEST_FILE, Phase, RequestKind
from tuner.trial.request import (INPUT_FILE, MODEL_INFO_FILE, REFERENCE_FILE, WEIGHTS_FILE,
                                  TrialRequest)
from tuner.trial.result import Status
from tuner.runner.trial_outcome import TrialFailed, compile_error_text, enter

REFERENCES_POLL_SECONDS = 0.02

_preloaded: dict[tuple[str, str], object] = {}  # (model, device) -> network, for one trial


def setup(device: str):
    """``mindspore``, its context set for ``device`` (TrialFailed if its plugin cannot load)."""
    import mindspore as ms

    from tuner.backends import get_backend

    backend = get_backend(device)
    problem = backend.plugin_problem(ms)
    if problem:
        raise TrialFailed(Status.USAGE_ERROR, f"--device {backend.name}: {problem}")
    backend.configure_context(ms)
    return ms


def preload(model: str, device: str, weights: Path) -> None:
    """Load MindSpore and the network with the study's weights ahead of the trial that will
    use it (a zygote's): ``network`` takes it instead of creating one."""
    ms = setup(device)
    _preloaded[(model, device)] = new_network(model, ms, weights)


def network(request: TrialRequest, ms):
    """The network with the study's weights: the preloaded one (once), else a new one."""
    net = _preloaded.pop((request.target.model, request.target.device), None)
    if net is None:
        net = new_network(request.target.model, ms, request.asset(WEIGHTS_FILE))
    return net


def new_network(model: str, ms, weights: Path | None = None):
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


def kernel_library(request: TrialRequest):
    """The kernel library the request's device gives its trials (tuner.backends)."""
    from tuner.backends import get_backend

    backend = get_backend(request.target.device)
    return backend.trial_kernel_library(request.kernel_space or None)


class Built(NamedTuple):
    ms: object
    network: object
    x: object
    reference: np.ndarray
    compile_seconds: float
    original: list
    library: object  # the device's kernel library (tuner.kernels.base), for its timings


def build(request: TrialRequest) -> Built:
    """The configured network, compiled, its input and the reference output; ``original``
    lists the untuned network's cells by path (taken before the rewrite, for profiles)."""
    enter(Phase.LOAD)
    ms = setup(request.target.device)
    from tuner.tuned_network import apply_process_settings, rewrite_network

    net = network(request, ms)
    original = list(net.cells_and_names())
    x = ms.Tensor(np.load(request.asset(INPUT_FILE)))
    reference = np.load(request.asset(REFERENCE_FILE))
    enter(Phase.REWRITE)
    library = kernel_library(request)
    assets = Path(request.assets_dir)
    library.prepare_trial(request.config, assets)
    _check_choices(request, library)
    prepared = library.prepared_inputs(request.config, assets)
    _ensure_region_references(request, library, net, prepared)
    from tuner.kernels import VerificationError

    try:
        apply_process_settings(request.config)
        try:
            tuned = rewrite_network(net, request.config, request.target.input_shape,
                                    request.target.device, prepared.graph, prepared.references,
                                    prepared.seed, request.measure.rel_tolerance)
        except VerificationError as mismatch:
            raise TrialFailed(Status.WRONG_RESULT,
                              f"{mismatch} (rejected before measuring)") from None
        enter(Phase.COMPILE)
        started = time.perf_counter()
        tuned.compile(x)
        compile_seconds = time.perf_counter() - started
    except TrialFailed:
        raise
    except Exception:
        raise TrialFailed(Status.COMPILE_ERROR, compile_error_text()) from None
    return Built(ms, tuned, x, reference, compile_seconds, original, library)


def _check_choices(request: TrialRequest, library) -> None:
    """Every kernel choice is for a workload the prepare step found (model.json) and passes
    the library's checks, before anything is measured."""
    if not request.config.kernels:
        return
    from tuner.kernels.workload import WorkloadGroup

    info = json.loads(request.asset(MODEL_INFO_FILE).read_text())
    workloads = {w["key"]: WorkloadGroup.from_dict(w) for w in info.get("workloads", [])}
    target = request.target
    rejection = library.check_choices(request.config, workloads,
                                      f"{target.model} at {target.input_shape}",
                                      Path(request.assets_dir))
    if rejection is not None:
        status = Status.WRONG_RESULT if rejection.wrong_result else Status.COMPILE_ERROR
        raise TrialFailed(status, rejection.message)


def _ensure_region_references(request: TrialRequest, library, net, prepared) -> None:
    """The untuned outputs of the regions this configuration replaces: when some are missing,
    the parent computes them in a process without this trial's settings while this one waits
    (tuner.trial.protocol)."""
    from tuner.config import TuningConfig

    def missing() -> int:
        return library.missing_references(net, request.config, request.target.input_shape,
                                          prepared.references, prepared.seed, prepared.graph)

    if not missing():
        return
    child = TrialRequest(RequestKind.REFERENCES, request.target, request.assets_dir,
                         config=TuningConfig(programs=request.config.programs),
                         seed=request.seed, kernel_space=request.kernel_space)
    Path(REFERENCES_REQUEST_FILE).write_text(child.to_json())
    enter(Phase.REFERENCES)
    wait_for(REFERENCES_DONE_FILE, REFERENCES_POLL_SECONDS)
    why = Path(REFERENCES_DONE_FILE).read_text().strip()
    enter(Phase.REWRITE)
    if missing():
        raise TrialFailed(Status.COMPILE_ERROR, "the untuned outputs of this configuration's "
                          "regions could not be computed: "
                          f"{why or 'their process left them missing'}")

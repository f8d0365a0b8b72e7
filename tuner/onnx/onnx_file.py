"""Inside a trial process: the study's model (same weights) exported to ONNX, and the proof that
it is the same network: ONNX Runtime's output against the untuned MindSpore reference output
on the study's fixed input."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tuner.onnx.conventions import ONNX_FILE, session_options
from tuner.trial.request import INPUT_FILE, REFERENCE_FILE, WEIGHTS_FILE, TrialRequest

ONNX_INFO_FILE = "onnx.json"


@dataclass(frozen=True)
class OnnxExport:
    """How the ONNX model was made (``rewrites``: tuner.onnx.exportable's counts; empty when
    ``mindspore.export`` took the network as it is) and how far ONNX Runtime's output is from
    the untuned MindSpore output: max |ort - ref| / max |ref|."""

    path: str
    rewrites: dict
    max_rel_error: float
    export_seconds: float

    @classmethod
    def read(cls, assets_dir: Path) -> "OnnxExport":
        return cls(**json.loads((Path(assets_dir) / ONNX_INFO_FILE).read_text()))


def _export(net, x, path: Path) -> dict:
    import mindspore as ms

    from tuner.onnx.exportable import make_exportable
    from tuner.rewrites.network import TunedNetwork

    try:
        ms.export(TunedNetwork(net), x, file_name=str(path.with_suffix("")), file_format="ONNX")
        return {}
    except (RuntimeError, TypeError, ValueError):  # an operator without an ONNX mapping
        rewrites = make_exportable(net)
        ms.export(TunedNetwork(net), x, file_name=str(path.with_suffix("")), file_format="ONNX")
        return rewrites


def export_onnx(request: TrialRequest, ms) -> OnnxExport:
    """Export the study's model (weights from its assets) to ``assets/model.onnx`` and check it
    with ONNX Runtime; the result is also written to ``assets/onnx.json``."""
    import time

    import onnxruntime

    from tuner.models import create_model
    from tuner.trial.measurement import output_error

    net = create_model(request.target.model)
    ms.load_param_into_net(net, ms.load_checkpoint(str(request.asset(WEIGHTS_FILE))))
    x = np.load(request.asset(INPUT_FILE))
    path = request.asset(ONNX_FILE)
    started = time.perf_counter()
    rewrites = _export(net, ms.Tensor(x), path)
    seconds = time.perf_counter() - started
    session = onnxruntime.InferenceSession(str(path), session_options(),
                                           providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: x})[0]
    _, rel_error = output_error(output, np.load(request.asset(REFERENCE_FILE)))
    result = OnnxExport(str(path), rewrites, rel_error, seconds)
    request.asset(ONNX_INFO_FILE).write_text(json.dumps(asdict(result)))
    return result

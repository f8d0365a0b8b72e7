"""The ONNX route: rewrites that make a network exportable change nothing it computes, and
ONNX Runtime reproduces the untuned MindSpore output (tuner.onnx)."""
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from tests.conftest import TINY_MODEL  # noqa: E402
from tuner.models import TuningTarget  # noqa: E402
from tuner.runner.isolate import run_isolated  # noqa: E402
from tuner.trial.measurement import MeasureSettings  # noqa: E402
from tuner.trial.request import TrialRequest  # noqa: E402

INPLACE_MODEL = "tests.fixtures.tiny_models:inplace_net"


def test_rewrites_keep_the_output_and_make_the_network_exportable(tmp_path):
    import mindspore as ms

    from tests.fixtures.tiny_models import inplace_net
    from tuner.onnx.exportable import make_exportable
    from tuner.rewrites.network import TunedNetwork

    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    net = inplace_net()
    net.set_train(False)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 8, 8)).astype(np.float32))
    reference = TunedNetwork(net)(x).asnumpy()
    with pytest.raises(RuntimeError, match="InplaceAddExt|Unstack|AdaptiveAvgPool2D"):
        ms.export(TunedNetwork(net), x, file_name=str(tmp_path / "refused"), file_format="ONNX")
    assert make_exportable(net) == {"out_of_place_updates": 1, "unstack_as_gathers": 1,
                                    "global_pools_as_means": 1}
    assert np.array_equal(TunedNetwork(net)(x).asnumpy(), reference)
    ms.export(TunedNetwork(net), x, file_name=str(tmp_path / "net"), file_format="ONNX")
    assert (tmp_path / "net.onnx").stat().st_size > 0


@pytest.mark.parametrize("model", [TINY_MODEL, INPLACE_MODEL])
def test_onnx_runtime_reproduces_the_untuned_output(tmp_path, model):
    target = TuningTarget(model, batch_size=2, image_size=16)
    assets = tmp_path / "assets"
    assert run_isolated(TrialRequest("prepare", target, str(assets)), tmp_path / "p", 120).ok
    exported = run_isolated(TrialRequest("onnx_export", target, str(assets)), tmp_path / "e", 120)
    assert exported.ok, exported.error
    info = json.loads((assets / "onnx.json").read_text())
    assert info["max_rel_error"] < 1e-5
    measured = run_isolated(TrialRequest("onnx_measure", target, str(assets),
                                         measure=MeasureSettings(max_seconds=1.0)),
                            tmp_path / "m", 120)
    assert measured.ok, measured.error
    assert measured.metrics.throughput_ips > 0 and measured.metrics.max_rel_error < 1e-5

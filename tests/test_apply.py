"""Deployment: tuner.apply on the user's own network, tuner.load of an exported JSON."""
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = r"""
import json, os, sys
import numpy as np
import mindspore as ms
import tuner
from tuner.config import TuningConfig
from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig, write_export
from tuner.models import TuningTarget, fingerprint
from tests.fixtures.tiny_models import tiny_net, TinyNet

work = sys.argv[1]
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
ms.set_seed(3)
trained = tiny_net()                      # the user's own trained network
ms.save_checkpoint(trained, f"{work}/trained.ckpt")
x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32))
reference = trained(x).asnumpy()
config = TuningConfig.from_knobs({"graph_kernel.enabled": True,
                                  "graph_kernel.excluded_modules": ["stage1"],
                                  "rewrites.fold_batchnorm": "all"})
exported = ExportedConfig(TuningTarget("tests.fixtures.tiny_models:tiny_net", 2, 16), config,
                          fingerprint(trained), ms.__version__)
write_export(exported, f"{work}/best.json")
out = {}
tuned = tuner.apply(trained, f"{work}/best.json")
out["apply_error"] = float(np.abs(tuned(x).asnumpy() - reference).max())
out["flags"] = os.environ.get("MS_DEV_GRAPH_KERNEL_FLAGS")
loaded = tuner.load(f"{work}/best.json", checkpoint=f"{work}/trained.ckpt", trust_model_code=True)
out["load_error"] = float(np.abs(loaded(x).asnumpy() - reference).max())
out["scale"] = float(np.abs(reference).max())
try:
    tuner.apply(TinyNet(channels=4), f"{work}/best.json")
except UsageError as exc:
    out["other_model"] = str(exc)
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def run_script(script: str, work) -> dict:
    """A deployment script in its own process, in ``work`` (graph-kernel fusion writes its
    kernel cache into the working directory); the JSON object it printed last."""
    process = subprocess.run([sys.executable, "-c", script, str(work)], cwd=work,
                             capture_output=True, text=True, timeout=300,
                             env={**os.environ, "GLOG_v": "3", "PYTHONPATH": str(REPO)})
    assert process.returncode == 0, process.stderr[-3000:]
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_apply_and_load_match_the_untuned_network(tmp_path):
    out = run_script(SCRIPT, tmp_path)
    assert out["apply_error"] <= 1e-5 * out["scale"]
    assert out["load_error"] <= 1e-5 * out["scale"]
    assert out["flags"] == "--opt_level=1"
    assert "tuned for tests.fixtures.tiny_models:tiny_net" in out["other_model"]


PYNATIVE = r"""
import json, os, sys
import numpy as np
import mindspore as ms
import tuner
from tuner.config import ProgramConfig, TuningConfig
from tuner.exported_config import ExportedConfig, write_export
from tuner.models import TuningTarget, fingerprint
from tests.fixtures.tiny_models import tiny_net

work = sys.argv[1]                        # no set_context: MindSpore's default PyNative mode
trained = tiny_net()
x = ms.Tensor(np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32))
reference = trained(x).asnumpy()          # the user's own PyNative run
config = TuningConfig(programs=ProgramConfig("network"))
write_export(ExportedConfig(TuningTarget("tests.fixtures.tiny_models:tiny_net", 2, 16), config,
                            fingerprint(trained), ms.__version__), f"{work}/programs.json")
tuned = tuner.apply(trained, f"{work}/programs.json")
y = tuned(x).asnumpy()
still = (ms.Tensor(np.ones((2, 3), np.float32)) + 1).asnumpy()  # PyNative keeps working
print(json.dumps({"pynative": ms.get_context("mode") == ms.PYNATIVE_MODE,
                  "error": float(np.abs(y - reference).max() / np.abs(reference).max()),
                  "eager_sum": float(still.sum())}))
sys.stdout.flush()
os._exit(0)
"""


def test_a_pynative_user_flow_with_programs(tmp_path):
    out = run_script(PYNATIVE, tmp_path)
    assert out["pynative"] and out["eager_sum"] == 12.0
    assert out["error"] < 1e-4


LOAD_ONLY = r"""
import json, os, sys
import numpy as np
import mindspore as ms
import tuner

work = sys.argv[1]
net = tuner.load(f"{work}/best.json", checkpoint=f"{work}/trained.ckpt",  # no set_context here
                 trust_model_code=True)
y = net(ms.Tensor(np.zeros((2, 3, 16, 16), np.float32))).asnumpy()
print(json.dumps({"shape": list(y.shape), "mode_kept": ms.get_context("mode") == ms.PYNATIVE_MODE,
                  "finite": bool(np.isfinite(y).all())}))
sys.stdout.flush()
os._exit(0)
"""


def test_load_needs_no_mindspore_set_up_in_the_deployment_process(tmp_path):
    run_script(SCRIPT, tmp_path)  # writes best.json and trained.ckpt
    out = run_script(LOAD_ONLY, tmp_path)
    assert out == {"shape": [2, 10], "mode_kept": True, "finite": True}


@pytest.mark.parametrize("content, message", [
    ("{", "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"schema_version": 99}', "schema_version 99 is not supported"),
    ('{"schema_version": 1, "model": "m"}', "missing key 'input_shape'"),
    ('{"schema_version": 1, "model": "m", "input_shape": [1, 3, 8, 8], "device": "CPU", '
     '"fingerprint": "f", "mindspore_version": "2", "config": {"graph_kernel": {"opt_level": 7}}}',
     "config.graph_kernel.opt_level: 7 is out of range"),
])
def test_bad_export_files_are_one_line_usage_errors(tmp_path, content, message):
    from tuner.errors import UsageError
    from tuner.exported_config import read_export

    path = tmp_path / "best.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message) as error:
        read_export(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


SERVING = r"""
import json, os, sys, threading
import numpy as np
import mindspore as ms
import tuner
from tuner.config import ProgramConfig, TuningConfig
from tuner.errors import UsageError
from tuner.exported_config import ExportedConfig, write_export
from tuner.models import TuningTarget, fingerprint
from tests.fixtures.tiny_models import randomize_batchnorm, tiny_net

work, granularity = sys.argv[1], sys.argv[2]
ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
trained = randomize_batchnorm(tiny_net())
untuned = randomize_batchnorm(tiny_net())
ms.load_param_into_net(untuned, trained.parameters_dict())
config = TuningConfig(programs=ProgramConfig(granularity))
write_export(ExportedConfig(TuningTarget("tests.fixtures.tiny_models:tiny_net", 4, 16), config,
                            fingerprint(trained), ms.__version__), f"{work}/best.json")
tuned = tuner.apply(trained, f"{work}/best.json")
rng = np.random.default_rng(0)
out = {"errors": {}, "refused": {}}
for batch in (1, 4, 7, 8):
    x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
    y, reference = tuned(ms.Tensor(x)).asnumpy(), untuned(ms.Tensor(x)).asnumpy()
    assert y.shape == reference.shape, (y.shape, reference.shape)
    out["errors"][batch] = float(np.abs(y - reference).max() / np.abs(reference).max())
for name, x in {"image 8": np.zeros((4, 3, 8, 8), np.float32),
                "image 32": np.zeros((1, 3, 32, 32), np.float32),
                "float64": np.zeros((4, 3, 16, 16), np.float64),
                "rank 3": np.zeros((3, 16, 16), np.float32)}.items():
    try:
        tuned(ms.Tensor(x))
        out["refused"][name] = None
    except UsageError as exc:
        out["refused"][name] = str(exc)
inputs = [rng.standard_normal((4, 3, 16, 16)).astype(np.float32) for _ in range(8)]
expected = [untuned(ms.Tensor(x)).asnumpy() for x in inputs]
wrong = []
def serve(k):
    for _ in range(20):
        y = tuned(ms.Tensor(inputs[k])).asnumpy()
        if np.abs(y - expected[k]).max() > 1e-4 * np.abs(expected[k]).max():
            wrong.append(k)
threads = [threading.Thread(target=serve, args=(k,)) for k in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
out["threads_wrong"] = len(wrong)
out["planned"] = list(tuned.planned_batches)
out["failures"] = {str(b): why for b, why in tuned.planning_failures.items()}
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


@pytest.mark.parametrize("granularity", ["network", "layer"])
def test_a_tuned_network_serves_any_batch_refuses_other_shapes_and_serves_threads(
        tmp_path, granularity):
    subprocess_out = subprocess.run(
        [sys.executable, "-c", SERVING, str(tmp_path), granularity], cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "GLOG_v": "3", "PYTHONPATH": str(REPO)})
    assert subprocess_out.returncode == 0, subprocess_out.stderr[-3000:]
    out = json.loads(subprocess_out.stdout.strip().splitlines()[-1])
    assert set(out["errors"]) == {"1", "4", "7", "8"}
    assert all(error < 1e-4 for error in out["errors"].values()), out["errors"]
    for name, message in out["refused"].items():
        assert message and "\n" not in message, (name, message)
        assert "tuned at 4x3x16x16" in message, message
    assert out["threads_wrong"] == 0
    assert out["planned"] == [1, 7, 8] and not out["failures"]  # planned on first use


def test_an_input_shape_the_network_cannot_take_is_refused_in_one_line():
    import mindspore as ms
    from mindspore import nn

    import tuner
    from tuner.config import ProgramConfig, TuningConfig
    from tuner.errors import UsageError
    from tuner.exported_config import ExportedConfig
    from tuner.models import TuningTarget, fingerprint

    class FixedSize(nn.Cell):  # a head built for 16x16 inputs
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
            self.flatten = nn.Flatten()
            self.head = nn.Dense(4 * 16 * 16, 10)

        def construct(self, x):
            return self.head(self.flatten(self.conv(x)))

    net = FixedSize()
    exported = ExportedConfig(TuningTarget("tests.fixtures.tiny_models:tiny_net", 1, 32),
                              TuningConfig(programs=ProgramConfig("network")), fingerprint(net),
                              ms.__version__, source="fixed.json")
    with pytest.raises(UsageError, match="fixed.json: input_shape 1x3x32x32: the network cannot "
                                         "be run at it") as error:
        tuner.apply(net, exported)
    assert "\n" not in str(error.value)

"""A trial whose programs' regions have no untuned outputs yet waits at phase ``references``
while its parent computes them in a process of their own, without the trial's settings
(tuner.trial.protocol)."""
import json
import shutil

import pytest

from tuner.config import TuningConfig
from tuner.kernels.cpu.trial_steps import REFERENCES_DIR
from tuner.runner import zygote
from tuner.runner.isolate import run_isolated
from tuner.trial.measurement import MeasureSettings
from tuner.trial.protocol import REFERENCES_DONE_FILE, REFERENCES_REQUEST_FILE
from tuner.trial.result import Status
from tuner.trial.request import TrialRequest

LAYERS_ONE_THREAD = TuningConfig.from_knobs({"programs.granularity": "layer",
                                             "runtime.omp_num_threads": 1})


@pytest.fixture
def assets(tiny_assets, tmp_path):
    """The tiny net's assets without any region's untuned output."""
    copy = tmp_path / "assets"
    shutil.copytree(tiny_assets, copy)
    for path in (copy / REFERENCES_DIR).glob("region-*"):
        path.unlink()
    return copy


@pytest.fixture
def measure(tiny_target, tmp_path):
    def run(assets, name):
        request = TrialRequest("measure", tiny_target, str(assets), config=LAYERS_ONE_THREAD,
                               measure=MeasureSettings(max_seconds=2.0))
        return run_isolated(request, tmp_path / name, timeout=180)
    return run


def _regions(assets):
    return sorted(p.name for p in (assets / REFERENCES_DIR).glob("region-*"))


def test_the_parent_computes_them_without_the_trials_settings(measure, assets, tmp_path):
    result = measure(assets, "first")
    assert result.status is Status.OK and result.metrics.max_rel_error < 1e-5
    computed = _regions(assets)
    assert computed  # one per layer region
    references = tmp_path / "first" / "references"
    asked = TrialRequest.from_json((tmp_path / "first" / REFERENCES_REQUEST_FILE).read_text())
    assert asked.config == TuningConfig(programs=LAYERS_ONE_THREAD.programs)
    assert json.loads((references / "request.json").read_text())["kind"] == "references"
    assert (references / zygote.EXIT_FILE).exists()  # forked, as measurements are
    assert (tmp_path / "first" / REFERENCES_DONE_FILE).read_text() == ""

    again = measure(assets, "second")
    assert again.status is Status.OK
    assert not (tmp_path / "second" / REFERENCES_REQUEST_FILE).exists()
    assert _regions(assets) == computed


def test_outputs_that_cannot_be_computed_fail_the_trial_before_measuring(measure, assets):
    shutil.rmtree(assets / REFERENCES_DIR, ignore_errors=True)  # absent if no trial made it yet
    (assets / REFERENCES_DIR).write_text("not a directory")
    result = measure(assets, "trial")
    assert result.status is Status.COMPILE_ERROR
    assert "regions could not be computed" in result.error

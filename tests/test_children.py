"""The tuner's own Python processes import nothing from their working directory implicitly:
only tuner, the directory a given ``--model`` factory was found in, and the user's PYTHONPATH."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import REPO, TINY_MODEL
from tuner.children import TUNER_ROOT, child_environment, import_path, python_command
from tuner.commands.cluster import model_argument
from tuner.models import TuningTarget
from tuner.runner.isolate import trial_environment
from tuner.trial.request import TrialRequest


@pytest.fixture
def planted(tmp_path):
    """A working directory holding a module that leaves a file when imported."""
    (tmp_path / "planted.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('imported').write_text('')\n")
    return tmp_path


def test_a_child_does_not_import_from_its_working_directory(planted):
    process = subprocess.run(python_command("planted"), cwd=planted, capture_output=True,
                             text=True, env=child_environment(base={**os.environ, "PYTHONPATH": ""}),
                             timeout=60)
    assert "No module named planted" in process.stderr
    assert not (planted / "imported").exists()


def test_empty_entries_of_the_users_path_are_dropped_and_the_rest_kept(tmp_path):
    path = import_path(None, f"{os.pathsep}{tmp_path}{os.pathsep}{os.pathsep}").split(os.pathsep)
    assert path == [str(TUNER_ROOT), str(tmp_path)]


def test_a_trials_path_holds_tuner_and_its_models_directory_only(planted, monkeypatch):
    monkeypatch.chdir(planted)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    request = TrialRequest("measure", TuningTarget(TINY_MODEL, 2, 16), str(planted))
    assert trial_environment(request, planted)["PYTHONPATH"].split(os.pathsep) == [str(REPO)]
    request = TrialRequest("measure", TuningTarget("resnet18", 2, 16), str(planted))
    assert str(planted) not in trial_environment(request, planted)["PYTHONPATH"]


@pytest.mark.parametrize("args, model", [(["--model", "a.b:f", "--trials", "3"], "a.b:f"),
                                         (["--model=resnet18"], "resnet18"), (["--trials", "3"], None)])
def test_a_cluster_worker_gets_the_path_of_its_model_argument(args, model):
    assert model_argument(args) == model

"""Requests as the study writes them and a trial process, in its own directory, reads them."""
from tuner.models import TuningTarget
from tuner.trial.request import MODEL_INFO_FILE, TrialRequest


def test_a_relative_assets_directory_names_the_same_one_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    request = TrialRequest("prepare", TuningTarget("resnet50"), "mlruns/bench/assets")
    monkeypatch.chdir("/")
    read = TrialRequest.from_json(request.to_json())
    assert read.asset(MODEL_INFO_FILE) == tmp_path / "mlruns" / "bench" / "assets" / MODEL_INFO_FILE

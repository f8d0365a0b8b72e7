"""python -m tuner.report and the search's report: a self-contained HTML file with the plots,
the summary and the winner; the MLflow UI opening on the runs. Checked in headless Chromium."""
import base64
import contextlib
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO, tuner
from tests.fixtures.browser import rendered_dom, screenshot

PLOTS_ALWAYS = ("history", "importances", "slices", "validation")
UI_QUERY = "workflowType=machine_learning"  # MLflow 3.17's "Model training" view (see README)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(searched, tmp_path_factory):
    runs, _, _ = searched
    out = tmp_path_factory.mktemp("report") / "report.html"
    process = tuner("report", "--out", out, runs_dir=runs)
    assert f"wrote {out}" in process.stdout
    return out


def test_report_is_self_contained_with_plots_summary_and_winner(report):
    page = report.read_text()
    assert "<script" not in page and not re.search(r'(src|href)="https?://', page)
    for name in PLOTS_ALWAYS:
        match = re.search(rf'<figure id="plot-{name}"><img alt="[^"]+" src="data:image/png;base64,'
                          r'([A-Za-z0-9+/=]+)"', page)
        assert match, f"plot {name} missing"
        width, height = _png_size(base64.b64decode(match.group(1)))
        assert width > 200 and height > 150
    assert 'id="summary"' in page and "speedup" in page and "validated in 2 interleaved" in page
    assert 'id="winner-knobs"' in page and "kernel for dense_n2_c" in page
    assert "python -m tuner.measure" in page and "tuner.load(" in page
    assert "MindSpore" in page and "machine noise at start" in page


def test_search_writes_the_report_and_logs_plots_to_the_parent_run(searched):
    runs, first, _ = searched
    assert "report: " in first.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuner")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = next(r for r in client.search_runs([experiment.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {f"plots/{name}.png" for name in PLOTS_ALWAYS} <= logged
    assert "```" in parent.data.tags["mlflow.note.content"]


def test_nested_runs_are_named_and_described(searched):
    runs, _, _ = searched
    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tuner")
    children = [r for r in client.search_runs([experiment.experiment_id])
                if "mlflow.parentRunId" in r.data.tags]
    names = {r.info.run_name for r in children}
    assert "trial-0 baseline" in names
    assert any(re.fullmatch(r"trial-\d+ ok \d+\.\d\dx", n) for n in names), names
    for child in children:
        assert "Knobs that differ from the untuned defaults" in child.data.tags["mlflow.note.content"]


def test_report_renders_in_chromium(report):
    dom = rendered_dom(report.as_uri())
    for name in PLOTS_ALWAYS:
        assert f'id="plot-{name}"><img' in dom
    assert 'id="summary"' in dom and 'id="winner-knobs"' in dom
    shot = screenshot(report.as_uri(), "report")
    assert _png_size(shot.read_bytes()) == (1400, 2400)


@contextlib.contextmanager
def serving(command: list[str], probe: str):
    """Start a local server (``{port}`` in ``command`` and ``probe`` is a free port), wait
    until ``probe`` answers, yield (base address, the probe's body); stop it afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([c.format(port=port) for c in command], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):
            try:
                body = urllib.request.urlopen(probe.format(port=port), timeout=2).read().decode()
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"{command[0]} did not answer within 60 s")
        yield f"http://127.0.0.1:{port}", body
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def mlflow_ui(searched):
    runs, _, _ = searched
    store = f"sqlite:///{runs / 'mlflow.db'}"
    with serving([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", store,
                  "--host", "127.0.0.1", "--port", "{port}"],
                 "http://127.0.0.1:{port}/health") as (url, _):
        yield url, MlflowClient(tracking_uri=store)


def test_mlflow_ui_opens_the_experiment_on_its_runs(mlflow_ui):
    url, client = mlflow_ui
    experiment = client.get_experiment_by_name("tuner")
    page = f"{url}/#/experiments/{experiment.experiment_id}?{UI_QUERY}"
    dom = rendered_dom(page, budget_ms=20000)
    assert "tests.fixtures.tiny_models.tiny_net_2x3x16x16_CPU_throughput" in dom
    assert "matching runs" in dom, "the experiment did not open on its runs table"
    screenshot(page, "mlflow-experiment", size=(1600, 1000), budget_ms=20000)


def test_mlflow_ui_shows_a_nested_run_with_its_name_knobs_and_parent(mlflow_ui):
    url, client = mlflow_ui
    experiment = client.get_experiment_by_name("tuner")
    child = next(r for r in client.search_runs([experiment.experiment_id])
                 if r.data.tags.get("status") == "ok" and r.data.tags.get("baseline") == "false")
    page = f"{url}/#/experiments/{experiment.experiment_id}/runs/{child.info.run_id}?{UI_QUERY}"
    dom = rendered_dom(page, budget_ms=20000)
    assert child.info.run_name in dom and "Knobs that differ from the untuned defaults" in dom
    assert "Parent run" in dom
    assert "tests.fixtures.tiny_models.tiny_net_2x3x16x16_CPU_throughput" in dom
    screenshot(page, "mlflow-nested-run", size=(1600, 1200), budget_ms=20000)


def test_mlflow_ui_parent_run_shows_the_summary(mlflow_ui):
    url, client = mlflow_ui
    experiment = client.get_experiment_by_name("tuner")
    parent = next(r for r in client.search_runs([experiment.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    page = f"{url}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}?{UI_QUERY}"
    dom = rendered_dom(page, budget_ms=20000)
    assert "validated in 2 interleaved rounds" in dom
    screenshot(page, "mlflow-parent-run", size=(1600, 1400), budget_ms=20000)


def test_optuna_dashboard_serves_the_study_storage(searched):
    pytest.importorskip("optuna_dashboard")
    runs, _, _ = searched
    command = Path(sys.executable).with_name("optuna-dashboard")
    with serving([str(command if command.exists() else "optuna-dashboard"),
                  f"sqlite:///{runs / 'optuna.db'}", "--host", "127.0.0.1", "--port", "{port}"],
                 "http://127.0.0.1:{port}/api/studies") as (_, body):
        assert "tests.fixtures.tiny_models.tiny_net_2x3x16x16_CPU_throughput" in body

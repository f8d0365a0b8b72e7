"""tuner.commands.cluster hands the storage and tracking URLs to its children through their
environment: a password never appears on a command line (``ps`` shows those to every user) nor in
its output."""
from __future__ import annotations

import pytest

import tuner.commands.cluster as cluster
from tuner.errors import UsageError
from tuner.storages.storage import STORAGE_ENV

STORAGE = "postgresql://alice:S3CRET@127.0.0.1:1/db"
BACKEND = "postgresql://bob:B4CKEND@127.0.0.1:1/db?options=-csearch_path%3Dmlflow"


class Recorder:
    """Stands for subprocess.Popen: records argv and environment, ends at once."""
    launched: list = []

    def __init__(self, argv, env=None, **_):
        self.argv, self.env, self.pid, self.returncode = list(argv), env or {}, 0, 1
        Recorder.launched.append(self)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        return self.returncode


@pytest.fixture
def recorder(monkeypatch):
    Recorder.launched = []
    monkeypatch.setattr(cluster.subprocess, "Popen", Recorder)
    return Recorder


def test_the_mlflow_server_gets_its_backend_through_the_environment(recorder, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.MlflowServer, "healthy", lambda self: True)
    cluster.MlflowServer(BACKEND, tmp_path / "artifacts", 5999, tmp_path / "server.log").start()
    (server,) = recorder.launched
    assert "B4CKEND" not in " ".join(server.argv) and "--backend-store-uri" not in server.argv
    assert server.env["MLFLOW_BACKEND_STORE_URI"] == BACKEND


def test_workers_get_the_urls_through_the_environment_and_nothing_prints_them(
        recorder, tmp_path, monkeypatch, capsys):
    class Server:
        uri = "http://127.0.0.1:5999"

        def __init__(self, *_):
            pass

        def start(self):
            return self

        def stop(self):
            pass
    monkeypatch.setattr(cluster, "MlflowServer", Server)
    monkeypatch.setattr(cluster, "mlflow_backend", lambda url: url)
    with pytest.raises(UsageError) as error:  # the storage is unreachable: no study to audit
        cluster.main(["--workers", "2", "--storage", STORAGE, "--mlflow-backend", BACKEND,
                      "--runs-dir", str(tmp_path), "--", "--model", "resnet18"])
    assert len(recorder.launched) == 2
    for worker in recorder.launched:
        assert "S3CRET" not in " ".join(worker.argv) and "--storage" not in worker.argv
        assert worker.env[STORAGE_ENV] == STORAGE
        assert worker.env["MLFLOW_TRACKING_URI"] == Server.uri
    output = capsys.readouterr()
    assert "S3CRET" not in str(error.value) + output.out + output.err
    assert "alice:***@127.0.0.1:1/db" in str(error.value)

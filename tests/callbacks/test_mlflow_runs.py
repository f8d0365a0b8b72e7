"""What a study records in MLflow about its storage: the URL with its credentials masked."""
from __future__ import annotations

from types import SimpleNamespace

from tuner.callbacks.mlflow_runs import safe_url


def test_the_recorded_storage_url_has_no_password():
    study = SimpleNamespace(_storage=SimpleNamespace(
        _backend=SimpleNamespace(url="postgresql://alice:S3CRET@db/test?password=S3CRET&x=1")))
    assert safe_url(study) == "postgresql://alice:***@db/test?password=***&x=1"

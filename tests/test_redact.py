"""Credentials are masked in every URL the tuner shows: user:password@ and secret parameters."""
from __future__ import annotations

import pytest

from tuner.redact import mask_url, without_secrets


@pytest.mark.parametrize("url, masked", [
    ("postgresql://alice:S3CRET@127.0.0.1:1/db", "postgresql://alice:***@127.0.0.1:1/db"),
    ("postgresql+psycopg2://alice:p%40ss/w@rd@db.example:5432/test?sslmode=require",
     "postgresql+psycopg2://alice:***@db.example:5432/test?sslmode=require"),
    ("mysql://bob:pw@h/db?password=S3CRET&charset=utf8;api_token=T0KEN#top",
     "mysql://bob:***@h/db?password=***&charset=utf8;api_token=***#top"),
    ("postgresql://h/db?user=alice&passwd=S3CRET&PWD=S3CRET&client_secret=S3CRET&key=S3CRET",
     "postgresql://h/db?user=alice&passwd=***&PWD=***&client_secret=***&key=***"),
    ("postgresql://alice@h/db?options=-csearch_path%3Dmlflow",
     "postgresql://alice@h/db?options=-csearch_path%3Dmlflow"),
    ("sqlite:///mlruns/optuna.db", "sqlite:///mlruns/optuna.db"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("not a url: alice:S3CRET@h", "not a url: alice:S3CRET@h"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_secrets_are_removed_from_other_text_as_written_and_decoded():
    url = "postgresql://alice:p%40ss@h/db?token=T0KEN"
    text = f"cannot connect to {url}: password 'p@ss' rejected, token T0KEN"
    assert without_secrets(text, url, None) == (
        "cannot connect to postgresql://alice:***@h/db?token=***: password '***' rejected, "
        "token ***")

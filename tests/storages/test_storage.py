"""A storage URL's password never reaches the output: a bad URL's one-line error masks it, and
$TUNER_STORAGE gives the URL without a command line."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tuner.errors import UsageError
from tuner.storages.storage import STORAGE_ENV, open_storage

UNREACHABLE = "postgresql://alice:S3CRET@127.0.0.1:1/db?password=S3CRET"


def test_an_unreachable_storage_is_one_line_without_its_password(tmp_path):
    with pytest.raises(UsageError) as error:
        open_storage(UNREACHABLE, tmp_path)
    message = str(error.value)
    assert message.startswith("--storage postgresql://alice:***@127.0.0.1:1/db?password=***: "
                              "cannot open (")
    assert "S3CRET" not in message and "\n" not in message


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_the_search_command_prints_no_password(tmp_path, how):
    args = ["--storage", UNREACHABLE] if how == "flag" else []
    env = {STORAGE_ENV: UNREACHABLE} if how == "environment" else {}
    process = subprocess.run([sys.executable, "-m", "tuner.search", *args, "--runs-dir",
                              str(tmp_path), "--no-progress"], cwd=REPO, capture_output=True,
                             text=True, timeout=300, env={**_environ(), **env})
    assert process.returncode == 2, process.stderr[-2000:]
    assert "--storage postgresql://alice:***@127.0.0.1:1/db" in process.stderr
    assert "S3CRET" not in process.stderr + process.stdout


def _environ() -> dict:
    return {k: v for k, v in os.environ.items() if k != STORAGE_ENV}

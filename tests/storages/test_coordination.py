"""Locks of a SQLite study database live in one place, ``locks/`` beside the database (the
runs dir's ``locks/`` for the default store), not as loose files next to it."""
from __future__ import annotations

from tuner.storages.coordination import LOCKS_DIR, SCHEMA_LOCK, database_lock, lock_file
from tuner.storages.storage import default_storage_url, open_storage


def test_opening_the_default_store_leaves_no_lock_file_beside_the_database(tmp_path):
    runs = tmp_path / "mlruns"
    open_storage(None, runs)
    assert sorted(p.name for p in runs.iterdir()) == [LOCKS_DIR, "optuna.db"]
    assert [p.name for p in (runs / LOCKS_DIR).iterdir()] == [lock_file(runs / "optuna.db",
                                                                        SCHEMA_LOCK).name]


def test_each_lock_name_has_its_file_in_the_locks_directory(tmp_path):
    url = default_storage_url(tmp_path)
    names = ["tuner-study:s", "tuner-study:s:mlflow", "tuner-create:s"]
    for name in names:
        with database_lock(url, name):
            assert lock_file(tmp_path / "optuna.db", name).exists()
    assert len(list((tmp_path / LOCKS_DIR).glob("optuna.db.*.lock"))) == len(names)
    assert not list(tmp_path.glob("*.lock"))

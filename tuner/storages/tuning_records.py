"""Tuning records: the validated kernel tiling per workload, reused to warm-start new studies.

A record says: on this CPU model, with this compiler and this MindSpore version, workload W ran
best (within a validated winner) with kernel K and parameters P. Records live in the study
storage's database (table ``tuner_tuning_records``), so every study sharing a storage shares
them. A new study looks up its workloads: the same workload first, else the same convolution at
another batch size; records from another CPU, compiler or MindSpore version are never used.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable

import sqlalchemy as sa

from tuner.config import KernelChoice
from tuner.storages.coordination import SCHEMA_LOCK, database_lock

TABLE = "tuner_tuning_records"


@dataclass(frozen=True)
class Toolchain:
    """What a record is valid for."""

    cpu_model: str
    compiler: str
    mindspore_version: str


@dataclass(frozen=True)
class TuningRecord:
    """``workload``: its key; ``batchless``: the key of the same problem at any batch size
    (``Workload.batchless_key``)."""

    workload: str
    batchless: str
    kernel: str
    params: dict[str, Any]
    toolchain: Toolchain
    study: str
    trial: int
    speedup: float   # the validated speedup of the whole configuration it came from


class TuningRecordStore:
    def __init__(self, url: str):
        self.engine = sa.create_engine(url)
        metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE, metadata,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("workload", sa.String(300), nullable=False, index=True),
            sa.Column("workload_batchless", sa.String(300), nullable=False, index=True),
            sa.Column("kernel", sa.String(100), nullable=False),
            sa.Column("params", sa.Text, nullable=False),
            sa.Column("cpu_model", sa.String(300), nullable=False),
            sa.Column("compiler", sa.String(300), nullable=False),
            sa.Column("mindspore_version", sa.String(50), nullable=False),
            sa.Column("study", sa.String(500), nullable=False),
            sa.Column("trial", sa.Integer, nullable=False),
            sa.Column("speedup", sa.Float, nullable=False))
        with database_lock(self.engine, SCHEMA_LOCK):  # several workers may start at once
            metadata.create_all(self.engine)

    def save(self, records: Iterable[TuningRecord]) -> int:
        rows = [{"workload": r.workload, "workload_batchless": r.batchless,
                 "kernel": r.kernel, "params": json.dumps(r.params, sort_keys=True),
                 "cpu_model": r.toolchain.cpu_model, "compiler": r.toolchain.compiler,
                 "mindspore_version": r.toolchain.mindspore_version, "study": r.study,
                 "trial": r.trial, "speedup": r.speedup} for r in records]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(self.table.insert(), rows)
        return len(rows)

    def best_choices(self, workloads: Iterable[tuple[str, str, str]],
                     toolchain: Toolchain) -> dict[str, tuple[KernelChoice, str]]:
        """For (workload key, its batchless key, kernel): the best matching record as a
        KernelChoice and where it came from (``study#trial``); exact workload before another
        batch size, then the highest speedup."""
        t = self.table
        same_toolchain = sa.and_(t.c.cpu_model == toolchain.cpu_model,
                                 t.c.compiler == toolchain.compiler,
                                 t.c.mindspore_version == toolchain.mindspore_version)
        found: dict[str, tuple[KernelChoice, str]] = {}
        with self.engine.connect() as connection:
            for key, batchless, kernel in workloads:
                row = connection.execute(
                    sa.select(t).where(same_toolchain, t.c.kernel == kernel,
                                       t.c.workload_batchless == batchless)
                    .order_by((t.c.workload == key).desc(), t.c.speedup.desc()).limit(1)).first()
                if row is not None:
                    params = tuple(sorted(json.loads(row.params).items()))
                    found[key] = (KernelChoice(key, kernel, params), f"{row.study}#{row.trial}")
        return found

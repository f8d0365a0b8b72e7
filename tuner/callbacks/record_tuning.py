"""Saving the validated winner's kernel tiling as tuning records for later studies."""
from __future__ import annotations

from tuner.storages import trial_facts
from tuner.storages.tuning_records import TuningRecord, TuningRecordStore
from tuner.study.study_callback import StudyCallback


class SaveTuningRecords(StudyCallback):
    """Only validated winners become records: a lucky measurement never seeds other studies."""

    def __init__(self, store: TuningRecordStore):
        self.store = store
        self.saved = 0

    def on_validated(self, run, report):
        winner = run.study.get_trials(deepcopy=False)[report.winner]
        speedup = report.candidate(report.winner).speedup
        toolchain = run.toolchain()
        groups = {g.key: g for g in (run.space.kernels.workloads if run.space.kernels else ())}
        self.saved += self.store.save(
            TuningRecord(c.workload, groups[c.workload].workload.batchless_key, c.kernel,
                         dict(c.params), toolchain, run.study.study_name, winner.number, speedup)
            for c in trial_facts.trial_config(winner).kernels if c.workload in groups)

"""A progress bar during the search: trials done, ETA and the best so far."""
from __future__ import annotations

import sys

from tqdm import tqdm

from tuner.storages import attributes as attrs
from tuner.storages.attributes import TrialKey
from tuner.study.study_callback import StudyCallback


class ProgressBar(StudyCallback):
    """Trials done, ETA and the best so far, on stderr."""

    def __init__(self, n_trials: int):
        self.n_trials = n_trials
        self.bar: tqdm | None = None

    def on_study_start(self, run):
        self.bar = tqdm(total=self.n_trials, desc=run.study.study_name[:40], unit="trial",
                        file=sys.stderr, dynamic_ncols=True)

    def on_trial_end(self, run, trial, result):
        best = run.best_trials()
        reused = attrs.trial_get(trial, TrialKey.REUSED_FROM)
        postfix = {"last": result.status.value + (f" (=#{reused})" if reused is not None else "")}
        if best:
            top = best[0]
            postfix["best"] = f"#{top.number} {top.values[0]:.4g} {run.objectives[0].unit}"
            if attrs.has(top, TrialKey.SPEEDUP):
                postfix["speedup"] = f"{attrs.trial_get(top, TrialKey.SPEEDUP):.3f}x"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(1)

    def on_study_end(self, run):
        if self.bar is not None:
            self.bar.close()

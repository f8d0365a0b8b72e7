"""The callback interface of the trial loop (tuner.study.loop calls it; implementations live
in tuner.callbacks).

Rules for implementations:

- ``on_study_start(run)`` is called once per invocation of the loop, before the first trial
  (the study may already hold trials from earlier invocations).
- ``on_trial_end(run, trial, result)`` is called after each trial has been told to Optuna:
  ``trial`` is the frozen trial with its final state and attributes; ``result`` its record.
- ``on_validated(run, report)`` is called when the top configurations have been re-measured
  (after the last trial, not after an error or Ctrl-C).
- ``on_search_complete(run, winner)`` is called once when every trial ran and validation is
  done (not after an error or Ctrl-C): ``winner`` is the trial that will be exported (the
  validated winner, else the best ok trial), or None when no trial succeeded.
- ``on_study_end(run)`` is called once when the loop stops, also after an error or Ctrl-C.
- Callbacks never change the study's search decisions; they only report.
- With several workers on one study, ``on_validated`` and ``on_search_complete`` are called by
  the one worker that ends the study (or by ``python -m tuner.validate``), never by each.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from tuner.trial.result import TrialResult
    from tuner.study.run import StudyRun
    from tuner.study.validation import ValidationReport


class StudyCallback:
    def on_study_start(self, run: "StudyRun") -> None:
        """Called before the first trial of this invocation."""

    def on_trial_end(self, run: "StudyRun", trial: "FrozenTrial", result: "TrialResult") -> None:
        """Called after each trial."""

    def on_validated(self, run: "StudyRun", report: "ValidationReport") -> None:
        """Called after the winners were validated."""

    def on_search_complete(self, run: "StudyRun", winner: "FrozenTrial | None") -> None:
        """Called after the last trial and the validation."""

    def on_study_end(self, run: "StudyRun") -> None:
        """Called when the loop stops."""

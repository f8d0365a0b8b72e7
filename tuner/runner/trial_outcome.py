"""How a trial process keeps its outcome attributable: the phase it is in (written before each
step, read if it crashes: tuner.trial.protocol) and the failures that end it early with a
status and a text (``TrialFailed``, made a TrialResult by tuner.runner.worker.run)."""
from __future__ import annotations

import sys
import traceback
from pathlib import Path

from tuner.runner.akg_errors import AKG_ERROR, akg_failure
from tuner.trial.protocol import PHASE_FILE, STDOUT_FILE, Phase
from tuner.trial.result import Status


class TrialFailed(Exception):
    """The trial ends with ``status``; the message is the result's error text."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


def enter(phase: Phase) -> None:
    """Record that the trial is now at ``phase``."""
    Path(PHASE_FILE).write_text(phase.value)


def error_text(limit: int = 4000) -> str:
    """The end of the traceback being handled."""
    return traceback.format_exc()[-limit:]


def compile_error_text() -> str:
    """The compile's traceback and, where graph-kernel fusion's build server failed (MindSpore
    then says only "Response is empty"), the kernel it could not compile, from this process's
    standard output where the server printed it."""
    text = error_text()
    sys.stdout.flush()
    try:
        cause = akg_failure(Path(STDOUT_FILE).read_text(errors="replace"))
    except OSError:
        cause = None
    return f"{text}\n{AKG_ERROR}: {cause}" if cause else text

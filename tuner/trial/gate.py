"""The trial process's side of the gate (tuner.trial.protocol): a gated measurement idles after
compiling until the parent releases it; one timed in slots also idles between its slots."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tuner.trial.protocol import GO_FILE, PHASE_FILE, SLOTS_FILE, Phase, slot_go_file

GATE_POLL_SECONDS = 0.01


def wait_for(name: str, poll: float = GATE_POLL_SECONDS) -> None:
    """Idle until the parent creates the file ``name`` in the trial's directory."""
    while not Path(name).exists():
        time.sleep(poll)


class Gate:
    """The gate of one measuring trial, in its directory (the working directory)."""

    def __init__(self, gated: bool):
        self.gated = gated

    def release(self) -> None:
        """A gated trial, compiled, waits here (phase ``ready``) until ``GO_FILE`` exists; an
        ungated one goes on at once. Either then enters phase ``run``."""
        if self.gated:
            Path(PHASE_FILE).write_text(Phase.READY.value)
            wait_for(GO_FILE)
        Path(PHASE_FILE).write_text(Phase.RUN.value)

    def wait(self, slot: int) -> None:
        wait_for(slot_go_file(slot))

    def done(self, slot: int, durations: list[float]) -> None:
        samples = np.asarray(durations)
        line = {"slot": slot, "runs": len(durations), "median_s": float(np.median(samples)),
                "cv": float(samples.std() / samples.mean()), "ended_at": time.time()}
        with open(SLOTS_FILE, "a") as slots:
            slots.write(json.dumps(line) + "\n")

"""The protocol between the study's process (parent, tuner.runner.isolate) and a trial's process
(child, tuner.runner.worker), shared by both: what a child is asked to do, the phases it goes
through, the spans the parent records, and the files through which they talk.

Rules:

- The child writes its current ``Phase`` to ``PHASE_FILE`` before each step, so that a crash is
  attributed (a phase in ``COMPILE_PHASES``: compile_error, else runtime_error); a gated child
  stops at ``Phase.READY`` until the parent creates ``GO_FILE``.
- A child whose configuration's regions have no untuned outputs yet writes the ``references``
  request that computes them to ``REFERENCES_REQUEST_FILE`` and waits at
  ``Phase.REFERENCES``: the parent runs it, as a process of its own without the trial's
  settings (forked, as a measurement is), then writes ``REFERENCES_DONE_FILE``, empty or
  saying why they could not be computed.
- Progress of timed runs is appended to ``PROGRESS_FILE`` after timed runs 1, 2, 4, 8, ...
  (``is_progress_step``; one JSON line each: ``{"runs": n, "median_s": median of the n timed
  runs so far}``; first, with ``runs`` = ``WARMUP_STEP``, the seconds of the last warmup run),
  the record written to ``RESULT_FILE`` at the end (atomically: ``.tmp`` then rename). Not
  after every run: between two timed runs the child does no work of its own.
- While the first warmup run is under way (phase ``run``, no progress yet) the parent itself
  may hand its pruner an entry ``{"runs": WARMUP_STEP, "median_s": seconds since it saw the
  phase, UNDER_WAY: true}``: a lower bound of that run's length, so that a configuration far
  slower than the best is stopped without waiting for its whole warmup run.
- A measurement timed in slots (``MeasureSettings.slots`` = n > 1; tuner.runner.interleave)
  is gated and times slot 0 once released, then slot k once the parent creates
  ``slot_go_file(k)``; after each slot it appends one line to ``SLOTS_FILE``
  (``{"slot": k, "runs": r, "median_s": median of the slot's r timed runs, "cv": their
  coefficient of variation, "ended_at": its time.time()}``) and idles. Its
  record covers the runs of all slots.
- A child dies with its parent (Linux ``PR_SET_PDEATHSIG``): a killed worker leaves no trial
  process timing on its machine.
- Values are strings (``StrEnum``): they are what the files and JSON hold.
"""
from __future__ import annotations

from enum import StrEnum


class RequestKind(StrEnum):
    """What a trial process is asked to do (see tuner.trial.request.TrialRequest)."""

    PREPARE = "prepare"
    MEASURE = "measure"
    PROFILE = "profile"
    ONNX_EXPORT = "onnx_export"
    ONNX_MEASURE = "onnx_measure"
    OPENVINO_MEASURE = "openvino_measure"
    REFERENCES = "references"


class Phase(StrEnum):
    """Where a trial process is (the child writes it to PHASE_FILE)."""

    LOAD = "load"
    REWRITE = "rewrite"
    REFERENCES = "references"  # waiting for the parent to compute its regions' untuned outputs
    COMPILE = "compile"
    READY = "ready"     # gated: compiled, waiting for GO_FILE
    RUN = "run"


COMPILE_PHASES = (Phase.LOAD, Phase.REWRITE, Phase.REFERENCES, Phase.COMPILE, Phase.READY)


class Span(StrEnum):
    """A stretch of a trial's life as the parent saw it (TrialResult.phases)."""

    RUN = "run"          # an ungated trial, start to end
    BUILD = "build"      # a gated trial, start to compiled
    WAIT = "wait"        # at the gate
    MEASURE = "measure"  # released to ended


PHASE_FILE = "phase"
STDOUT_FILE = "stdout.txt"  # the trial process's standard output and error, in its workdir
STDERR_FILE = "stderr.txt"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.jsonl"
WARMUP_STEP = 0  # the progress entry (and pruning step) of the last warmup run
UNDER_WAY = "under_way"  # key of a progress entry the parent made of a run still going on


def is_progress_step(runs: int) -> bool:
    """Whether a child reports its progress after ``runs`` timed runs (or the warmup step)."""
    return runs == WARMUP_STEP or (runs > 0 and not runs & (runs - 1))


def slot_go_file(slot: int) -> str:
    """The file that releases slot ``slot`` of a measurement timed in slots (0: GO_FILE)."""
    return GO_FILE if slot == 0 else f"{GO_FILE}.{slot}"


GO_FILE = "go"
SLOTS_FILE = "slots.jsonl"
REFERENCES_REQUEST_FILE = "references.json"  # a TrialRequest of kind references
REFERENCES_DONE_FILE = "references_done"
PROFILE_FILE = "profile.json"  # a profile request's Profile (tuner.profiling.operator_times)
PROFILER_DIR = "profiler"      # MindSpore profiler's own output
PARENT_PID_ENV = "TUNER_PARENT_PID"  # the study process: a child dies with it (kill -9 included)

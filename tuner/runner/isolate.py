"""Launching a trial process with a timeout and reading back its record, whatever happened."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

from tuner.children import import_path, python_command
from tuner.runner import zygote
from tuner.runner.graph_dump import GRAPHS_DIR, graph_dump_environment
from tuner.trial.measurement import MIN_RUNS_FOR_INTERVAL
from tuner.trial.result import Status, TrialResult
from tuner.trial.request import TrialRequest
from tuner.trial.protocol import (COMPILE_PHASES, GO_FILE, PARENT_PID_ENV, PHASE_FILE,
                                   PROGRESS_FILE, REFERENCES_DONE_FILE, REFERENCES_REQUEST_FILE,
                                   RESULT_FILE, SLOTS_FILE, STDERR_FILE, STDOUT_FILE, UNDER_WAY,
                                   WARMUP_STEP, Phase, Span)

STDERR_TAIL_CHARS = 4000
QUIET_MINDSPORE = {"GLOG_v": "3", "GLOG_logtostderr": "1", "PYTHONWARNINGS": "ignore"}
REFERENCES_TIMEOUT = 3600.0


def _tail(path: Path, limit: int = STDERR_TAIL_CHARS) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def trial_environment(request: TrialRequest, workdir: Path) -> dict[str, str]:
    """The parent's environment, minus settings a trial owns, plus the trial's own."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MS_DEV_GRAPH_KERNEL_FLAGS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    env.update(QUIET_MINDSPORE)
    env[PARENT_PID_ENV] = str(os.getpid())  # the trial dies with the study (tuner.runner.worker)
    env["PYTHONPATH"] = import_path(request.target.model, env.get("PYTHONPATH"))
    env.update(request.config.environment())
    if request.dump_graph:
        env.update(graph_dump_environment(workdir / GRAPHS_DIR))
    return env


ProgressHandler = Callable[[dict], bool]
"""Called with each progress entry of the trial (``{"runs": n, "median_s": ...}``) as it comes;
returning True stops the trial (it is then a ``pruned`` record)."""
POLL_SECONDS = 0.2


class TrialProcess:
    """One trial's process. ``start`` launches it; a ``gated`` trial stops after compiling
    (phase ``ready``) until ``finish`` lets it time its runs, so that several trials can
    compile at once while each is timed alone. ``timeout`` applies to each part separately:
    up to ready, and from the release to the result. Nothing here raises for what the trial
    does: a crash, a hang (the whole process group is killed) or a Python error all come back
    as a TrialResult with the tail of the process's stderr; so does the removal of its
    directory while it runs (a ``runtime_error`` record saying so, the process killed). An
    eligible request's process (tuner.runner.zygote.eligible) is forked from a zygote, any
    other is a fresh Python."""

    def __init__(self, request: TrialRequest, workdir: Path, timeout: float):
        self.request, self.workdir, self.timeout = request, workdir, timeout
        self.process: subprocess.Popen | None = None
        self.started = self.ready_at = self.released = 0.0
        self.epoch = {}  # phase boundary -> time.time(), for the record's phases
        self.early: TrialResult | None = None  # the outcome when it ended before being released

    def start(self) -> "TrialProcess":
        try:
            return self._start()
        except FileNotFoundError as missing:
            self.early = self._vanished(missing)
            return self

    def _start(self) -> "TrialProcess":
        workdir = self.workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "request.json").write_text(self.request.to_json())
        for stale in (RESULT_FILE, PHASE_FILE, PROGRESS_FILE, GO_FILE, zygote.EXIT_FILE,
                      REFERENCES_REQUEST_FILE, REFERENCES_DONE_FILE, SLOTS_FILE,
                      *(path.name for path in workdir.glob(f"{GO_FILE}.*"))):
            (workdir / stale).unlink(missing_ok=True)
        shutil.rmtree(workdir / GRAPHS_DIR, ignore_errors=True)
        self.started = time.perf_counter()
        self.epoch["start"] = time.time()
        env = trial_environment(self.request, workdir)
        try:
            self.process = zygote.fork_trial(self.request, workdir, env, self.timeout)
        except zygote.ZygoteHung as hung:  # loading the network, as a fresh process would have
            (workdir / PHASE_FILE).write_text(Phase.LOAD.value)
            (workdir / STDERR_FILE).write_text(
                f"the zygote of this trial's environment: {hung}\n")
            self.early = self._timed_out(self.started)
            return self
        if self.process is not None:
            return self
        with (open(workdir / STDERR_FILE, "wb") as stderr,
              open(workdir / STDOUT_FILE, "wb") as stdout):
            self.process = subprocess.Popen(
                python_command("tuner.runner.worker", "request.json"), cwd=workdir,
                env=env, stdin=subprocess.DEVNULL,
                stdout=stdout, stderr=stderr, start_new_session=True)
        return self

    def wait_ready(self) -> bool:
        """Wait until a gated trial has compiled; False if it ended (or hung) before that, its
        outcome then being ``finish()``'s result."""
        if self.early is not None:
            return False
        try:
            return self._wait_ready()
        except FileNotFoundError as missing:
            self.early = self._vanished(missing)
            return False

    def _wait_ready(self) -> bool:
        while _read(self.workdir / PHASE_FILE) != Phase.READY:
            self._serve_references()
            if self.process.poll() is not None:
                self.early = self._ended()
                return False
            if time.perf_counter() - self.started > self.timeout:
                self.early = self._timed_out(self.started)
                return False
            time.sleep(POLL_SECONDS / 4)
        self.ready_at = time.perf_counter()
        self.epoch["ready"] = time.time()
        return True

    def finish(self, on_progress: ProgressHandler | None = None) -> TrialResult:
        """Release a gated trial (no-op otherwise) and wait for its record (with its phases)."""
        try:
            result = self._finish(on_progress)
        except FileNotFoundError as missing:
            result = self._vanished(missing)
        return dataclasses.replace(result, phases=self._phases(time.time()))

    def _phases(self, end: float) -> tuple[tuple[str, float, float], ...]:
        start, ready, released = (self.epoch.get(k) for k in ("start", "ready", "released"))
        if start is None:
            return ()
        if not self.request.gated:
            return ((Span.RUN.value, start, end),)
        if ready is None:
            return ((Span.BUILD.value, start, end),)
        waited = ((Span.WAIT.value, ready, released), (Span.MEASURE.value, released, end))
        return ((Span.BUILD.value, start, ready),) + (waited if released is not None else ())

    def _finish(self, on_progress: ProgressHandler | None) -> TrialResult:
        if self.early is not None:
            return self.early
        self.released = time.perf_counter()
        self.epoch["released"] = time.time()
        (self.workdir / GO_FILE).touch()
        clock = self.released if self.request.gated else self.started
        progress = JsonLinesReader(self.workdir / PROGRESS_FILE)
        warmup = _WarmupClock(self.workdir / PHASE_FILE)
        try:
            while self.process.poll() is None:
                self._serve_references()
                if time.perf_counter() - clock > self.timeout:
                    return self._timed_out(clock)
                entries = progress.new_entries() if on_progress else []
                if (on_progress and not entries and not progress.offset
                        and self.request.measure.warmup_runs == 1):
                    entries = warmup.under_way()
                for entry in entries:
                    if on_progress(entry):
                        self.kill()
                        return TrialResult(Status.PRUNED, error=_pruned_at(entry),
                                           wall_seconds=self._wall(),
                                           saved_seconds=_timing_left(entry, self.request.measure))
                time.sleep(POLL_SECONDS)
        except BaseException:
            self.kill()
            raise
        return self._ended()

    def _serve_references(self) -> None:
        """Once, for a trial waiting at phase ``references``: its request run in a process of
        its own (forked from the zygote of the untuned environment), then the trial let go."""
        done = self.workdir / REFERENCES_DONE_FILE
        if done.exists() or _read(self.workdir / PHASE_FILE) != Phase.REFERENCES:
            return
        request = TrialRequest.from_json((self.workdir / REFERENCES_REQUEST_FILE).read_text())
        result = run_isolated(request, self.workdir / "references", REFERENCES_TIMEOUT)
        done.with_suffix(".tmp").write_text("" if result.ok else result.reason())
        os.replace(done.with_suffix(".tmp"), done)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _kill_group(self.process)

    def time_out(self, since: float) -> None:
        """Kill a trial that has had no result for ``timeout`` s since ``since`` (a
        perf_counter time); ``finish`` then returns its ``timeout`` record."""
        self.early = self._timed_out(since)

    def _wall(self) -> float:
        """Seconds the trial worked: without the time it waited at the gate."""
        waited = self.released - self.ready_at if self.ready_at else 0.0
        return time.perf_counter() - self.started - waited

    def _timed_out(self, since: float) -> TrialResult:
        self.kill()
        return TrialResult(Status.TIMEOUT, error=f"no result after {self.timeout:g} s; killed "
                           f"during phase {_read(self.workdir / PHASE_FILE) or 'start'}",
                           wall_seconds=time.perf_counter() - since)

    def _vanished(self, missing: OSError) -> TrialResult:
        """The record of a trial whose directory was removed under it (killed if running);
        ``missing`` itself is raised while the directory is there (another file is missing)."""
        if self.workdir.is_dir():
            raise missing
        self.kill()
        return TrialResult(Status.RUNTIME_ERROR, error=f"the trial's directory {self.workdir} "
                           f"was removed while the trial ran ({missing.strerror or missing}: "
                           f"{Path(missing.filename or self.workdir).name})",
                           wall_seconds=self._wall() if self.started else 0.0)

    def _ended(self) -> TrialResult:
        if not self.workdir.is_dir():
            return self._vanished(FileNotFoundError(2, "No such file or directory",
                                                    str(self.workdir)))
        wall = self._wall()
        result_path = self.workdir / RESULT_FILE
        if result_path.exists():
            result = TrialResult.from_dict(json.loads(result_path.read_text()))
            return result.with_(wall_seconds=wall)
        phase = _read(self.workdir / PHASE_FILE) or Phase.LOAD
        status = Status.COMPILE_ERROR if phase in COMPILE_PHASES else Status.RUNTIME_ERROR
        code = self.process.returncode
        how = (f"killed by signal {signal.Signals(-code).name}" if code < 0
               else f"exited with code {code}")
        return TrialResult(status, error=f"trial process {how} during phase {phase}\n"
                           + _tail(self.workdir / STDERR_FILE), wall_seconds=wall)


def run_compiled_together(trials: Sequence[tuple[TrialRequest, Path, ProgressHandler | None]],
                          timeout: float) -> Iterator[TrialResult]:
    """Each (request, workdir, progress handler)'s record, in order. Several trials start at
    once as gated processes and compile together; once all are ready (or ended) they are
    released one at a time, each record being yielded before the next trial is released, so
    that every timed run has the machine to itself. Closing the iterator kills what is left."""
    gated = len(trials) > 1
    processes = [TrialProcess(dataclasses.replace(request, gated=gated), workdir, timeout)
                 for request, workdir, _ in trials]
    try:
        for process in processes:
            process.start()
        if gated:
            for process in processes:
                process.wait_ready()
        for process, (_, _, on_progress) in zip(processes, trials):
            yield process.finish(on_progress)
    finally:
        for process in processes:
            process.kill()


def run_isolated(request: TrialRequest, workdir: Path, timeout: float,
                 on_progress: ProgressHandler | None = None) -> TrialResult:
    """Run ``request`` in a process of its own inside ``workdir`` and return its record
    (see TrialProcess); the trial is killed after ``timeout`` s."""
    return TrialProcess(request, workdir, timeout).start().finish(on_progress)


def _pruned_at(entry: dict) -> str:
    if entry.get(UNDER_WAY):
        return f"pruned {entry['median_s']:.1f} s into its warmup run"
    if entry["runs"] == WARMUP_STEP:
        return f"pruned after its warmup run ({entry['median_s'] * 1e3:.1f} ms)"
    return f"pruned after {entry['runs']} timed runs (median {entry['median_s'] * 1e3:.1f} ms)"


def _timing_left(entry: dict, measure) -> float:
    """Timing a pruned trial would still have needed: the runs up to the protocol's minimum
    (at least 8, the fewest that bound the median's interval) at its median, within the cap."""
    median, runs = entry["median_s"], entry["runs"]
    needed = max(measure.min_runs, MIN_RUNS_FOR_INTERVAL, math.ceil(measure.min_seconds / median))
    return max(0.0, min(measure.max_seconds - runs * median, (needed - runs) * median))


class _WarmupClock:
    """How long a trial's first warmup run has been under way, as a progress entry (see
    tuner.trial.protocol): from when the parent first saw the trial's phase ``run``, so at
    most the run's true length so far."""

    def __init__(self, phase_path: Path):
        self.phase_path = phase_path
        self.run_seen: float | None = None

    def under_way(self) -> list[dict]:
        if self.run_seen is None:
            if _read(self.phase_path) != Phase.RUN:
                return []
            self.run_seen = time.perf_counter()
        return [{"runs": WARMUP_STEP, "median_s": time.perf_counter() - self.run_seen,
                 UNDER_WAY: True}]


class JsonLinesReader:
    """Reads the JSON lines a trial appends to one of its files (progress, slots), each once
    and only when complete."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0

    def new_entries(self) -> list[dict]:
        try:
            with open(self.path) as handle:
                handle.seek(self.offset)
                text = handle.read()
        except OSError:
            return []
        complete = text[: text.rfind("\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _kill_group(process: subprocess.Popen | zygote.ForkedProcess) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()

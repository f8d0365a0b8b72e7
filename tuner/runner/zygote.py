"""Trial processes forked from a process that has already loaded MindSpore and the network.

A fresh trial process spends seconds before it does anything of its own: importing MindSpore
and mindcv, creating the network and loading the study's weights into it (about 5 s of the 8 s
a ResNet50 trial takes to build). A zygote does that once per study (``python -m
tuner.runner.zygote``, started by the study's process on the first eligible request) and forks
one child per trial; the child is the trial process of tuner.runner.worker, given the
zygote's network instead of creating its own.

Rules:

- Eligible: a ``measure`` request whose configuration sets no environment variables (OpenMP
  reads its variables when MindSpore loads it, in the zygote: a configuration that sets them
  gets a fresh process), without graph dumps, on a study whose weights are saved. Everything
  else, or any zygote that could not start, gets a fresh process (tuner.runner.isolate).
- A zygote serves one target (model, device, assets); asking for another replaces it. It dies
  with the study's process, and each child with its zygote.
- A child is what a fresh trial process is to the study: its own session (so that its process
  group can be killed), the same environment, its standard streams in the trial's directory.
  The zygote reaps it and writes its exit status (``Popen.returncode``'s convention) to
  ``EXIT_FILE`` in that directory.
- The zygote talks JSON lines: it reads ``{"workdir": ...}`` on stdin, answers ``{"pid": n}``
  (or ``{"error": ...}``); its first line is ``{"ready": true}`` or ``{"error": ...}``.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tuner.runner.protocol import RequestKind
from tuner.runner.request import WEIGHTS_FILE, TrialRequest

EXIT_FILE = "exit_status"
START_TIMEOUT_SECONDS = 300.0
REAP_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ZygoteKey:
    """What a zygote has loaded: requests with the same key can fork from it."""

    model: str
    device: str
    assets_dir: str
    kernel_space: str

    @classmethod
    def of(cls, request: TrialRequest) -> "ZygoteKey":
        return cls(request.target.model, request.target.device,
                   str(Path(request.assets_dir).resolve()), request.kernel_space)


def eligible(request: TrialRequest) -> bool:
    return (request.kind is RequestKind.MEASURE and not request.config.environment()
            and not request.dump_graph and request.asset(WEIGHTS_FILE).exists())


class ForkedProcess:
    """A child of a zygote, with the part of ``subprocess.Popen`` the study uses."""

    def __init__(self, pid: int, workdir: Path):
        self.pid, self.workdir = pid, workdir
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int((self.workdir / EXIT_FILE).read_text())
            except (OSError, ValueError):
                if not Path(f"/proc/{self.pid}").exists():  # its zygote died before reaping it
                    self.returncode = -9
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(REAP_POLL_SECONDS)
        return self.returncode


class Zygote:
    """The study side of one zygote process."""

    def __init__(self, key: ZygoteKey, env: dict[str, str]):
        self.key = key
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tuner.runner.zygote", json.dumps(key.__dict__)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, start_new_session=True)
        reply = self._reply(START_TIMEOUT_SECONDS)
        self.ready = bool(reply.get("ready"))
        if not self.ready:
            self.close()

    def fork(self, workdir: Path) -> ForkedProcess | None:
        """A child running the trial in ``workdir`` (its request.json written), or None when
        this zygote can no longer fork (the caller then starts a fresh process)."""
        if not self.ready or self.process.poll() is not None:
            return None
        try:
            self.process.stdin.write(json.dumps({"workdir": str(workdir.resolve())}) + "\n")
        except OSError:
            self.ready = False
            return None
        pid = self._reply(START_TIMEOUT_SECONDS).get("pid")
        return ForkedProcess(int(pid), workdir) if pid else None

    def _reply(self, timeout: float) -> dict:
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if readable else ""
        try:
            return json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            return {}

    def close(self) -> None:
        self.ready = False
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_current: Zygote | None = None


def fork_trial(request: TrialRequest, workdir: Path, env: dict[str, str]) -> ForkedProcess | None:
    """The trial process of an eligible ``request`` forked from this target's zygote (started
    with ``env`` when there is none), or None: the caller starts a fresh process."""
    global _current
    if not eligible(request):
        return None
    key = ZygoteKey.of(request)
    if _current is None or _current.key != key:
        if _current is not None:
            _current.close()
        _current = Zygote(key, env)
    return _current.fork(workdir)


@atexit.register
def _close_current() -> None:
    if _current is not None:
        _current.close()


def _serve(key: ZygoteKey) -> None:
    """The zygote: load, say ready, then fork a trial per request line until stdin closes."""
    from tuner.runner import worker

    worker._die_with_parent()
    try:
        worker.preload(key.model, key.device, Path(key.assets_dir) / WEIGHTS_FILE)
    except Exception as error:  # a network that cannot load here fails in its trials, fresh
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    children: dict[int, Path] = {}
    stdin = sys.stdin
    while True:
        readable, _, _ = select.select([stdin], [], [], REAP_POLL_SECONDS)
        _reap(children)
        if not readable:
            continue
        line = stdin.readline()
        if not line:
            break
        workdir = Path(json.loads(line)["workdir"])
        pid = os.fork()
        if pid == 0:
            _child(workdir)
        children[pid] = workdir
        print(json.dumps({"pid": pid}), flush=True)
    while children:
        _reap(children)
        time.sleep(REAP_POLL_SECONDS)


def _reap(children: dict[int, Path]) -> None:
    for pid, workdir in list(children.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            (workdir / (EXIT_FILE + ".tmp")).write_text(str(code))
            os.replace(workdir / (EXIT_FILE + ".tmp"), workdir / EXIT_FILE)
            del children[pid]


def _child(workdir: Path) -> None:
    """In the forked child: become the trial process of ``workdir``; never returns."""
    code = 1
    try:
        os.setsid()
        os.chdir(workdir)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, name in ((1, "stdout.txt"), (2, "stderr.txt")):
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
        from tuner.runner import worker
        from tuner.runner.protocol import PARENT_PID_ENV

        os.environ[PARENT_PID_ENV] = str(os.getppid())  # it dies with its zygote
        code = worker.main(["request.json"])
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    _serve(ZygoteKey(**json.loads(sys.argv[1])))
    os._exit(0)

"""Trial processes forked from a process that has already loaded MindSpore and the network.

A fresh trial process spends seconds before it does anything of its own: importing MindSpore
and mindcv, creating the network and loading the study's weights into it (about 5 s of the 8 s
a ResNet50 trial takes to build). A zygote does that once per study (``python -m
tuner.runner.zygote``, started by the study's process on the first eligible request) and forks
one child per trial; the child is the trial process of tuner.runner.worker, given the
zygote's network instead of creating its own.

Rules:

- Eligible: a ``measure``, ``profile`` or ``references`` request without graph dumps, on a
  study whose weights are saved.
  Everything else, or any zygote that could not start, gets a fresh process
  (tuner.runner.isolate).
- A zygote serves one target (model, device, assets) and one environment: OpenMP reads its
  variables when MindSpore loads it, in the zygote, so configurations that set different
  ``OMP_*`` values fork from different zygotes (``omp_set_num_threads`` in the child was
  measured not to be enough: ResNet50 asked for 1 thread still kept both cores busy). The
  ``CHILD_VARIABLES`` (graph-kernel flags, read at compile time) are set by the child itself
  (tuner.tuned_network.apply_process_settings). At most ``MAX_ZYGOTES`` live at once, the least
  recently used closed first, fewer while the machine has less than ``MEMORY_RESERVE_MB``
  available (a zygote holds MindSpore and a network: 0.7 GB for ResNet50). A zygote dies with
  the study's process, and each child with its zygote.
- A zygote forks only if loading the network started no thread: a fork copies only the
  calling thread, and a lock another thread held stays held in the child. A network whose
  construction runs MindSpore operators starts the runtime's threads (mindcv's ConvNeXt:
  ``ActorThread_0``, ``KernelThread_0``; its forked trials hung in their first run); such a
  zygote says so instead of ready, and its trials get fresh processes. (The thread that
  ``import mindspore`` starts, OpenBLAS's pool, is there before and handles forks itself.)
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

from tuner.children import python_command
from tuner.trial.protocol import STDERR_FILE, STDOUT_FILE, RequestKind
from tuner.trial.request import WEIGHTS_FILE, TrialRequest

EXIT_FILE = "exit_status"
CHILD_VARIABLES = ("MS_DEV_GRAPH_KERNEL_FLAGS",)
FORKED_KINDS = (RequestKind.MEASURE, RequestKind.PROFILE, RequestKind.REFERENCES)  # load the net
MAX_ZYGOTES = 12  # the CPU space's OMP_NUM_THREADS x OMP_WAIT_POLICY values
MEMORY_RESERVE_MB = 6144
START_TIMEOUT_SECONDS = 300.0
REAP_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ZygoteKey:
    """What a zygote has loaded: requests with the same key can fork from it."""

    model: str
    device: str
    assets_dir: str
    kernel_space: str
    environment: tuple[tuple[str, str], ...] = ()  # what must be set before MindSpore loads

    @classmethod
    def of(cls, request: TrialRequest) -> "ZygoteKey":
        environment = {k: v for k, v in request.config.environment().items()
                       if k not in CHILD_VARIABLES}
        return cls(request.target.model, request.target.device,
                   str(Path(request.assets_dir).resolve()), request.kernel_space,
                   tuple(sorted(environment.items())))

    def to_json(self) -> str:
        return json.dumps({**self.__dict__, "environment": [list(e) for e in self.environment]})

    @classmethod
    def from_json(cls, text: str) -> "ZygoteKey":
        data = json.loads(text)
        return cls(**{**data, "environment": tuple(tuple(e) for e in data["environment"])})


def eligible(request: TrialRequest) -> bool:
    return (request.kind in FORKED_KINDS and not request.dump_graph
            and request.asset(WEIGHTS_FILE).exists())


class ForkedProcess:
    """A child of a zygote, with the part of ``subprocess.Popen`` the study uses."""

    def __init__(self, pid: int, workdir: Path, zygote: subprocess.Popen):
        self.pid, self.workdir, self.zygote = pid, workdir, zygote
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.returncode = int((self.workdir / EXIT_FILE).read_text())
            except (OSError, ValueError):
                gone = not Path(f"/proc/{self.pid}").exists()
                if gone and self.zygote.poll() is not None:  # died with its zygote, unreaped
                    self.returncode = -9
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(REAP_POLL_SECONDS)
        return self.returncode


class ZygoteHung(Exception):
    """The zygote did not finish loading within the trial's timeout (nor would a fresh
    trial process, which loads the same way): the trial timed out in its load phase."""


class Zygote:
    """The study side of one zygote process: ``ready`` once it has loaded; one that failed
    to load, hung or died forks nothing (its trials get fresh processes)."""

    def __init__(self, key: ZygoteKey, env: dict[str, str], timeout: float = START_TIMEOUT_SECONDS):
        self.key = key
        self.process = subprocess.Popen(
            python_command("tuner.runner.zygote", key.to_json()),
            env={k: v for k, v in env.items() if k not in CHILD_VARIABLES},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, bufsize=1, start_new_session=True)
        reply = self._reply(timeout)
        self.ready = bool(reply and reply.get("ready"))
        self.hung = reply is None
        self.refusal = (reply or {}).get("error", "")  # why it cannot fork, when it said so
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
        pid = (self._reply(START_TIMEOUT_SECONDS) or {}).get("pid")
        return ForkedProcess(int(pid), workdir, self.process) if pid else None

    def _reply(self, timeout: float) -> dict | None:
        """The zygote's next line; None when it said nothing for ``timeout`` s, {} when it
        ended (or wrote something else)."""
        readable, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not readable:
            return None
        line = self.process.stdout.readline()
        try:
            return json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            return {}

    def close(self) -> None:
        self.ready = False
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


_live: dict[ZygoteKey, Zygote] = {}  # least recently used first


def fork_trial(request: TrialRequest, workdir: Path, env: dict[str, str],
               timeout: float) -> ForkedProcess | None:
    """The trial process of an eligible ``request`` forked from its zygote (started with
    ``env``, the trial's environment, when there is none, given ``timeout`` s to load, at most
    ``START_TIMEOUT_SECONDS``), or None: the caller starts a fresh process. Raises ZygoteHung
    when the zygote this trial started did not load in time."""
    if not eligible(request):
        return None
    key = ZygoteKey.of(request)
    zygote = _live.pop(key, None)
    started = zygote is None
    load_timeout = min(timeout, START_TIMEOUT_SECONDS)
    if started:
        while _live and (len(_live) >= MAX_ZYGOTES or _available_mb() < MEMORY_RESERVE_MB):
            _live.pop(next(iter(_live))).close()
        zygote = Zygote(key, env, load_timeout)
    _live[key] = zygote  # a zygote that failed stays, so that its key is not tried again
    if started and zygote.hung:
        raise ZygoteHung(f"no network loaded after {load_timeout:g} s")
    return zygote.fork(workdir)


def _available_mb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


@atexit.register
def close_all() -> None:
    while _live:
        _live.popitem()[1].close()


def _serve(key: ZygoteKey) -> None:
    """The zygote: load, say ready, then fork a trial per request line until stdin closes."""
    from tuner.runner import trial_network, worker

    worker._die_with_parent()
    import mindspore  # noqa: F401  (its threads from import on, OpenBLAS's pool, survive forks)

    imported = _threads()
    try:
        trial_network.preload(key.model, key.device, Path(key.assets_dir) / WEIGHTS_FILE)
    except Exception as error:  # a network that cannot load here fails in its trials, fresh
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return
    started = sorted({name for tid, name in _threads().items() if tid not in imported})
    if started:
        print(json.dumps({"error": f"loading {key.model} started threads "
                          f"({', '.join(started)}): not safe to fork"}), flush=True)
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


def _threads() -> dict[int, str]:
    """This process's threads (Linux): id -> name."""
    return {int(task.name): (task / "comm").read_text().strip()
            for task in Path("/proc/self/task").iterdir()}


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
        for fd, name in ((1, STDOUT_FILE), (2, STDERR_FILE)):
            handle = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(handle, fd)
        from tuner.runner import worker
        from tuner.trial.protocol import PARENT_PID_ENV

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
    _serve(ZygoteKey.from_json(sys.argv[1]))
    os._exit(0)

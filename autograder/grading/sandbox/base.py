"""The base of every sandbox level, and the ``none`` level itself: a subprocess with limits.

A :class:`Sandbox` starts one worker per submission (``python -m autograder.worker``, see
:mod:`autograder.worker`) and hands it to a :class:`~autograder.grading.channel.Worker`, which
talks to it. Every level applies the same limits: a wall-clock deadline per request and per
submission (the whole process group is killed), resource limits (address space, CPU seconds,
processes, file size, open files; the worker sets them on itself before importing the
submission), a capped stdout/stderr log and a scrubbed environment. Levels differ in the
command line that starts the worker (:meth:`Sandbox.command`), what they tell the report
(:attr:`Sandbox.notes`), whether they work here (:meth:`Sandbox.probe`) and what they clean
up after it (:meth:`Sandbox.reap`).

The worker's import path holds only the worker zone of this package (``autograder/__init__.py``
and ``autograder/worker/``) and NumPy: not the rest of the grader, not the repository around
it (which holds the reference solution).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.paths import PACKAGE

from ..channel import Limits, Worker, become_subreaper

__all__ = [
    "Sandbox",
    "WORKER_FILES",
    "as_uid",
    "fresh_uid",
    "package_folder",
    "kill_uid",
    "processes_of",
    "probe_run",
    "readable_by_others",
    "worker_lib",
    "worker_python",
]

# What of the grader a worker may import: the package's __init__ and the worker zone.
WORKER_FILES = ("__init__.py", "worker")


def package_folder(name: str) -> Path | None:
    """The folder of an installed package (``.../site-packages/numpy``), or None."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).resolve().parent


def worker_libraries(device: str = "cpu") -> list[str]:
    """The folders of the third-party packages the worker imports: NumPy's (and CuPy's on
    cuda). The worker runs without the ``site`` module (``python -S``): no ``.pth`` file of
    this environment runs in it, so an editable install of the grader cannot make the rest of
    ``autograder`` importable there; these folders are added to its path instead."""
    folders: list[str] = []
    for name in ["numpy"] + (["cupy"] if device == "cuda" else []):
        package = package_folder(name)
        if package is not None and str(package.parent) not in folders:
            folders.append(str(package.parent))
    return folders


def _user_tasks() -> int:
    """How many tasks (processes and threads) this user runs: what RLIMIT_NPROC counts."""
    count = 0
    for pid in processes_of(os.getuid()):
        try:
            count += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:  # it exited meanwhile
            pass
    return count


# -- sandboxes ------------------------------------------------------------------------------------


class Sandbox:
    """Starts workers. This base class is the ``none`` level: a subprocess with resource limits
    and nothing else. Stronger levels override :meth:`command` (and :attr:`notes`)."""

    level = "none"
    wraps_worker = False  # the process started is a wrapper around the worker (bwrap)
    shares_submission = False  # the worker, another user, reads the submission where it is
    _probed: tuple[bool, str] | None = None

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    @classmethod
    def available(cls) -> bool:
        return cls.probe()[0]

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        """(works here, why not), tried once per process and class."""
        if cls.__dict__.get("_probed") is None:
            cls._probed = cls._try()
        assert cls._probed is not None
        return cls._probed

    @classmethod
    def _try(cls) -> tuple[bool, str]:
        return True, ""

    def prepare(self, workdir: Path, submission: Path) -> Path:
        """Adjust the worker's private folder before it starts (levels that need to); return
        where the worker finds the submission."""
        return submission

    def reap(self) -> None:
        """Kill what the worker may have left outside its process group (levels that can)."""

    @property
    def notes(self) -> list[str]:
        """Lines for the report about how the submission was isolated."""
        return ["sandbox none: resource limits only; the submission can read the grader's files"]

    def rlimits(self, device: str = "cpu") -> dict[str, list[int]]:
        """The worker's resource limits, as ``python -m autograder.worker --rlimits`` takes
        them (-1: unlimited)."""
        lim = self.limits
        out = {"core": [0, 0]}
        if lim.address_space is not None and device != "cuda":
            out["as"] = [lim.address_space, lim.address_space]
        if lim.cpu_seconds is not None:  # SIGXCPU at the soft limit, SIGKILL at the hard one
            out["cpu"] = [lim.cpu_seconds, lim.cpu_seconds + 2]
        if lim.processes is not None and os.getuid() != 0 and sys.platform == "linux":
            n = _user_tasks() + lim.processes
            out["nproc"] = [n, n]
        if lim.file_size is not None:
            out["fsize"] = [lim.file_size, lim.file_size]
        if lim.open_files is not None:
            out["nofile"] = [lim.open_files, lim.open_files]
        return out

    def command(self, submission_dir: Path, *, workdir: Path, device: str = "cpu") -> list[str]:
        """The command line that starts the worker for ``submission_dir``."""
        return [
            sys.executable, "-S", "-s", "-m", "autograder.worker",
            "--submission", str(submission_dir),
            "--device", device,
            "--rlimits", json.dumps(self.rlimits(device)),
            "--max-message-bytes", str(self.limits.max_message_bytes),
        ]  # fmt: skip

    def environment(self, workdir: Path, device: str = "cpu") -> dict[str, str]:
        """A scrubbed environment: nothing of the grader's (no secrets) except what is listed."""
        home = workdir / "home"
        env = {
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "PYTHONPATH": os.pathsep.join([str(workdir / "lib"), *worker_libraries(device)]),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONNOUSERSITE": "1",
            "PYTHONHASHSEED": "0",
            "MPLBACKEND": "Agg",
        }
        for var in ("OMP", "OPENBLAS", "MKL", "NUMEXPR", "VECLIB_MAXIMUM", "BLIS"):
            name = "VECLIB_MAXIMUM_THREADS" if var == "VECLIB_MAXIMUM" else f"{var}_NUM_THREADS"
            env[name] = "1"
        if device == "cuda":
            for name in ("CUDA_VISIBLE_DEVICES", "CUDA_PATH", "CUDA_HOME", "LD_LIBRARY_PATH"):
                if name in os.environ:
                    env[name] = os.environ[name]
        return env

    def start(
        self,
        submission_dir: str | os.PathLike[str],
        *,
        device: str = "cpu",
        deadline: float | None = None,
    ) -> Worker:
        """Start a worker on ``submission_dir`` (the folder holding ``tapegrad/``) and wait for
        its hello. ``deadline`` (``time.monotonic()`` based) bounds everything this worker does;
        by default ``limits.total_timeout`` from now. Check ``worker.hello["ok"]``: a
        submission that fails to import still gets a worker, whose hello says why."""
        submission = Path(submission_dir).resolve()
        if not submission.is_dir():
            raise FileNotFoundError(f"no submission folder at {submission}")
        if self.shares_submission:
            readable_by_others(submission)
        become_subreaper()
        workdir = Path(tempfile.mkdtemp(prefix="tapegrad-worker-"))
        (workdir / "home").mkdir()
        worker_lib(workdir / "lib")
        submission = self.prepare(workdir, submission)
        now = time.monotonic()
        deadline = now + self.limits.total_timeout if deadline is None else deadline
        try:
            proc = subprocess.Popen(
                self.command(submission, workdir=workdir, device=device),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=workdir / "home", env=self.environment(workdir, device),
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        worker = Worker(
            proc, workdir, self.limits, deadline, wrapped=self.wraps_worker, reap=self.reap
        )
        worker._read_hello(self.limits.start_timeout)
        return worker


def worker_lib(lib: Path) -> Path:
    """``lib/autograder/{__init__.py, worker}`` as links: a folder whose only importable part
    of the grader is the worker zone (not the rest of the grader, nor the repository around
    it, which holds the reference solution)."""
    (lib / "autograder").mkdir(parents=True)
    for name in WORKER_FILES:
        (lib / "autograder" / name).symlink_to(PACKAGE / name)
    return lib


def probe_run(command: list[str], what: str, **options: object) -> tuple[bool, str]:
    """Run a level's probe command: (it succeeded, why not), with the end of what it said."""
    try:
        done = subprocess.run(command, capture_output=True, timeout=30, **options)  # type: ignore[call-overload]
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{what} could not start: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return (
            False,
            f"{what} failed here: {lines[-1] if lines else f'exit status {done.returncode}'}",
        )
    return True, ""


def worker_python() -> str:
    """The interpreter itself (a venv's ``bin/python`` is a link into it)."""
    return str(Path(sys.executable).resolve())


def fresh_uid() -> int:
    """A uid of its own for one worker, far above any real user's: RLIMIT_NPROC then counts
    only that worker's processes, and :func:`kill_uid` finds every one of them."""
    return 1_000_000 + secrets.randbelow(1_000_000)


def as_uid(uid: int) -> list[str]:
    """The command prefix that runs what follows as ``uid`` (group too), with no supplementary
    groups, no capabilities and no way to gain privileges again."""
    return [
        shutil.which("setpriv") or "setpriv",
        "--reuid", str(uid), "--regid", str(uid), "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
    ]  # fmt: skip


def processes_of(uid: int) -> list[int]:
    """The pids of every process running as ``uid``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    found.append(int(entry.name))
            except OSError:  # it exited meanwhile
                pass
    return found


def kill_uid(uid: int, seconds: float = 5.0) -> None:
    """Kill every process of ``uid``, detached or not: ``kill(-1, SIGKILL)`` run as that uid
    reaches all of them at once (a fork in flight cannot escape it), repeated until none is
    left; then reap those that were reparented to this process (a subreaper)."""
    end = time.monotonic() + seconds
    while _running(uid) and time.monotonic() < end:
        subprocess.run(
            [*as_uid(uid), worker_python(), "-S", "-c", "import os; os.kill(-1, 9)"],
            capture_output=True,
            timeout=max(end - time.monotonic(), 0.1),
            check=False,
        )
    for pid in processes_of(uid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours to reap: its parent will
            pass


def _running(uid: int) -> list[int]:
    """The processes of ``uid`` that are not already dead (zombies wait to be reaped)."""
    alive = []
    for pid in processes_of(uid):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def readable_by_others(root: Path) -> None:
    """Let the worker's unprivileged uid read the submission's private copy (its parent folder
    stays private to the grader; inside the sandbox the copy is mounted read-only)."""
    if os.getuid() != 0:
        return
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            os.chmod(path, mode | 0o555)
        elif stat.S_ISREG(mode):
            os.chmod(path, mode | 0o444)

"""Sandbox levels: how a worker process is started for one submission.

A :class:`Sandbox` starts one worker per submission (``python -m autograder.worker``, see
:mod:`autograder.worker`) and hands it to a :class:`~autograder.grading.channel.Worker`, which
talks to it. The worker sees the submission's private copy and the worker zone of this package
(``autograder/__init__.py`` and ``autograder/worker/``), nothing else of the grader: not the
repository around it (which holds the reference solution), not the judging code.

Every level applies the same limits: a wall-clock deadline per request and per submission (the
whole process group is killed), resource limits (address space, CPU seconds, processes, file
size, open files; the worker sets them on itself before importing the submission), a capped
stdout/stderr log and a scrubbed environment. Levels differ only in the command line that starts
the worker (:meth:`Sandbox.command`). Only ``none``, a plain subprocess with those limits, is
built so far; levels that isolate the file system, the network and the process tree
(``bwrap``, ``container``) will be subclasses that override :meth:`Sandbox.command`, and are
neither offered nor accepted until they exist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autograder.paths import PACKAGE

from .channel import Limits, Worker, become_subreaper

__all__ = ["LEVELS", "Sandbox", "make_sandbox"]

# What of the grader a worker may import: the package's __init__ and the worker zone.
WORKER_FILES = ("__init__.py", "worker")


def worker_libraries(device: str = "cpu") -> list[str]:
    """The folders of the third-party packages the worker imports: NumPy's (and CuPy's on
    cuda). The worker runs without the ``site`` module (``python -S``): no ``.pth`` file of
    this environment runs in it, so an editable install of the grader cannot make the rest of
    ``autograder`` importable there; these folders are added to its path instead."""
    names = ["numpy"] + (["cupy"] if device == "cuda" else [])
    folders: list[str] = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin is not None:
            folder = str(Path(spec.origin).resolve().parents[1])
            if folder not in folders:
                folders.append(folder)
    return folders


def _user_tasks() -> int:
    """How many tasks (processes and threads) this user runs: what RLIMIT_NPROC counts."""
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:  # it exited meanwhile
                pass
    return count


# -- sandboxes ------------------------------------------------------------------------------------


class Sandbox:
    """Starts workers. This base class is the ``none`` level: a subprocess with resource limits
    and nothing else. Stronger levels override :meth:`command` (and :attr:`notes`)."""

    level = "none"

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()

    @classmethod
    def available(cls) -> bool:
        return True

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
        become_subreaper()
        workdir = Path(tempfile.mkdtemp(prefix="tapegrad-worker-"))
        (workdir / "home").mkdir()
        (workdir / "lib").mkdir()
        # Only the worker zone is importable: not the rest of the grader, nor the repository
        # around it, which holds the reference solution.
        (workdir / "lib" / "autograder").mkdir()
        for name in WORKER_FILES:
            (workdir / "lib" / "autograder" / name).symlink_to(PACKAGE / name)
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
        worker = Worker(proc, workdir, self.limits, deadline)
        worker._read_hello(self.limits.start_timeout)
        return worker


LEVELS: dict[str, type[Sandbox]] = {"none": Sandbox}
_STRONGEST_FIRST = ["bwrap", "container", "none"]
_NOT_BUILT = ("bwrap", "container", "docker")  # the design's other levels


def make_sandbox(level: str | None, limits: Limits | None = None) -> Sandbox:
    """The sandbox for ``--sandbox LEVEL``; None picks the strongest level available here."""
    if level is None:
        for name in _STRONGEST_FIRST:
            if name in LEVELS and LEVELS[name].available():
                return LEVELS[name](limits)
    if level in _NOT_BUILT and level not in LEVELS:
        raise ValueError(
            f"sandbox level {level!r} is not built yet: the only level today is 'none' (a "
            "resource-limited subprocess, named as such in every report)"
        )
    if level not in LEVELS:
        raise ValueError(f"unknown sandbox level {level!r}; valid levels: {', '.join(LEVELS)}")
    cls = LEVELS[level]
    if not cls.available():
        raise ValueError(f"sandbox level {level!r} is not available on this machine")
    return cls(limits)

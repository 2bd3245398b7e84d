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
import secrets
import shutil
import stat
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
    wraps_worker = False  # the process started is a wrapper around the worker (bwrap)

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
        worker = Worker(proc, workdir, self.limits, deadline, wrapped=self.wraps_worker)
        worker._read_hello(self.limits.start_timeout)
        return worker


class BwrapSandbox(Sandbox):
    """The ``bwrap`` level: the worker in its own PID, IPC, UTS, network and mount namespaces
    (bubblewrap), seeing a read-only view of exactly what it needs: the Python runtime and the
    system libraries, NumPy, the worker zone and the submission's private copy, plus a private
    size-capped ``/tmp``. Nothing of the grader's files, the kit, the assignments, the secret or
    other submissions exists in there; the network is an empty loopback.

    Who the worker is: run by root, bwrap sets up the namespaces and the worker drops to a fresh
    unprivileged uid of its own (``setpriv``: no capabilities, no new privileges), so that
    RLIMIT_NPROC, which never binds root, caps its processes. Run by another user, bwrap adds a
    user namespace and the worker keeps that user's uid outside it. ``--die-with-parent`` and
    the PID namespace make every process the submission started (detached or not) die with the
    worker: killing bwrap ends the namespace.
    """

    level = "bwrap"
    wraps_worker = True
    SUBMISSION = "/submission"
    GRADER = "/grader"  # holds autograder/{__init__.py,worker/} and site/ (NumPy)
    _probe: tuple[bool, str] | None = None

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.uid = 1_000_000 + secrets.randbelow(1_000_000) if os.getuid() == 0 else os.getuid()

    @classmethod
    def available(cls) -> bool:
        return cls.probe()[0]

    @classmethod
    def probe(cls) -> tuple[bool, str]:
        """(works here, why not): bwrap is installed and starts a Python that imports NumPy in
        the namespaces and mounts this level uses (tried once per process)."""
        if cls._probe is None:
            cls._probe = cls._try()
        return cls._probe

    @classmethod
    def _try(cls) -> tuple[bool, str]:
        if sys.platform != "linux" or shutil.which("bwrap") is None:
            return False, "bubblewrap (bwrap) is not installed"
        if os.getuid() == 0 and shutil.which("setpriv") is None:
            return False, "setpriv (util-linux) is not installed"
        sandbox = cls()
        with tempfile.TemporaryDirectory(prefix="tapegrad-probe-") as tmp:
            submission = Path(tmp) / "submission"
            submission.mkdir(mode=0o755)
            os.chmod(submission, 0o755)
            command = [
                *sandbox.bwrap_command(submission, "cpu"),
                _python(), "-S", "-s", "-c", "import numpy",
            ]  # fmt: skip
            try:
                done = subprocess.run(
                    command, capture_output=True, timeout=30, env=sandbox.environment(Path(tmp))
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return False, f"bwrap could not start: {exc}"
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()
            return False, f"bwrap failed here: {why[-1] if why else done.returncode}"
        return True, ""

    @property
    def notes(self) -> list[str]:
        who = f"unprivileged uid {self.uid}" if os.getuid() == 0 else "a user namespace"
        return [
            "sandbox bwrap: own PID, IPC, UTS, network and mount namespaces (no network); a "
            "read-only view of the Python runtime, NumPy, the grader's worker code and the "
            f"submission; a private {self.limits.tmp_size // 2**20} MiB /tmp; as {who}, with "
            "no capabilities"
        ]

    def rlimits(self, device: str = "cpu") -> dict[str, list[int]]:
        out = super().rlimits(device)
        if os.getuid() == 0 and self.limits.processes is not None:
            out["nproc"] = [self.limits.processes] * 2  # a fresh uid: no task counts yet
        return out

    def bwrap_command(self, submission: Path, device: str) -> list[str]:
        """bwrap and its options, up to the command it runs (``--`` included)."""
        args = [
            shutil.which("bwrap") or "bwrap",
            "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
            "--unshare-cgroup-try", "--new-session", "--die-with-parent",
            "--hostname", "sandbox",
        ]  # fmt: skip
        if os.getuid() != 0:
            args.append("--unshare-user")
        else:
            # only what setpriv needs to become the worker's uid, which then drops them too
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        args += _system_mounts()
        runtime = Path(sys.base_prefix).resolve()
        if not _under(runtime, "/usr"):
            for parent in reversed(runtime.parents[:-1]):  # traversable, whatever they are here
                args += ["--perms", "0755", "--dir", str(parent)]
            args += ["--ro-bind", str(runtime), str(runtime)]
        site = f"{self.GRADER}/site"
        for made in (self.GRADER, f"{self.GRADER}/autograder", site):
            args += ["--perms", "0755", "--dir", made]
        for name in WORKER_FILES:
            args += ["--ro-bind", str(PACKAGE / name), f"{self.GRADER}/autograder/{name}"]
        for folder in _package_folders(device):
            args += ["--ro-bind", str(folder), f"{site}/{folder.name}"]
        args += ["--ro-bind", str(submission), self.SUBMISSION]
        args += ["--proc", "/proc", "--dev", "/dev"]
        args += ["--size", str(self.limits.tmp_size), "--perms", "1777", "--tmpfs", "/tmp"]
        args += ["--chdir", "/tmp", "--"]
        if os.getuid() == 0:
            args += [
                shutil.which("setpriv") or "setpriv",
                "--reuid", str(self.uid), "--regid", str(self.uid), "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
            ]  # fmt: skip
        return args

    def command(self, submission_dir: Path, *, workdir: Path, device: str = "cpu") -> list[str]:
        return [
            *self.bwrap_command(submission_dir, device),
            _python(), "-S", "-s", "-m", "autograder.worker",
            "--submission", self.SUBMISSION,
            "--device", device,
            "--rlimits", json.dumps(self.rlimits(device)),
            "--max-message-bytes", str(self.limits.max_message_bytes),
        ]  # fmt: skip

    def environment(self, workdir: Path, device: str = "cpu") -> dict[str, str]:
        env = super().environment(workdir, device)
        env.update(
            PATH="/usr/bin:/bin",
            HOME="/tmp",
            TMPDIR="/tmp",
            PYTHONPATH=f"{self.GRADER}:{self.GRADER}/site",
        )
        return env

    def start(
        self,
        submission_dir: str | os.PathLike[str],
        *,
        device: str = "cpu",
        deadline: float | None = None,
    ) -> Worker:
        _readable(Path(submission_dir))
        return super().start(submission_dir, device=device, deadline=deadline)


def _python() -> str:
    """The interpreter itself (a venv's ``bin/python`` is a link into it)."""
    return str(Path(sys.executable).resolve())


def _under(path: Path, root: str) -> bool:
    return path == Path(root) or Path(root) in path.parents


def _system_mounts() -> list[str]:
    """/usr read-only, the top-level library and binary folders as they are here (links on a
    merged-/usr system), and the dynamic loader's cache."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    if os.path.isfile("/etc/ld.so.cache"):
        args += ["--perms", "0755", "--dir", "/etc"]
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    return args


def _package_folders(device: str) -> list[Path]:
    """NumPy's package folder and its bundled libraries (and CuPy's site folder on cuda)."""
    folders: list[Path] = []
    for name in ["numpy"] + (["cupy"] if device == "cuda" else []):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        package = Path(spec.origin).resolve().parent
        folders.append(package)
        libs = package.with_name(f"{name}.libs")  # auditwheel's bundled shared libraries
        if libs.is_dir():
            folders.append(libs)
    return folders


def _readable(root: Path) -> None:
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


LEVELS: dict[str, type[Sandbox]] = {"none": Sandbox, "bwrap": BwrapSandbox}
_STRONGEST_FIRST = ["bwrap", "container", "none"]
_NOT_BUILT = ("container", "docker")  # the design's other level


def make_sandbox(level: str | None, limits: Limits | None = None) -> Sandbox:
    """The sandbox for ``--sandbox LEVEL``; None picks the strongest level available here."""
    if level is None:
        for name in _STRONGEST_FIRST:
            if name in LEVELS and LEVELS[name].available():
                return LEVELS[name](limits)
    if level in _NOT_BUILT and level not in LEVELS:
        raise ValueError(
            f"sandbox level {level!r} is not built yet: the levels today are {', '.join(LEVELS)}"
        )
    if level not in LEVELS:
        raise ValueError(f"unknown sandbox level {level!r}; valid levels: {', '.join(LEVELS)}")
    cls = LEVELS[level]
    if not cls.available():
        why = cls.probe()[1] if issubclass(cls, BwrapSandbox) else ""
        raise ValueError(
            f"sandbox level {level!r} is not available on this machine"
            + (f": {why}" if why else "")
        )
    return cls(limits)

"""The ``bwrap`` sandbox level: bubblewrap namespaces around the worker."""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from autograder.paths import PACKAGE

from ..channel import Limits
from .base import (
    WORKER_FILES,
    Sandbox,
    as_uid,
    fresh_uid,
    kill_uid,
    package_folder,
    probe_run,
    worker_python,
)

__all__ = ["BwrapSandbox"]


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
    shares_submission = True
    SUBMISSION = "/submission"
    GRADER = "/grader"  # holds autograder/{__init__.py,worker/} and site/ (NumPy)

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.uid = fresh_uid() if os.getuid() == 0 else os.getuid()

    @classmethod
    def _try(cls) -> tuple[bool, str]:
        """bwrap is installed and starts a Python that imports NumPy in the namespaces and
        mounts this level uses."""
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
                worker_python(), "-S", "-s", "-c", "import numpy",
            ]  # fmt: skip
            return probe_run(command, "bwrap", env=sandbox.environment(Path(tmp)))

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
        if device == "cuda":  # the GPU's device nodes (untested here: no GPU on these machines)
            for node in sorted(glob.glob("/dev/nvidia*")):
                args += ["--dev-bind", node, node]
        args += ["--size", str(self.limits.tmp_size), "--perms", "1777", "--tmpfs", "/tmp"]
        args += ["--chdir", "/tmp", "--"]
        if os.getuid() == 0:
            args += as_uid(self.uid)
        return args

    def command(self, submission_dir: Path, *, workdir: Path, device: str = "cpu") -> list[str]:
        return [
            *self.bwrap_command(submission_dir, device),
            worker_python(), "-S", "-s", "-m", "autograder.worker",
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

    def reap(self) -> None:
        if os.getuid() == 0:  # the namespace is gone with bwrap; its uid, to be sure
            kill_uid(self.uid)


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
    """NumPy's package folder and its bundled libraries; on cuda, every package beside CuPy
    (it needs its own dependencies and the CUDA libraries installed as wheels)."""
    cupy = package_folder("cupy") if device == "cuda" else None
    if cupy is not None:
        return sorted(p for p in cupy.parent.iterdir() if p.is_dir() and p.name != "autograder")
    numpy = package_folder("numpy")
    if numpy is None:
        return []
    libs = numpy.with_name("numpy.libs")  # auditwheel's bundled shared libraries
    return [numpy, libs] if libs.is_dir() else [numpy]

"""The ``user`` sandbox level: a separate unprivileged user, for where namespaces are refused.

Inside a container (Gradescope runs the grading image as root, with the network on, under a
seccomp profile that refuses the namespaces bubblewrap needs), the worker still must not be
the grader: it runs as a fresh unprivileged uid of its own (``setpriv``: no capabilities, no
supplementary groups, no new privileges), under a seccomp filter that refuses sockets
(:mod:`autograder.worker.seccomp`, installed by the worker on itself before it imports the
submission), with the same resource limits, in its own session and process group. When it is
done, every process of that uid is killed, detached ones included; results are written by the
grader, where that uid cannot write.

What it does not give: a view of the files of its own. The worker can read what the machine
lets any user read, so the grading image keeps the grader's files (the kit, the secret, the
test labels, the hidden suites) readable by root only; ``kit image`` builds it that way.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..channel import Limits
from .base import (
    Sandbox,
    as_uid,
    fresh_uid,
    kill_uid,
    probe_run,
    readable_by_others,
    worker_lib,
    worker_python,
)

__all__ = ["UserSandbox"]

# Tried by the probe, as the worker itself would do it: the filter is in, sockets are refused.
_PROBE = (
    "import socket, sys; sys.path.insert(0, sys.argv[1]);"
    "from autograder.worker.seccomp import deny_sockets; deny_sockets()\n"
    "try:\n socket.socket()\nexcept PermissionError:\n sys.exit(0)\nsys.exit(5)"
)


class UserSandbox(Sandbox):
    level = "user"

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.uid = fresh_uid()

    @classmethod
    def _try(cls) -> tuple[bool, str]:
        """Root (to switch users), setpriv, and a seccomp filter the kernel accepts."""
        if sys.platform != "linux":
            return False, "the user level needs Linux"
        if os.getuid() != 0:
            return False, "the user level needs the grader to run as root (to switch users)"
        if shutil.which("setpriv") is None:
            return False, "setpriv (util-linux) is not installed"
        with tempfile.TemporaryDirectory(prefix="tapegrad-probe-") as tmp:
            os.chmod(tmp, 0o755)  # the probe's uid must reach the worker zone's links
            lib = worker_lib(Path(tmp) / "lib")
            command = [*as_uid(fresh_uid()), worker_python(), "-S", "-c", _PROBE, str(lib)]
            return probe_run(command, "a worker as another user with the seccomp filter", cwd=tmp)

    @property
    def notes(self) -> list[str]:
        return [
            f"sandbox user: a separate unprivileged uid {self.uid} (no capabilities, no new "
            "privileges), a seccomp filter that refuses sockets, resource limits, its own "
            "session; it sees the files any user of this machine may read"
        ]

    def rlimits(self, device: str = "cpu") -> dict[str, list[int]]:
        out = super().rlimits(device)
        if self.limits.processes is not None:
            out["nproc"] = [self.limits.processes] * 2  # a fresh uid: no task counts yet
        return out

    def command(self, submission_dir: Path, *, workdir: Path, device: str = "cpu") -> list[str]:
        return [
            *as_uid(self.uid),
            *super().command(submission_dir, workdir=workdir, device=device),
            "--deny-sockets",
        ]

    def prepare(self, workdir: Path, submission: Path) -> Path:
        """The worker may enter its folder, owns its home there and reads a copy of the
        submission there (the grader's own copy sits in a folder only root may enter)."""
        os.chmod(workdir, 0o711)
        os.chown(workdir / "home", self.uid, self.uid)
        copy = workdir / "submission"
        shutil.copytree(submission, copy, symlinks=True)
        readable_by_others(copy)
        return copy

    def reap(self) -> None:
        kill_uid(self.uid)

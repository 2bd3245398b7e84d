"""The ``container`` sandbox level (alias ``docker``): the worker in the grading image.

The grader on the host starts each worker in a fresh container of the grading image
(``kit image build``) through the ``docker`` or ``podman`` command line: no network, a
read-only root with a private size-capped ``/tmp``, limits on processes, memory (swap
included) and CPUs, no capabilities, no new privileges, an unprivileged user, the submission
mounted read-only. The requests and replies go through ``run -i``'s stdin and stdout; when the
worker is done, the container is killed by name, so nothing it started survives.

Configuration, from the environment (a machine's quirks stay out of the code):

* ``TAPEGRAD_IMAGE``: the grading image to run (required; e.g. ``tapegrad-grader:hw1``);
* ``TAPEGRAD_ENGINE``: the engine command, split as a shell would (default: ``docker`` if its
  daemon answers, else ``podman``; e.g. ``podman --runtime /usr/sbin/runc``);
* ``TAPEGRAD_RUN_OPTIONS``: more options for ``run`` (e.g. ``--ulimit nofile=1024:1024``).

The worker in the container is the image's own installed copy of the grader's worker zone.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import subprocess
from pathlib import Path

from autograder.engine import answers, find_engine

from ..channel import Limits
from .base import Sandbox

__all__ = ["ContainerSandbox"]

INSIDE = "/submission"
USER = "65534:65534"  # nobody


def _engine() -> list[str] | None:
    configured = os.environ.get("TAPEGRAD_ENGINE")
    if configured:
        return shlex.split(configured)
    name = find_engine()
    return [name] if name else None


class ContainerSandbox(Sandbox):
    level = "container"
    wraps_worker = True  # the engine exits with 128 + N when the worker died of signal N
    shares_submission = True

    def __init__(self, limits: Limits | None = None) -> None:
        super().__init__(limits)
        self.engine = _engine() or ["docker"]
        self.image = os.environ.get("TAPEGRAD_IMAGE", "")
        self.name = f"tapegrad-worker-{secrets.token_hex(6)}"

    @classmethod
    def _try(cls) -> tuple[bool, str]:
        """An engine answers, and the image runs its worker's Python."""
        image = os.environ.get("TAPEGRAD_IMAGE")
        if not image:
            return False, "TAPEGRAD_IMAGE does not name a grading image (kit image build)"
        engine = _engine()
        if engine is None:
            return False, "no container engine (docker with a daemon, or podman) works here"
        probe = [*engine, "run", "--rm", "--network", "none", *cls._run_options(), image]
        if not answers([*probe, "/opt/grader/bin/python", "-c", "import autograder.worker"]):
            return False, f"{' '.join(engine)} cannot run the worker of the image {image}"
        return True, ""

    @staticmethod
    def _run_options() -> list[str]:
        return shlex.split(os.environ.get("TAPEGRAD_RUN_OPTIONS", ""))

    @property
    def notes(self) -> list[str]:
        return [
            f"sandbox container: the grading image {self.image} through {self.engine[0]}; no "
            "network, a read-only root, a private /tmp, process, memory and CPU limits, no "
            "capabilities, an unprivileged user"
        ]

    def command(self, submission_dir: Path, *, workdir: Path, device: str = "cpu") -> list[str]:
        lim = self.limits
        options = [
            "run", "-i", "--rm", "--name", self.name, "--network", "none",
            "--read-only", "--tmpfs", f"/tmp:rw,size={lim.tmp_size},mode=1777",
            "--cap-drop", "all", "--security-opt", "no-new-privileges", "--user", USER,
            "--cpus", "1", "-w", "/tmp",
            "-v", f"{submission_dir}:{INSIDE}:ro",
        ]  # fmt: skip
        if lim.processes is not None:
            options += ["--pids-limit", str(lim.processes)]
        if lim.address_space is not None and device != "cuda":
            options += ["--memory", str(lim.address_space), "--memory-swap", str(lim.address_space)]
        if device == "cuda":
            options += ["--gpus", "all"]
        for key, value in self.environment(workdir, device).items():
            if key not in ("PATH", "PYTHONPATH", "HOME", "TMPDIR"):
                options += ["-e", f"{key}={value}"]
        options += ["-e", "HOME=/tmp", "-e", "TMPDIR=/tmp", *self._run_options()]
        worker = [
            "/opt/grader/bin/python", "-m", "autograder.worker",
            "--submission", INSIDE, "--device", device,
            "--rlimits", json.dumps(self.rlimits(device)),
            "--max-message-bytes", str(lim.max_message_bytes),
        ]  # fmt: skip
        return [*self.engine, *options, self.image, *worker]

    def reap(self) -> None:
        """The engine's client may die while its container lives on: kill it by name."""
        subprocess.run([*self.engine, "kill", self.name], capture_output=True, check=False)
        subprocess.run([*self.engine, "rm", "-f", self.name], capture_output=True, check=False)

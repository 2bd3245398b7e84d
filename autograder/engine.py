"""Which container engine to drive: docker (with a daemon behind it) or podman.

Shared by ``kit image build`` (building the grading image) and the ``container`` sandbox level
(running it); a machine's own options (podman's runtime, say) come from the caller, not from
here.
"""

from __future__ import annotations

import shutil
import subprocess

__all__ = ["ENGINES", "answers", "find_engine"]

ENGINES = ("docker", "podman")


def answers(command: list[str]) -> bool:
    """Does ``command`` run and succeed (within a minute)?"""
    try:
        return subprocess.run(command, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_engine(choice: str | None = None) -> str | None:
    """``choice`` (or, without one, docker then podman) if installed and working: ``info``
    succeeds only where docker has a daemon to talk to; podman needs none."""
    for name in [choice] if choice else ENGINES:
        if shutil.which(name) is not None and answers([name, "info"]):
            return name
    return None

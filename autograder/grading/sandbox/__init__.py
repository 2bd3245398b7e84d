"""Sandbox levels: how a worker process is started for one submission, from the strongest.

* ``bwrap`` (:mod:`.bwrap`): bubblewrap namespaces, a read-only view of only what the worker
  needs, no network, a fresh unprivileged uid;
* ``container`` or ``docker`` (:mod:`.container`): a fresh container of the grading image per
  submission, through docker or podman (when ``TAPEGRAD_IMAGE`` names one);
* ``user`` (:mod:`.user`): where namespaces are refused (in a container): a fresh unprivileged
  uid, a seccomp filter that refuses sockets, every process of that uid killed at the end;
* ``none`` (:mod:`.base`): a resource-limited subprocess, for debugging.

``make_sandbox(None)`` picks the strongest level that works here (each level probes itself once)
and every report names it; asking for a level that does not work is an error that says why,
never a quiet step down.
"""

from __future__ import annotations

from ..channel import Limits
from .base import Sandbox
from .bwrap import BwrapSandbox
from .container import ContainerSandbox
from .user import UserSandbox

__all__ = [
    "ALIASES",
    "LEVELS",
    "BwrapSandbox",
    "ContainerSandbox",
    "Sandbox",
    "UserSandbox",
    "make_sandbox",
]

LEVELS: dict[str, type[Sandbox]] = {
    "bwrap": BwrapSandbox,
    "container": ContainerSandbox,
    "user": UserSandbox,
    "none": Sandbox,
}
ALIASES = {"docker": "container"}  # the design's first name for it


def make_sandbox(level: str | None, limits: Limits | None = None) -> Sandbox:
    """The sandbox for ``--sandbox LEVEL``; None picks the strongest level that works here."""
    if level is None:
        for cls in LEVELS.values():
            if cls.available():
                return cls(limits)
        return Sandbox(limits)
    level = ALIASES.get(level, level)
    if level not in LEVELS:
        raise ValueError(f"unknown sandbox level {level!r}; valid levels: {', '.join(LEVELS)}")
    cls = LEVELS[level]
    works, why = cls.probe()
    if not works:
        raise ValueError(f"sandbox level {level!r} does not work on this machine: {why}")
    return cls(limits)

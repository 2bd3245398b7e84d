"""The grader's secret: the key of the hidden cases' seeds (see :mod:`autograder.grading.seeds`).

It comes from ``GRADER_SECRET`` (hex or text), else the file named by ``GRADER_SECRET_FILE``,
else ``~/.config/tapegrad-kit/grader-secret`` (created with a random secret on first use, mode
0600). Grading reads it; ``kit image`` bakes it into the grading image, readable by root only,
so that Gradescope's regrades reproduce the cases this machine would draw.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

__all__ = ["DEFAULT_SECRET_FILE", "load_secret"]

DEFAULT_SECRET_FILE = Path("~/.config/tapegrad-kit/grader-secret")


def load_secret() -> bytes:
    """The grader's secret (see the module docstring for where it is looked for)."""
    value = os.environ.get("GRADER_SECRET")
    if value:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return value.encode()
    path = Path(os.environ.get("GRADER_SECRET_FILE") or DEFAULT_SECRET_FILE).expanduser()
    if path.exists():
        data = path.read_bytes().strip()
        if not data:
            raise ValueError(f"grader secret file {path} is empty")
        return data
    if os.environ.get("GRADER_SECRET_FILE"):
        raise FileNotFoundError(f"GRADER_SECRET_FILE={path} does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    return path.read_bytes().strip()

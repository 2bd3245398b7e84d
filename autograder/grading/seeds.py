"""Where the random cases come from.

Hidden cases are seeded with HMAC-SHA256(secret, assignment | check | submission hash): a
regrade of the same submission reproduces every case exactly, a different submission gets
different cases, and without the secret nobody can predict them. ``--public`` uses the fixed
seed published in ``assignment.toml``, so students can rerun exactly what CI ran.

The secret comes from ``GRADER_SECRET`` (hex or text), else the file named by
``GRADER_SECRET_FILE``, else ``~/.config/tapegrad-kit/grader-secret`` (created with a random
secret on first use, mode 0600). It never enters the sandbox: workers get a scrubbed
environment and receive only case inputs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SeedSource", "load_secret", "public_seeds", "hidden_seeds"]

DEFAULT_SECRET_FILE = Path("~/.config/tapegrad-kit/grader-secret")


@dataclass(frozen=True)
class SeedSource:
    """Derives one integer seed per check."""

    kind: str  # "public" or "hmac-sha256"
    key: bytes
    description: str  # recorded in every result: how the seeds were made

    def seed(self, assignment: str, check_id: str, submission_hash: str) -> int:
        if self.kind == "public":
            message = f"{assignment}|{check_id}".encode()
        else:
            message = f"{assignment}|{check_id}|{submission_hash}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")


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


def public_seeds(public_seed: int) -> SeedSource:
    return SeedSource("public", str(public_seed).encode(), f"public:{public_seed}")


def hidden_seeds(secret: bytes | None = None) -> SeedSource:
    key = secret if secret is not None else load_secret()
    key_id = hashlib.sha256(b"key-id|" + key).hexdigest()[:12]
    return SeedSource("hmac-sha256", key, f"hmac-sha256:key-{key_id}")

"""Where the random cases come from.

Hidden cases are seeded with HMAC-SHA256(secret, assignment | check | submission hash): a
regrade of the same submission reproduces every case exactly, a different submission gets
different cases, and without the secret nobody can predict them. ``--public`` uses the fixed
seed published in ``assignment.toml``, so students can rerun exactly what CI ran.

The secret comes from :func:`autograder.secret.load_secret`. It never enters the sandbox:
workers get a scrubbed environment and receive only case inputs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from autograder.secret import load_secret

__all__ = ["SeedSource", "public_seeds", "hidden_seeds"]


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


def public_seeds(public_seed: int) -> SeedSource:
    return SeedSource("public", str(public_seed).encode(), f"public:{public_seed}")


def hidden_seeds(secret: bytes | None = None) -> SeedSource:
    key = secret if secret is not None else load_secret()
    key_id = hashlib.sha256(b"key-id|" + key).hexdigest()[:12]
    return SeedSource("hmac-sha256", key, f"hmac-sha256:key-{key_id}")

"""Collect: turn what a student handed in (a directory, a .zip of one, or a lone notebook)
into a private staged copy the worker can read, and its hash.

The staged copy holds only the submission's own files (no symlinks, nothing outside it), under
a size cap: the worker never sees the original location, and a zip cannot write outside its
target (no absolute paths, no ``..``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

__all__ = ["Submission", "SubmissionError", "collect", "MAX_FILES", "MAX_BYTES"]

MAX_FILES = 2000
MAX_BYTES = 50 * 2**20
SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", "node_modules", ".pytest_cache"}


class SubmissionError(Exception):
    """The submission cannot be collected (the message says why, for the student)."""


@dataclass
class Submission:
    """A staged submission: ``root`` is a private directory the caller must clean up."""

    root: Path
    hash: str  # sha256 over relative paths and contents
    source: Path
    files: list[str]

    @property
    def has_package(self) -> bool:
        return (self.root / "tapegrad" / "__init__.py").is_file()

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def collect(source: str | Path, notebooks: tuple[str, ...] = ()) -> Submission:
    """Stage ``source`` into a fresh temporary directory.

    A directory (or a zip holding one, possibly wrapped in a single top-level folder) is
    copied whole, minus caches; a lone ``.ipynb`` is staged under the first name in
    ``notebooks`` (the name the release gave it), or its own name.
    """
    source = Path(source)
    if not source.exists():
        raise SubmissionError(f"submission {source} does not exist")
    root = Path(tempfile.mkdtemp(prefix="tapegrad-submission-"))
    try:
        if source.is_dir():
            _copy_tree(source, root)
        elif source.suffix == ".zip":
            _extract_zip(source, root)
        elif source.suffix == ".ipynb":
            name = notebooks[0] if notebooks else source.name
            _check_size(source.stat().st_size, 1)
            shutil.copyfile(source, root / name)
        else:
            raise SubmissionError(
                f"submission {source} is not a directory, a .zip or a .ipynb notebook"
            )
        _unwrap_single_folder(root)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        return Submission(root, _hash(root, files), source, files)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _check_size(total: int, count: int) -> None:
    if count > MAX_FILES:
        raise SubmissionError(f"submission has more than {MAX_FILES} files")
    if total > MAX_BYTES:
        raise SubmissionError(f"submission is larger than {MAX_BYTES // 2**20} MiB")


def _copy_tree(source: Path, target: Path) -> None:
    total = count = 0
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        rel = Path(dirpath).relative_to(source)
        (target / rel).mkdir(parents=True, exist_ok=True)
        for name in sorted(filenames):
            src = Path(dirpath) / name
            st = src.lstat()
            if not stat.S_ISREG(st.st_mode) or name.endswith((".pyc", ".pyo")):
                continue  # symlinks, sockets, devices: not part of a submission
            total += st.st_size
            count += 1
            _check_size(total, count)
            shutil.copyfile(src, target / rel / name)


def _extract_zip(source: Path, target: Path) -> None:
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as exc:
        raise SubmissionError(f"{source.name} is not a valid zip file ({exc})") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        _check_size(sum(m.file_size for m in members), len(members))
        for m in members:
            path = PurePosixPath(m.filename)
            if path.is_absolute() or ".." in path.parts or m.filename.startswith("\\"):
                raise SubmissionError(f"{source.name}: unsafe path in zip: {m.filename!r}")
            if any(part in SKIP_DIRS for part in path.parts) or path.name.endswith(".pyc"):
                continue
            if stat.S_ISLNK(m.external_attr >> 16):
                continue
            dest = target.joinpath(*path.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(m) as src, open(dest, "wb") as out:
                written = 0
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size or written > MAX_BYTES:
                        raise SubmissionError(
                            f"{source.name}: {m.filename} is larger than declared"
                        )
                    out.write(chunk)


def _unwrap_single_folder(root: Path) -> None:
    """``hw1-alice/tapegrad/...`` in a zip: use the folder as the submission root."""
    entries = [p for p in root.iterdir() if p.name not in ("__MACOSX",)]
    if len(entries) == 1 and entries[0].is_dir() and entries[0].name != "tapegrad":
        inner = entries[0]
        for p in list(inner.iterdir()):
            p.rename(root / p.name)
        inner.rmdir()
    shutil.rmtree(root / "__MACOSX", ignore_errors=True)


def _hash(root: Path, files: list[str]) -> str:
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()

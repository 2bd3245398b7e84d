"""Grade one submission into ``OUT/<student>/``, atomically; what ``--resume`` skips; the local
pool of ``-j N``.

One finished submission is one folder ``OUT/<student>/`` holding ``grade``'s reports and
``batch.json`` (:class:`Record`: who, from which source and content, graded or a grader
error, how long, how many attempts). The folder is written under ``OUT/.work/`` and renamed
into place only when complete, so a batch killed at any moment (SIGKILL included) leaves each
student's folder whole, absent or from an earlier run, never half-written; ``--resume`` then
skips exactly the folders whose record says "graded" for the same submission content and the
same checks (the suite hash), and grades the rest.

A grader error (``grade`` exiting 2, crashing or running past its time) is infrastructure:
it is retried once and recorded apart from a score. A student's crash, timeout or import error
is a graded result (``grade`` exits 0 and the reports say what broke).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .submissions import Entry

__all__ = [
    "GRADED",
    "GRADER_ERROR",
    "GradeSpec",
    "Record",
    "finished",
    "fingerprint",
    "grade_entry",
    "publish",
    "read_record",
    "run_grade",
    "run_local",
]

RECORD = "batch.json"
WORK = ".work"
GRADED, GRADER_ERROR = "graded", "grader error"
ATTEMPTS = 2  # a grader error is retried once
SKIP = {"__pycache__", ".git", ".ipynb_checkpoints", ".venv", ".pytest_cache"}


@dataclass(frozen=True)
class GradeSpec:
    """How every submission of the batch is graded (the ``grade`` options)."""

    assignment: str
    root: str | None = None  # the kit checkout holding assignments/ (None: grade's default)
    sandbox: str | None = None
    device: str = "cpu"
    timeout: float = 1200.0  # seconds for one `grade` run: its own time limit and a margin
    public: bool = False
    require_isolation: bool = False

    def command(self, source: Path, out: Path) -> list[str]:
        argv = [sys.executable, "-m", "autograder.cli", str(source)]
        argv += ["--assignment", self.assignment, "--out", str(out), "--device", self.device]
        if self.root:
            argv += ["--root", self.root]
        if self.sandbox:
            argv += ["--sandbox", self.sandbox]
        if self.public:
            argv.append("--public")
        if self.require_isolation:
            argv.append("--require-isolation")
        return argv


@dataclass
class Record:
    """``OUT/<student>/batch.json``."""

    student: str
    students: list[str]
    source: str
    fingerprint: str
    status: str  # GRADED | GRADER_ERROR
    seconds: float
    attempts: int
    suite: str = ""  # the suite hash the results were graded with
    score: float = 0.0
    max_score: float = 0.0
    error: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1) + "\n"


def fingerprint(source: Path) -> str:
    """SHA-256 over a submission's content (a folder's relative paths and bytes, caches
    skipped; a file's bytes): the same hand-in gives the same fingerprint."""
    digest = hashlib.sha256()
    try:
        if source.is_dir():
            for path in sorted(source.rglob("*")):
                rel = path.relative_to(source)
                if any(part in SKIP for part in rel.parts) or not path.is_file():
                    continue
                digest.update(rel.as_posix().encode() + b"\0")
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        elif source.is_file():
            digest.update(source.read_bytes())
    except OSError as exc:  # graded anyway: grade's reports say what cannot be read
        return f"unreadable: {exc}"
    return "sha256:" + digest.hexdigest()


def _tail(text: str, limit: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def run_grade(source: Path, out: Path, spec: GradeSpec) -> tuple[str, str | None]:
    """Run ``grade`` on ``source`` into ``out``: (GRADED, None) or (GRADER_ERROR, why)."""
    try:
        done = subprocess.run(
            spec.command(source, out),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=spec.timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return GRADER_ERROR, f"grade ran past {spec.timeout:g} s and was stopped"
    except OSError as exc:
        return GRADER_ERROR, f"grade could not be started: {exc}"
    if done.returncode == 0 and (out / "results.json").is_file():
        return GRADED, None
    why = _tail(done.stderr) or _tail(done.stdout) or "no output"
    return GRADER_ERROR, f"grade exited with status {done.returncode}: {why}"


def read_results(folder: Path) -> dict[str, Any] | None:
    """``folder/results.json`` as data, or None when absent or unreadable."""
    try:
        data = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_record(folder: Path) -> Record | None:
    """``folder/batch.json``, or None when absent or unreadable (then it is regraded)."""
    try:
        data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        return Record(**data)
    except (OSError, ValueError, TypeError):
        return None


def finished(entry: Entry, out: Path, suite: str, content: str | None = None) -> Record | None:
    """The record of ``entry`` when ``--resume`` may skip it: graded, from the same content
    (``content``: its fingerprint, computed when not given), by the same checks."""
    folder = out / entry.key
    record = read_record(folder)
    if record is None or record.status != GRADED or record.suite != suite:
        return None
    if read_results(folder) is None:
        return None
    if record.fingerprint != (content or fingerprint(entry.source)):
        return None
    return record


def publish(staged: Path, final: Path) -> None:
    """Move the complete folder ``staged`` to ``final``, replacing an older one. Each step is
    a rename: killed in between, ``final`` is whole or absent (and then regraded)."""
    if final.exists():
        old = staged.with_name(staged.name + ".old")
        final.rename(old)
        staged.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(final)


def make_record(
    entry: Entry, content: str, status: str, error: str | None, seconds: float,
    attempts: int, staged: Path,
) -> Record:  # fmt: skip
    """The record of one grading, with the score and suite read back from its results."""
    results = read_results(staged) or {}
    extra = results.get("extra_data") or {}
    return Record(
        student=entry.key, students=list(entry.students), source=str(entry.source),
        fingerprint=content, status=status, seconds=round(seconds, 3), attempts=attempts,
        suite=str(extra.get("suite_hash", "")), score=float(results.get("score", 0.0)),
        max_score=float(extra.get("max_score", 0.0)), error=error,
    )  # fmt: skip


def work_folder(out: Path, key: str) -> Path:
    """A fresh folder under ``OUT/.work/`` to grade ``key`` into."""
    (out / WORK).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{key}.", dir=out / WORK))


def grade_entry(entry: Entry, out: Path, spec: GradeSpec) -> Record:
    """Grade ``entry`` (retrying a grader error once) and publish ``OUT/<key>/``; whatever
    goes wrong becomes this entry's grader error, never the batch's end."""
    try:
        return _grade_entry(entry, out, spec)
    except Exception as exc:  # a full disk, a vanished OUT: record it if we still can
        staged = work_folder(out, entry.key)
        error = f"the batch could not grade this submission: {type(exc).__name__}: {exc}"
        record = make_record(entry, "", GRADER_ERROR, error, 0.0, 1, staged)
        (staged / RECORD).write_text(record.to_json(), encoding="utf-8")
        publish(staged, out / entry.key)
        return record


def _grade_entry(entry: Entry, out: Path, spec: GradeSpec) -> Record:
    content = fingerprint(entry.source)
    started = time.monotonic()
    staged = work_folder(out, entry.key)
    status, error, attempts = GRADER_ERROR, None, 0
    for attempts in range(1, ATTEMPTS + 1):
        if attempts > 1:
            shutil.rmtree(staged, ignore_errors=True)
            staged = work_folder(out, entry.key)
        status, error = run_grade(entry.source, staged, spec)
        if status == GRADED:
            break
    record = make_record(
        entry, content, status, error, time.monotonic() - started, attempts, staged
    )
    (staged / RECORD).write_text(record.to_json(), encoding="utf-8")
    publish(staged, out / entry.key)
    return record


def clean_work(out: Path) -> None:
    """Remove what killed runs left under ``OUT/.work/`` (never a published folder)."""
    shutil.rmtree(out / WORK, ignore_errors=True)


def run_local(
    entries: list[Entry],
    out: Path,
    spec: GradeSpec,
    jobs: int,
    grade: Callable[[Entry, Path, GradeSpec], Record] = grade_entry,
) -> Iterator[Record]:
    """Grade ``entries`` with ``jobs`` ``grade`` processes at a time; yield each record as it
    is published. Each ``grade`` is its own process (and sandbox): the threads only wait."""
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="grade") as pool:
        futures = {pool.submit(grade, entry, out, spec): entry for entry in entries}
        try:
            for future in as_completed(futures):
                yield future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise

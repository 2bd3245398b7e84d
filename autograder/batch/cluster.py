"""``grade batch --dask ADDRESS``: the same batch on an existing Dask distributed cluster.

One task per submission, with a deterministic key (``grade-<student>-<content hash>``), so
that resubmitting the same work is the same task. A task carries the submission's bytes (a
folder is zipped here: the workers need no shared file system) and runs :func:`grade_task` on
a Dask worker, which writes them to a temporary folder and runs the ``grade`` command in a
subprocess: student code never runs inside the Dask worker process, only in ``grade``'s
sandbox. The task returns the report files as bytes (``results.json``, ``report.md``, ...);
this process writes them to ``OUT/<student>/`` atomically as each task completes, so a lost
scheduler or client loses only the tasks in flight, and ``--resume`` carries on.

A grader error raises :class:`InfrastructureError` in the task, which Dask retries once
(``retries=1``) on any worker; a worker that dies mid-task is rescheduled by Dask itself. A
student's crash is a graded result, returned normally, never retried.

The workers need the kit installed (the same version: the suite hash of each result is
checked against this process's) and, with ``--root``, the checkout at the same path. For
GPU grading, start the workers with ``--resources GPU=1`` and pass ``--device cuda``: each
task then asks for ``resources={"GPU": 1}``.
"""

from __future__ import annotations

import io
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .runner import (
    GRADED,
    GRADER_ERROR,
    RECORD,
    GradeSpec,
    Record,
    fingerprint,
    make_record,
    publish,
    run_grade,
    work_folder,
)
from .submissions import Entry

__all__ = ["InfrastructureError", "grade_task", "run_dask", "task_key"]

REPORT_FILES = ("results.json", "report.md", "report.html", "junit.xml")


class InfrastructureError(RuntimeError):
    """The grader could not grade (Dask retries the task)."""


def task_key(entry: Entry, content: str) -> str:
    return f"grade-{entry.key}-{content.removeprefix('sha256:')[:16]}"


def _payload(source: Path) -> tuple[str, bytes]:
    """The submission as (file name, bytes): a folder becomes a zip of itself."""
    if source.is_dir():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(source.rglob("*")):
                rel = path.relative_to(source)
                if path.is_file() and not any(p in {"__pycache__", ".git"} for p in rel.parts):
                    z.write(path, rel.as_posix())
        return "submission.zip", buffer.getvalue()
    return "submission" + source.suffix, source.read_bytes()


def grade_task(name: str, data: bytes, spec: GradeSpec) -> dict[str, Any]:
    """Run on a Dask worker: grade one submission in a ``grade`` subprocess and return its
    report files. Raises :class:`InfrastructureError` on a grader error (to be retried)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tapegrad-dask-") as tmp:
        source = Path(tmp) / Path(name).name
        source.write_bytes(data)
        out = Path(tmp) / "out"
        status, error = run_grade(source, out, spec)
        if status != GRADED:
            raise InfrastructureError(error)
        files = {n: (out / n).read_bytes() for n in REPORT_FILES if (out / n).is_file()}
    return {"files": files, "seconds": time.monotonic() - started}


def _store(
    entry: Entry, content: str, out: Path, outcome: Any, attempts: int, suite: str
) -> Record:
    staged = work_folder(out, entry.key)
    if isinstance(outcome, dict):
        for file_name, data in outcome["files"].items():
            if file_name in REPORT_FILES:  # only the names we asked for
                (staged / file_name).write_bytes(data)
        status, error, seconds = GRADED, None, float(outcome["seconds"])
    else:
        status, error, seconds = GRADER_ERROR, f"on the Dask cluster: {outcome}", 0.0
    record = make_record(entry, content, status, error, seconds, attempts, staged)
    if record.status == GRADED and record.suite != suite:
        record.status = GRADER_ERROR
        record.error = (
            f"a Dask worker graded with other checks (suite {record.suite[:19]}, here "
            f"{suite[:19]}): install the same kit on the workers"
        )
    (staged / RECORD).write_text(record.to_json(), encoding="utf-8")
    publish(staged, out / entry.key)
    return record


def run_dask(
    entries: list[Entry],
    out: Path,
    spec: GradeSpec,
    address: str,
    contents: dict[str, str],
    suite: str,
) -> Iterator[Record]:
    """Submit every entry to the cluster at ``address``; yield each record as it is stored.
    ``contents``: each entry's fingerprint, by key (computed once by the caller); ``suite``:
    the suite hash every result must have been graded with."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise InfrastructureError(
            "--dask needs Dask distributed: pip install 'tapegrad-kit[batch]'"
        ) from None
    resources = {"GPU": 1} if spec.device == "cuda" else None
    with Client(address, timeout="30s") as client:
        futures = {}
        for entry in entries:
            content = contents.get(entry.key) or fingerprint(entry.source)
            name, data = _payload(entry.source)
            future = client.submit(
                grade_task, name, data, spec, key=task_key(entry, content), retries=1,
                resources=resources, pure=False,
            )  # fmt: skip
            futures[future] = (entry, content)
        for future in as_completed(futures):
            entry, content = futures[future]
            try:
                outcome: Any = future.result()
                attempts = 1
            except Exception as exc:  # retried once already, or the task was lost
                outcome, attempts = f"{type(exc).__name__}: {exc}", 2
            yield _store(entry, content, out, outcome, attempts, suite)
            future.release()

"""``grade batch``: grade a whole class.

    grade batch DIR --assignment ID --out OUT [-j N] [--resume] [--dask ADDRESS]
                    [--sandbox LEVEL] [--device cpu|cuda] [--root KIT] [--public] [--force]

DIR holds one submission per student (a folder, .zip or notebook named by the student id),
Gradescope's export (unzipped, or its .zip), or nbgrader's ``submitted/<student>/<ID>/``.
Each submission is graded by ``grade`` in its own process and sandbox, ``-j N`` at a time (or
on a Dask cluster), into ``OUT/<student>/``; then OUT gets ``gradebook.csv``, ``canvas.csv``,
``gradescope.csv``, ``histogram.png``, ``index.html`` and ``summary.json``.

``--resume`` skips every submission already graded from the same content with the same checks,
and grades the rest (those never graded, changed since, or with a grader error): a batch
killed at any moment and resumed ends with the same gradebook as an uninterrupted run.

Exit status: 0 when every submission is graded (whatever the scores); 1 when grader errors
remain (they are listed; ``--resume`` retries them); 2 when the batch could not start.
"""

from __future__ import annotations

import argparse
import fcntl
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from autograder import KitError
from autograder.config import find_assignment
from autograder.grading.pipeline import suite_hash
from autograder.grading.sandbox import ALIASES, LEVELS, make_sandbox

from .gradebook import render_summary, write_gradebook
from .progress import Progress
from .runner import (
    WORK,
    GradeSpec,
    Record,
    clean_work,
    fingerprint,
    finished,
    read_record,
    run_local,
)
from .submissions import BatchError, find_submissions

__all__ = ["main"]

EXIT_OK, EXIT_GRADER_ERRORS, EXIT_USAGE = 0, 1, 2
MARGIN = 120.0  # seconds a `grade` run may take beyond the assignment's own time limit


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grade batch",
        description="Grade every submission of a class in parallel, resumably, into a gradebook.",
    )
    p.add_argument("directory", type=Path, metavar="DIR", help="the class's submissions")
    p.add_argument("--assignment", "-a", required=True, help="assignment id, e.g. hw1")
    p.add_argument("--out", type=Path, required=True, help="OUT/<student>/ and the gradebook")
    p.add_argument("-j", "--jobs", type=int, default=1, help="submissions graded at once")
    p.add_argument(
        "--resume", action="store_true", help="keep what OUT holds already, grade the rest"
    )
    p.add_argument(
        "--force", action="store_true", help="regrade everything, replacing what OUT holds"
    )
    p.add_argument("--dask", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--sandbox", choices=[*LEVELS, *ALIASES], help="as for grade")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--public", action="store_true", help="only the public checks")
    p.add_argument("--root", type=Path, help="the kit checkout holding assignments/")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="how long one grade run may take before it counts as a grader error (default: "
        f"the assignment's time_limit + {MARGIN:g})",
    )
    return p


def _lock(out: Path) -> IO[str]:
    """Hold OUT/.lock for the batch: two batches writing one OUT would race."""
    out.mkdir(parents=True, exist_ok=True)
    handle = open(out / ".lock", "w")  # noqa: SIM115 - held for the whole batch
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise BatchError(f"another grade batch is writing to {out}") from None
    return handle


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except (KitError, ValueError) as exc:
        print(f"grade batch: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise BatchError(f"-j {args.jobs}: must be at least 1")
    if args.resume and args.force:
        raise BatchError("--resume keeps what OUT holds, --force replaces it: pick one")
    assignment = find_assignment(args.assignment, root=args.root, public=args.public)
    checks = assignment.public_checks if args.public else assignment.checks
    suite = suite_hash(assignment)
    out = args.out.resolve()
    lock = _lock(out)
    try:
        entries = find_submissions(args.directory, assignment.id, scratch=out / ".export")
        if any(e.key in (WORK, ".export") for e in entries):
            raise BatchError("a student id may not be .work or .export")
        clean_work(out)
        contents = {e.key: fingerprint(e.source) for e in entries}
        already = [e for e in entries if read_record(out / e.key) is not None]
        if already and not (args.resume or args.force):
            raise BatchError(
                f"{out} already holds {len(already)} graded submission(s): pass --resume to "
                "keep them and grade the rest, or --force to regrade everything"
            )
        todo = [
            e for e in entries if not (args.resume and finished(e, out, suite, contents[e.key]))
        ]
        level = args.sandbox if args.dask else make_sandbox(args.sandbox).level
        spec = GradeSpec(
            assignment=assignment.id,
            root=str(args.root.resolve()) if args.root else None,
            sandbox=level,
            device=args.device,
            timeout=args.timeout or assignment.time_limit + MARGIN,
            public=args.public,
        )
        where = f"on the Dask cluster {args.dask}" if args.dask else f"-j {args.jobs}"
        print(
            f"{assignment.id}: {len(entries)} submissions ({entries[0].layout}); "
            + (f"{len(entries) - len(todo)} already graded, " if args.resume else "")
            + f"grading {len(todo)} {where}, sandbox {level or 'the strongest on each worker'}",
            flush=True,
        )
        started = time.monotonic()
        display = Progress(len(todo), sys.stderr)
        try:
            for record in _records(todo, out, spec, args, contents, suite):
                display.advance(record)
        finally:
            display.close()
        elapsed = time.monotonic() - started
        summary, notes = write_gradebook(entries, out, assignment, checks)
    finally:
        lock.close()
    rate = f", {60 * len(todo) / elapsed:.1f} per minute" if todo and elapsed > 0 else ""
    print(f"graded {len(todo)} in {elapsed:.1f} s{rate}")
    print(render_summary(summary))
    for note in notes:
        print(note)
    print(f"gradebook: {out / 'gradebook.csv'}; class page: {out / 'index.html'}")
    return EXIT_GRADER_ERRORS if summary["grader_errors"] else EXIT_OK


def _records(
    todo: list[Any], out: Path, spec: GradeSpec, args: argparse.Namespace,
    contents: dict[str, str], suite: str,
) -> Iterator[Record]:  # fmt: skip
    if args.dask:
        from .cluster import run_dask

        yield from run_dask(todo, out, spec, args.dask, contents, suite)
    else:
        yield from run_local(todo, out, spec, args.jobs)

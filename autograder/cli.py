"""The ``grade`` command.

    grade SUBMISSION --assignment ID [--out DIR] [--public] [--sandbox bwrap|container|user|none]
                     [--device cpu|cuda] [--fail-under SCORE]

Exit status: 0 when grading completed, whatever the score; 1 when ``--fail-under`` was given
and the score is below it; 2 when the grader itself could not run (unknown assignment, bad
config, missing submission path, unavailable sandbox).

In a GitHub Actions job (``$GITHUB_STEP_SUMMARY`` set) it also appends a short Markdown
summary there: the score, the checks, and the feedback of those that lost points, folded.

``grade batch ...`` grades a whole class (:mod:`autograder.batch`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import KitError
from .grading.pipeline import GradeOptions, grade_submission
from .grading.reports import render_step_summary, render_terminal, write_reports
from .grading.results import GradingResult
from .grading.sandbox import ALIASES, LEVELS, make_sandbox

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="grade",
        description="Grade a tapegrad submission (a directory, a .zip or a notebook).",
        epilog="A whole class: grade batch DIR --assignment ID --out OUT [-j N] [--resume] "
        "(grade batch --help).",
    )
    p.add_argument("submission", type=Path, help="the submission: a directory, .zip or .ipynb")
    p.add_argument("--assignment", "-a", required=True, help="assignment id, e.g. hw1")
    p.add_argument(
        "--out", type=Path, help="write results.json, report.md, report.html, junit.xml here"
    )
    p.add_argument(
        "--public",
        action="store_true",
        help="only the public checks, with the published seed (what students can run)",
    )
    p.add_argument(
        "--sandbox",
        choices=[*LEVELS, *ALIASES],
        help=(
            "isolation level (default: the strongest that works here): bwrap (bubblewrap "
            "namespaces), container or docker (the grading image named by TAPEGRAD_IMAGE), "
            "user (a separate uid and a seccomp filter, in containers), none (limits only, "
            "for debugging)"
        ),
    )
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument(
        "--fail-under",
        type=float,
        metavar="SCORE",
        help="exit 1 when the total score (points) is below SCORE (for CI)",
    )
    p.add_argument(
        "--require-isolation",
        action="store_true",
        help="refuse to run the submission when no level stronger than 'none' works here "
        "(the grading image's entry point sets it: fail closed)",
    )
    p.add_argument(
        "--root", type=Path, help="the kit checkout holding assignments/ (default: this one)"
    )
    return p


def refuse(
    message: str, out: Path | None, assignment: str, *, public: bool = False, device: str = "cpu"
) -> int:
    """Say why nothing was graded, on stderr and, with ``out``, in the reports (so that CI and
    Gradescope show the reason, not a missing file); the exit status 2."""
    print(f"grade: {message}", file=sys.stderr)
    result = GradingResult(
        assignment=assignment, submission_hash="", suite_hash="", seed_derivation="",
        public=public, sandbox="not started", device=device, error=message,
    )  # fmt: skip
    if out:
        write_reports(result, out)
    _step_summary(result)
    return 2


def _step_summary(result: GradingResult) -> None:
    """Append the job summary to ``$GITHUB_STEP_SUMMARY`` when a GitHub Actions step runs us."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(render_step_summary(result))
    except OSError as exc:  # a summary is a courtesy: never fail the grading for it
        print(f"grade: could not write $GITHUB_STEP_SUMMARY ({exc})", file=sys.stderr)


def _refuse(args: argparse.Namespace, message: str) -> int:
    return refuse(message, args.out, args.assignment, public=args.public, device=args.device)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["batch"]:  # a submission folder called batch: grade ./batch
        from .batch.cli import main as batch

        return batch(argv[1:])
    args = _parser().parse_args(argv)
    if not args.submission.exists():
        return _refuse(args, f"submission {args.submission} does not exist")
    try:
        level = make_sandbox(args.sandbox).level
    except ValueError as exc:
        return _refuse(args, str(exc))
    if args.require_isolation and level == "none":
        return _refuse(
            args,
            "the sandbox level here would be 'none' ("
            + ("asked for" if args.sandbox else "bwrap and user do not work here")
            + "), and --require-isolation was given: nothing was run",
        )
    options = GradeOptions(public=args.public, sandbox=level, device=args.device, root=args.root)
    try:
        result = grade_submission(args.submission, args.assignment, options)
    except (KitError, ValueError, FileNotFoundError, KeyError) as exc:
        return _refuse(args, str(exc))
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    print(render_terminal(result, color))
    _step_summary(result)
    if args.out:
        paths = write_reports(result, args.out)
        print("reports: " + ", ".join(str(p) for p in paths.values()))
    if args.fail_under is not None and result.score < args.fail_under:
        print(f"score {result.score:g} is below --fail-under {args.fail_under:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

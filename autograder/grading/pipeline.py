"""The grading pipeline, one step per module:

    collect (collect.py) -> run (sandbox.py + worker.py + probes) -> compare (opcheck.py,
    modprobes/, recipes.py, nbprobes.py, diagnose.py) -> score (here) -> report (reports/)

:func:`grade_submission` runs the first four for one submission and returns a
:class:`~autograder.results.GradingResult`; the command line (``cli.py``) writes the reports.
The parent process never imports the submission: all student code runs in a worker, and
everything the worker returns is judged here against trusted references.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autograder import __version__
from .collect import Submission, SubmissionError, collect
from autograder.config import Assignment, CheckConfig, load_assignment
from .diagnose import hint
from autograder.worker.notebooks import run_notebook_check
from .ops import Request, RequestFailed, run_op_check
from .results import CaseOutcome, CheckResult, GradingResult
from .sandbox import (
    Limits,
    Sandbox,
    Worker,
    WorkerCrashed,
    WorkerError,
    WorkerTimeout,
    make_sandbox,
)
from .seeds import SeedSource, hidden_seeds, public_seeds

__all__ = [
    "GradeOptions",
    "grade_submission",
    "WorkerSession",
    "suite_hash",
    "kit_root",
    "op_check_outcomes",
]

GRADER_DIR = Path(__file__).resolve().parents[1]
FAILED_CASES_SHOWN = 5


def kit_root() -> Path:
    """The kit's checkout (holding assignments/ and starter/)."""
    return GRADER_DIR.parent


@dataclass
class GradeOptions:
    public: bool = False
    sandbox: str | None = None  # None: the strongest level available
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    secret: bytes | None = None  # None: GRADER_SECRET or the secret file (hidden runs only)
    root: Path | None = None


class WorkerSession:
    """The worker of one submission: started on first use, restarted after it dies, and every
    failure of the student's code turned into :class:`~autograder.opcheck.RequestFailed`."""

    def __init__(self, sandbox: Sandbox, submission: Path, device: str, deadline: float) -> None:
        self.sandbox, self.submission, self.device, self.deadline = (
            sandbox,
            submission,
            device,
            deadline,
        )
        self.worker: Worker | None = None
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        if self.worker is None or not self.worker.alive:
            self.close()
            self.worker = self.sandbox.start(
                self.submission, device=self.device, deadline=self.deadline
            )
            self.hello = self.worker.hello
        return self.hello

    def request(
        self, header: dict[str, Any], arrays: list[np.ndarray], timeout: float | None = None
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        hello = self.start()
        if not hello.get("ok"):
            raise RequestFailed(
                f"tapegrad could not be imported: {hello.get('error')}", "crash", fatal=True
            )
        assert self.worker is not None
        try:
            reply, out = self.worker.request(header, arrays, timeout=timeout)
        except WorkerTimeout as exc:
            self.close()
            raise RequestFailed(str(exc), "timeout", fatal=True) from None
        except WorkerError as exc:
            self.close()
            raise RequestFailed(str(exc), "crash", fatal=True) from None
        if not reply["ok"]:
            err = reply["error"]
            where = f" (at {err['where']})" if err.get("where") else ""
            if err["type"] == "NotImplementedError":
                raise RequestFailed(
                    f"not implemented: {err['message'] or 'NotImplementedError'}{where}",
                    "not_implemented",
                )
            raise RequestFailed(f"{err['type']}: {err['message']}{where}", "crash")
        return reply, out

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __enter__(self) -> WorkerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def suite_hash(assignment: Assignment) -> str:
    """What defines the checks: the assignment file and the grader's own code."""
    h = hashlib.sha256(assignment.path.read_bytes())
    for path in sorted(GRADER_DIR.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _feedback(check: CheckResult) -> str:
    """The Markdown a student reads for one check."""
    if check.error:
        return check.error
    total, passed = len(check.cases), check.cases_passed
    if total and passed == total:
        lines = [f"All {total} cases passed."]
    else:
        lines = [f"Passed {passed} of {total} cases."]
        failed = [c for c in check.cases if not c.passed]
        shown = [c for c in failed if not c.message.startswith("not run: ")]
        for c in shown[:FAILED_CASES_SHOWN]:
            lines.append(f"- {c.message or c.label}")
        if len(failed) > min(len(shown), FAILED_CASES_SHOWN):
            rest = len(failed) - min(len(shown), FAILED_CASES_SHOWN)
            lines.append(
                f"- ... and {rest} more failed case(s)"
                + (" (not run after the failure above)" if len(shown) < len(failed) else "")
            )
        for cls in check.bug_classes:
            lines.append(f"\nLikely bug ({cls.replace('_', ' ')}): {hint(cls)}.")
    accuracy = check.extra.get("accuracy")
    if isinstance(accuracy, (int, float)):
        lines.insert(
            0,
            f"Test accuracy {accuracy:.4f} on {check.extra.get('dataset')} "
            f"(threshold {check.extra.get('threshold')}).",
        )
    return "\n".join(lines)


Outcome = tuple[list[CaseOutcome], dict[str, Any]]
Runner = Callable[[Request, CheckConfig, Assignment, np.random.Generator], Outcome]


def op_check_outcomes(
    request: Request, check: CheckConfig, rng: np.random.Generator
) -> list[CaseOutcome]:
    """Every case of an ``op`` check, for each op it names, as configured."""
    outcomes: list[CaseOutcome] = []
    for op in check.ops:
        outcomes += run_op_check(
            request,
            op,
            rng,
            repeats=check.cases,
            forward=check.forward,
            vjp=check.vjp,
            jvp=check.jvp,
            second_order=check.second_order,
        )
    return outcomes


def _run_op(
    request: Request, check: CheckConfig, a: Assignment, rng: np.random.Generator
) -> Outcome:
    return op_check_outcomes(request, check, rng), {}


def _run_module(
    request: Request, check: CheckConfig, a: Assignment, rng: np.random.Generator
) -> Outcome:
    from .modules import run_module_check

    assert check.probe is not None  # config.py requires it for module checks
    return run_module_check(request, check.probe, rng), {}


def _run_train(
    request: Request, check: CheckConfig, a: Assignment, rng: np.random.Generator
) -> Outcome:
    from autograder.worker.training import load_dataset, run_train_check

    name, train, (test_x, test_y) = load_dataset()  # the test labels stay in this process
    return run_train_check(request, check, name, train, test_x, test_y, check.timeout)


def _run_notebook(
    request: Request, check: CheckConfig, a: Assignment, rng: np.random.Generator
) -> Outcome:
    assert check.notebook and check.grade_id and check.function
    source = a.directory / check.notebook  # the instructor's notebook: the trusted reference
    outcomes = run_notebook_check(
        request, source, check.notebook, check.grade_id, check.function, rng
    )
    return outcomes, {}


RUNNERS: dict[str, Runner] = {
    "op": _run_op,
    "module": _run_module,
    "train": _run_train,
    "notebook": _run_notebook,
}


def _versions(hello: dict[str, Any], device: str) -> dict[str, str]:
    versions = {
        "grader": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
    }
    for key, value in (hello.get("versions") or {}).items():
        versions[f"worker {key}"] = str(value)[:100]
    return versions


def _stage_starter_for_notebook(sub: Submission, root: Path, notes: list[str]) -> None:
    """A lone notebook has no tapegrad/: give the worker the public starter, so notebook cells
    that import tapegrad still run (its stub checks then score 0, saying so)."""
    starter = root / "starter" / "tapegrad"
    if not sub.has_package and starter.is_dir() and any(f.endswith(".ipynb") for f in sub.files):
        shutil.copytree(starter, sub.root / "tapegrad")
        notes.append(
            "the submission has no tapegrad/ package: graded with the released starter "
            "package, whose stubs score 0"
        )


def grade_submission(
    source: str | Path, assignment: str | Assignment, options: GradeOptions | None = None
) -> GradingResult:
    """Grade one submission (a directory, a .zip or a notebook) against ``assignment``."""
    options = options or GradeOptions()
    root = options.root or kit_root()
    a = assignment if isinstance(assignment, Assignment) else load_assignment(assignment, root)
    started = time.monotonic()
    sandbox = make_sandbox(options.sandbox, options.limits)
    seeds: SeedSource = (
        public_seeds(a.public_seed) if options.public else hidden_seeds(options.secret)
    )
    checks = a.public_checks if options.public else a.checks
    result = GradingResult(
        assignment=a.id,
        submission_hash="",
        suite_hash=suite_hash(a),
        seed_derivation=seeds.description,
        public=options.public,
        sandbox=sandbox.level,
        device=options.device,
        started_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        notes=list(sandbox.notes) if sandbox.level != "none" else [],  # reports warn about none
    )
    results = [
        CheckResult(c.id, c.name, c.points, visibility="hidden" if c.hidden else "visible")
        for c in checks
    ]
    result.checks = results
    try:
        sub = collect(source, a.notebooks)
    except SubmissionError as exc:
        result.error = f"the submission could not be read: {exc}"
        for r in results:
            r.error = result.error
        result.wall_time = time.monotonic() - started
        return result
    result.submission_hash = sub.hash
    _stage_starter_for_notebook(sub, root, result.notes)
    deadline = started + a.time_limit
    try:
        with WorkerSession(sandbox, sub.root, options.device, deadline) as session:
            try:
                hello = session.start()
            except WorkerError as exc:  # died or hung while importing the submission
                hello = {"ok": False, "error": str(exc)}
            result.versions = _versions(hello, options.device)
            if not hello.get("ok"):
                result.error = f"tapegrad could not be imported: {hello.get('error')}"
            for check, r in zip(checks, results):
                _grade_check(session, check, a, r, seeds, sub.hash, deadline, result.error)
    finally:
        sub.cleanup()
    result.wall_time = time.monotonic() - started
    return result


def _grade_check(
    session: WorkerSession,
    check: CheckConfig,
    a: Assignment,
    r: CheckResult,
    seeds: SeedSource,
    submission_hash: str,
    deadline: float,
    import_error: str | None,
) -> None:
    t0 = time.monotonic()
    if import_error:
        r.error = import_error
    elif t0 >= deadline:
        r.error = f"not run: grading this submission took longer than its {a.time_limit:g} s limit"
    else:
        rng = np.random.default_rng(seeds.seed(a.id, check.id, submission_hash))
        try:

            def request(header: dict[str, Any], arrays: list[np.ndarray]) -> Any:
                return session.request(header, arrays, timeout=check.timeout)

            r.cases, r.extra = RUNNERS[check.kind](request, check, a, rng)
        except WorkerCrashed as exc:  # the worker could not even be restarted
            r.error = f"the worker could not be started: {exc}"
        except Exception as exc:  # a bug of the grader's: say so, grade the rest
            r.error = (
                f"internal grader error in check {check.id} ({type(exc).__name__}: {exc}); "
                "please report it"
            )
    r.score = 0.0 if r.error or not r.cases else check.points * r.cases_passed / len(r.cases)
    r.wall_time = time.monotonic() - t0
    r.output = _feedback(r)

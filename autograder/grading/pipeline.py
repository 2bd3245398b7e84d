"""The grading pipeline for one submission:

    collect (collect.py) -> run (sandbox.py, channel.py, session.py; the worker zone runs the
    student's code) -> compare (ops.py, modules/, training.py, notebooks.py, diagnose.py) ->
    score (here) -> report (reports/)

:func:`grade_submission` runs the first four and returns a
:class:`~autograder.grading.results.GradingResult`; the command line (``cli.py``) writes the
reports, which are the only author of feedback text. This process never imports the
submission: all student code runs in a worker, and everything the worker returns is judged
here against trusted references.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autograder import __version__
from autograder.config import Assignment, CheckConfig, find_assignment
from autograder.paths import KIT_ROOT, PACKAGE, SAMPLE

from .cases import Request
from .channel import Limits, WorkerCrashed, WorkerError
from .collect import Submission, SubmissionError, collect
from .diagnose import GATES
from .notebooks import recorded_reference, run_notebook_check, solution_reference
from .ops import run_op_check
from .results import CaseOutcome, CheckResult, GradingResult
from .sandbox import make_sandbox
from .seeds import SeedSource, hidden_seeds, public_seeds
from .session import WorkerSession
from .training import load_dataset, run_train_check

__all__ = ["GradeOptions", "grade_submission", "op_check_outcomes", "suite_hash"]

GRADER_DIR = PACKAGE  # the files that define the checks are under it


@dataclass
class GradeOptions:
    public: bool = False
    sandbox: str | None = None  # None: the strongest level available
    device: str = "cpu"
    limits: Limits = field(default_factory=Limits)
    secret: bytes | None = None  # None: GRADER_SECRET or the secret file (hidden runs only)
    root: Path | None = None


def suite_hash(assignment: Assignment) -> str:
    """What defines the checks: the assignment file, the configuration code and every file of
    the worker and grading zones (the worker's calls and the judges alike, recursively), by
    path relative to the package."""
    h = hashlib.sha256(assignment.path.read_bytes())
    files = [GRADER_DIR / "config.py"]
    for zone in ("worker", "grading"):
        files += sorted(
            p for p in (GRADER_DIR / zone).rglob("*.py") if "__pycache__" not in p.parts
        )
    for path in files:
        rel = path.relative_to(GRADER_DIR).as_posix()
        h.update(rel.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


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
    # the kit's own sample (beside the assignments graded), unless MNIST_DIR names other data;
    # the test labels stay in this process
    sample = a.data_root / SAMPLE
    name, train, (test_x, test_y) = load_dataset(default=sample)
    return run_train_check(request, check, name, train, test_x, test_y, check.timeout)


def _run_notebook(
    request: Request, check: CheckConfig, a: Assignment, rng: np.random.Generator
) -> Outcome:
    assert check.notebook and check.grade_id and check.function
    if a.answers_path is None:  # the instructor's notebook: the trusted reference
        reference = solution_reference(
            a.notebook_dir / check.notebook, check.grade_id, check.function
        )
    else:  # a student release: the answers recorded for the public cases
        reference = recorded_reference(_recorded(a.answers_path, check.id), a.answers_path.name)
    outcomes = run_notebook_check(
        request, reference, check.notebook, check.grade_id, check.function, rng
    )
    return outcomes, {}


def _recorded(path: Path, check_id: str) -> list[dict[str, Any]]:
    """One check's answers from a release's ``checks/<id>.answers.json``."""
    try:
        answers = json.loads(path.read_text(encoding="utf-8"))["checks"][check_id]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path.name}: no answers for {check_id} ({type(exc).__name__}: {exc}); "
            "restore the file from your release"
        ) from None
    if not isinstance(answers, list):
        raise ValueError(f"{path.name}: the answers of {check_id} are not a list")
    return answers


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
    root = options.root or KIT_ROOT
    if isinstance(assignment, Assignment):
        a = assignment
    else:
        a = find_assignment(
            assignment, root=options.root, submission=Path(source), public=options.public
        )
    if a.released and not options.public:
        raise ValueError(f"{a.path} holds only public checks: grade it with --public")
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
    gated = any(c.bug_class in GATES for c in r.cases if not c.passed)
    r.score = (
        0.0 if r.error or not r.cases or gated else check.points * r.cases_passed / len(r.cases)
    )
    r.wall_time = time.monotonic() - t0

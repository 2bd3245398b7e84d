"""The catalogue of classic student bugs (``assignments/hw1/bugs.toml``, each a small
textual patch of the reference submission), graded end to end (worker process, randomized
checks, judged in this process): the check the bug belongs to must lose points, and the grader
should name the right bug class.

Every patch must apply exactly once (``apply_patches`` raises otherwise). Each bug is graded
with only the check(s) it concerns (op checks of many ops are narrowed to the relevant op), all
gradings once per session. ``test_bug_classes_named_summary`` prints the table ``bug -> classes
the grader named`` and requires at least 80 % of the entries to be named right: the expected
class, and a diagnosis (the generic "wrong_gradient" names nothing, so its entries count as
misses); the
entries where the grader names something else are listed in ``MISLABELLED`` (strict xfail in
``test_bug_class_named``, with the reason and the proposed grader fix).
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from autograder.authoring.bugs import CATALOGUE_FILE, DEMO_BUGS, Bug, apply_patches, load_catalogue
from autograder.config import Assignment, load_assignment
from autograder.grading.diagnose import BUG_CLASSES
from autograder.grading.pipeline import GradeOptions, grade_submission
from autograder.grading.reports.markdown import check_feedback_md
from autograder.grading.results import CaseOutcome, GradingResult

REPO = Path(__file__).resolve().parents[1]
CATALOGUE = load_catalogue(REPO / "assignments" / "hw1" / CATALOGUE_FILE)
BY_ID = {b.id: b for b in CATALOGUE}
OPTIONS = GradeOptions(public=False, sandbox="none", secret=b"test-secret")
PARALLEL = 4  # gradings at once (each is a worker subprocess; the parent just waits on pipes)


# Entries where the grader names another class than the right one: what it says instead, and
# the proposed fix (in autograder/). Strict xfail: a fix makes them pass. Empty since the fixes
# to diagnose.py and opcheck.py that this catalogue motivated.
MISLABELLED: dict[str, str] = {}


# -- building and grading ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def reference_submission(reference_hw1: Path) -> Path:
    return reference_hw1


@pytest.fixture(scope="session")
def hw1() -> Assignment:
    return load_assignment("hw1", REPO)


def restricted(a: Assignment, bug: Bug) -> Assignment:
    """``a`` with only the bug's check (narrowed to ``bug.ops``) and its unaffected checks."""
    wanted = (bug.check, *bug.unaffected)
    checks = []
    for c in a.checks:
        if c.id in wanted:
            if c.id == bug.check and bug.ops:
                c = dataclasses.replace(c, ops=bug.ops)
            checks.append(c)
    assert {c.id for c in checks} == set(wanted), f"{bug.id}: unknown check id in {wanted}"
    return dataclasses.replace(a, checks=tuple(checks))


@pytest.fixture(scope="session")
def graded(
    reference_submission: Path, hw1: Assignment, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, GradingResult]:
    """Every catalogue entry graded (plus the unpatched reference as ``"<reference>"``)."""
    root = tmp_path_factory.mktemp("patched")
    jobs: dict[str, tuple[Path, Assignment]] = {}
    for bug in CATALOGUE:
        target = root / bug.id
        apply_patches(reference_submission, target, bug.patches)
        jobs[bug.id] = (target, restricted(hw1, bug))
    used = {b.check for b in CATALOGUE} | {c for b in CATALOGUE for c in b.unaffected}
    jobs["<reference>"] = (
        reference_submission,
        dataclasses.replace(hw1, checks=tuple(c for c in hw1.checks if c.id in used)),
    )
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {k: pool.submit(grade_submission, d, a, OPTIONS) for k, (d, a) in jobs.items()}
        return {k: f.result() for k, f in futures.items()}


def check_of(result: GradingResult, check_id: str):  # type: ignore[no-untyped-def]
    (c,) = [c for c in result.checks if c.id == check_id]
    return c


# -- the tests -----------------------------------------------------------------------------------


def test_catalogue_is_well_formed(hw1: Assignment) -> None:
    assert len(CATALOGUE) >= 32
    assert len(BY_ID) == len(CATALOGUE), "duplicate bug ids"
    ids = {c.id for c in hw1.checks}
    for bug in CATALOGUE:
        assert bug.expected in BUG_CLASSES, bug.id
        assert bug.check in ids and set(bug.unaffected) <= ids, bug.id
        assert bug.check not in bug.unaffected
    assert set(MISLABELLED) <= set(BY_ID)


def test_demo_bugs_are_catalogue_entries_that_apply_together(
    reference_submission: Path, tmp_path: Path
) -> None:
    """``make demo`` plants DEMO_BUGS in one submission: their patches must apply together."""
    assert len(DEMO_BUGS) == 3 and set(DEMO_BUGS) <= set(BY_ID)
    patches = [p for bug in DEMO_BUGS for p in BY_ID[bug].patches]
    apply_patches(reference_submission, tmp_path / "demo", patches)
    with pytest.raises(ValueError, match=r"tapegrad/ops\.py"):
        apply_patches(tmp_path / "demo", tmp_path / "again", patches)  # already planted


def test_reference_gets_full_marks_on_every_check_used(graded: dict[str, GradingResult]) -> None:
    """The control: without a bug, every check the catalogue relies on gives full marks."""
    result = graded["<reference>"]
    assert result.error is None
    for c in result.checks:
        assert c.error is None and c.score == c.max_score, (c.id, check_feedback_md(c))


@pytest.mark.parametrize("bug", CATALOGUE, ids=lambda b: b.id)
def test_bug_loses_points(bug: Bug, graded: dict[str, GradingResult]) -> None:
    result = graded[bug.id]
    assert result.error is None, result.error
    target = check_of(result, bug.check)
    assert target.score < target.max_score, f"{bug.id}: {bug.check} still at full marks"
    assert target.cases_passed < len(target.cases) or target.error
    for other in bug.unaffected:
        c = check_of(result, other)
        assert c.score == c.max_score, f"{bug.id} should not affect {other}: {check_feedback_md(c)}"


_GRADIENT_CASE = re.compile(r"input shapes (.*?)\): gradient of input (\d+):")


def _vacuous(case: CaseOutcome) -> bool:
    """A one-element gradient is always a multiple of the expected one, so "constant factor"
    or "sign flipped" said of it carries no information: such cases are not counted."""
    m = _GRADIENT_CASE.search(case.message)
    if case.bug_class not in ("constant_factor", "sign_flipped") or not m:
        return False
    shapes = ast.literal_eval(f"[{m.group(1)}]")
    return math.prod(shapes[int(m.group(2))]) == 1


def named_classes(result: GradingResult, check_id: str) -> list[str]:
    """The bug classes the failed cases of ``check_id`` name (vacuous ones left out)."""
    seen: list[str] = []
    for case in check_of(result, check_id).cases:
        if not case.passed and case.bug_class and not _vacuous(case) and case.bug_class not in seen:
            seen.append(case.bug_class)
    return seen


# says that something is wrong, not what: an entry whose expected class is one of these is
# graded right but not diagnosed
UNDIAGNOSED = frozenset({"wrong_gradient"})


def _named(bug: Bug, result: GradingResult) -> bool:
    return bug.expected in named_classes(result, bug.check)


@pytest.mark.parametrize(
    "bug",
    [
        pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=MISLABELLED[b.id]))
        if b.id in MISLABELLED
        else b
        for b in CATALOGUE
    ],
    ids=lambda b: b.id,
)
def test_bug_class_named(bug: Bug, graded: dict[str, GradingResult]) -> None:
    c = check_of(graded[bug.id], bug.check)
    assert _named(bug, graded[bug.id]), (
        f"{bug.id}: expected {bug.expected}, got {c.bug_classes}: {check_feedback_md(c)}"
    )


def test_bug_classes_named_summary(graded: dict[str, GradingResult]) -> None:
    rows, hits = [], 0
    for bug in CATALOGUE:
        c = check_of(graded[bug.id], bug.check)
        ok = _named(bug, graded[bug.id]) and bug.expected not in UNDIAGNOSED
        hits += ok
        got = ", ".join(named_classes(graded[bug.id], bug.check)) or "-"
        vacuous = [k.bug_class for k in c.cases if not k.passed and _vacuous(k)]
        rows.append(
            f"{'ok  ' if ok else 'MISS'} {bug.id:30} {bug.check:26} "
            f"{c.score:6.3g}/{c.max_score:g}  "
            f"expected {bug.expected:27} got {got}"
            + (f"  (+ one-element: {', '.join(sorted(set(vacuous)))})" if vacuous else "")
        )
    share = hits / len(CATALOGUE)
    print(
        "\n"
        + "\n".join(rows)
        + f"\n{hits}/{len(CATALOGUE)} = {share:.0%} named right (the expected class, and not "
        f"{'/'.join(sorted(UNDIAGNOSED))})"
    )
    assert share >= 0.8


def test_relu_mask_ge_is_not_a_bug_on_the_domain(
    reference_submission: Path, hw1: Assignment, tmp_path: Path
) -> None:
    """``a >= 0`` instead of ``a > 0`` differs only at the kink, which the inputs avoid (the
    'nonzero' domain): full marks, as intended."""
    target = tmp_path / "relu_ge"
    apply_patches(
        reference_submission,
        target,
        (("ops.py", "Tensor._make(a.data > 0, a.device)", "Tensor._make(a.data >= 0, a.device)"),),
    )
    a = dataclasses.replace(hw1, checks=tuple(c for c in hw1.checks if c.id == "ops.relu"))
    (c,) = grade_submission(target, a, OPTIONS).checks
    assert c.score == c.max_score, check_feedback_md(c)


def test_one_element_gradient_is_not_called_a_constant_factor(
    graded: dict[str, GradingResult],
) -> None:
    """Any one-element gradient is a multiple of the expected one: "constant_factor" (or
    "sign_flipped") said of it is vacuous, and hides the real class (here the scalar case of a
    tanh backward 1 - y, and of a reused node that is not accumulated)."""
    for bug_id, right in (
        ("tanh_backward_one_minus_y", "wrong_local_derivative"),
        ("backprop_overwrites", "no_accumulation"),
    ):
        bug = BY_ID[bug_id]
        (scalar,) = [c for c in check_of(graded[bug_id], bug.check).cases if c.label == "scalar"]
        assert not scalar.passed
        assert scalar.bug_class == right, f"{bug_id}: the scalar case says {scalar.bug_class}"

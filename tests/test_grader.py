"""The grader end to end: the reference gets full marks (over 200 seeds of every op check),
the unmodified starter gets zero with "not implemented" feedback, hidden seeds are
reproducible per submission and secret, and --public runs only the public checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tapegrad as tg

from autograder.authoring.reference import build_reference
from autograder.authoring.release import build_release
from autograder.config import assignment_ids, load_assignment
from autograder.grading.cases import RequestFailed
from autograder.grading.modules import run_module_check
from autograder.grading.pipeline import GradeOptions, grade_submission, op_check_outcomes
from autograder.grading.reports import write_reports
from autograder.grading.reports.markdown import check_feedback_md
from autograder.grading.sandbox import LEVELS
from autograder.grading.seeds import hidden_seeds, public_seeds
from autograder.paths import KIT_ROOT
from autograder.worker.handlers import HANDLERS

SEEDS = 200
HW1 = load_assignment("hw1")
SECRET = b"grader-test-secret"


def in_process(
    header: dict[str, Any], arrays: list[np.ndarray]
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The worker's handlers called directly on the reference (same probes, no transport)."""
    try:
        return HANDLERS[header["type"]](tg, header, [a.copy() for a in arrays])
    except NotImplementedError as exc:
        raise RequestFailed(f"not implemented: {exc}", "not_implemented") from None
    except Exception as exc:
        raise RequestFailed(f"{type(exc).__name__}: {exc}", "crash") from None


@pytest.mark.hw1
@pytest.mark.parametrize("check", [c for c in HW1.checks if c.kind == "op"], ids=lambda c: c.id)
def test_reference_passes_every_op_check_over_200_seeds(check: Any) -> None:
    failures = []
    for seed in range(SEEDS):
        rng = np.random.default_rng([seed, 7])
        for outcome in op_check_outcomes(in_process, check, rng):
            if not outcome.passed:
                failures.append(f"seed {seed}: {outcome.message}")
    assert not failures, f"{len(failures)} false failures, e.g.\n" + "\n".join(failures[:5])


SECOND_ORDER_CHECKS = [
    c for aid in assignment_ids(KIT_ROOT) for c in load_assignment(aid).checks if c.second_order
]


@pytest.mark.parametrize("check", SECOND_ORDER_CHECKS, ids=lambda c: c.id)
def test_reference_passes_every_second_order_check_over_1000_seeds(check: Any) -> None:
    """The expected H v is a difference of finite-difference gradients, the least exact
    reference of the suite: its tolerance must hold on every draw (conv2d squared failed 1.6%
    of the time before the tolerance scaled with the values)."""
    failures = []
    for seed in range(1000):
        rng = np.random.default_rng([seed, 13])
        for outcome in op_check_outcomes(in_process, check, rng):
            if not outcome.passed:
                failures.append(f"seed {seed}: {outcome.message}")
    assert not failures, f"{len(failures)} false failures, e.g.\n" + "\n".join(failures[:5])


ASSIGNMENTS = assignment_ids(KIT_ROOT)


MODULE_CHECKS = [
    c for aid in ("hw2", "hw3", "hw4") for c in load_assignment(aid).checks if c.kind == "module"
]


@pytest.mark.hw2
@pytest.mark.parametrize("check", MODULE_CHECKS, ids=lambda c: c.id)
def test_reference_passes_every_module_check_over_200_seeds(check: Any) -> None:
    failures = []
    for seed in range(SEEDS):
        rng = np.random.default_rng([seed, 11])
        for outcome in run_module_check(in_process, check.probe, rng, cases=check.cases):
            if not outcome.passed:
                failures.append(f"seed {seed}: {outcome.message}")
    assert not failures, f"{len(failures)} false failures, e.g.\n" + "\n".join(failures[:5])


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """The reference submission and the student release of every assignment."""
    out: dict[tuple[str, str], Path] = {}
    base = tmp_path_factory.mktemp("submissions")
    for aid in ASSIGNMENTS:
        out["reference", aid] = base / f"reference-{aid}"
        build_reference(aid, KIT_ROOT, out["reference", aid])
        out["release", aid] = base / f"release-{aid}"
        build_release(aid, KIT_ROOT, out["release", aid])
    return out


@pytest.fixture(scope="module")
def reference_hw1(built: dict[tuple[str, str], Path]) -> Path:
    return built["reference", "hw1"]


# Every level that works here (the container level needs an image: tests/test_image.py).
LEVELS_HERE = [name for name, cls in LEVELS.items() if name != "container" and cls.available()]


@pytest.mark.parametrize("level", LEVELS_HERE)
@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_reference_submission_gets_full_marks_end_to_end(
    aid: str, level: str, built: dict[tuple[str, str], Path], tmp_path: Path
) -> None:
    assignment = load_assignment(aid)
    result = grade_submission(
        built["reference", aid], aid, GradeOptions(sandbox=level, secret=SECRET)
    )
    assert result.error is None
    lost = [(c.id, check_feedback_md(c)) for c in result.checks if c.score < c.max_score]
    assert not lost, lost
    assert result.score == pytest.approx(assignment.total_points)
    assert result.submission_hash and result.suite_hash
    assert result.seed_derivation.startswith("hmac-sha256:")
    assert result.versions["numpy"] and result.sandbox == level
    assert all(c.wall_time >= 0 for c in result.checks)
    paths = write_reports(result, tmp_path)
    data = json.loads(paths["gradescope"].read_text())
    assert data["score"] == pytest.approx(assignment.total_points)
    assert len(data["tests"]) == len(assignment.checks)


@pytest.mark.parametrize("level", LEVELS_HERE)
@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_starter_release_gets_zero_and_says_not_implemented(
    aid: str, level: str, built: dict[tuple[str, str], Path]
) -> None:
    result = grade_submission(
        built["release", aid], aid, GradeOptions(sandbox=level, secret=SECRET)
    )
    assert result.error is None  # the starter imports: its stubs raise when called
    assert result.score == 0
    for check in result.checks:
        assert check.score == 0, check.id
        assert check.cases and all(not c.passed for c in check.cases), check.id
        assert "not implemented" in check_feedback_md(check).lower(), (
            check.id,
            check_feedback_md(check),
        )
        assert "not_implemented" in check.bug_classes, check.id


def test_hidden_seeds_depend_on_secret_and_submission_and_reproduce() -> None:
    a, b = hidden_seeds(b"one"), hidden_seeds(b"two")
    assert a.seed("hw1", "ops.mul", "h1") == a.seed("hw1", "ops.mul", "h1")
    assert a.seed("hw1", "ops.mul", "h1") != a.seed("hw1", "ops.mul", "h2")
    assert a.seed("hw1", "ops.mul", "h1") != a.seed("hw1", "ops.add", "h1")
    assert a.seed("hw1", "ops.mul", "h1") != b.seed("hw1", "ops.mul", "h1")
    assert a.description != b.description and "one" not in a.description
    p = public_seeds(HW1.public_seed)
    assert p.seed("hw1", "ops.mul", "h1") == p.seed("hw1", "ops.mul", "h2")  # public: same for all


def test_regrade_reproduces_exactly_and_public_runs_public_checks(reference_hw1: Path) -> None:
    a = HW1
    subset = tuple(
        c for c in a.checks if c.id in ("ops.mul", "ops.softmax", "autodiff.second_order")
    )
    import dataclasses

    small = dataclasses.replace(a, checks=subset)
    r1 = grade_submission(reference_hw1, small, GradeOptions(sandbox="none", secret=SECRET))
    r2 = grade_submission(reference_hw1, small, GradeOptions(sandbox="none", secret=SECRET))
    assert [c.to_dict()["cases"] for c in r1.checks] == [c.to_dict()["cases"] for c in r2.checks]
    assert r1.seed_derivation == r2.seed_derivation
    public = grade_submission(reference_hw1, "hw1", GradeOptions(sandbox="none", public=True))
    assert {c.id for c in public.checks} == {c.id for c in a.public_checks}
    assert public.seed_derivation == f"public:{a.public_seed}"
    assert all(c.visibility == "visible" for c in public.checks)


def test_suite_hash_covers_every_file_of_the_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Editing any file that defines the checks, however deep (a module probe's judge, a
    worker runner, the config code), changes the recorded suite hash; the instructor's tools
    and the reports do not define checks."""
    from autograder.grading import pipeline

    copy = tmp_path / "autograder"
    shutil.copytree(pipeline.GRADER_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(pipeline, "GRADER_DIR", copy)
    hw1 = load_assignment("hw1", KIT_ROOT)
    before = pipeline.suite_hash(hw1)
    assert pipeline.suite_hash(hw1) == before  # deterministic
    for rel in (
        "grading/modules/layers.py",
        "worker/modules/optim.py",
        "worker/opspecs.py",
        "config.py",
    ):
        path = copy / rel
        original = path.read_text()
        path.write_text(original + "\n# edited\n")
        assert pipeline.suite_hash(hw1) != before, rel
        path.write_text(original)
    assert pipeline.suite_hash(hw1) == before
    (copy / "authoring" / "starter.py").write_text("# not a check\n")
    assert pipeline.suite_hash(hw1) == before

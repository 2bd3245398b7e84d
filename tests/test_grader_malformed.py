"""Malformed submissions, graded end to end with ``grade_submission``: whatever the student
hands in, the grader returns a GradingResult with a clear message and zero points for what
broke (never an exception), keeps grading the rest with a fresh worker when one dies, and
never imports student code in this (the trusted) process. Also the exit codes of ``grade``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from autograder.cli import main as grade_main
from autograder.config import Assignment, load_assignment
from autograder.grading.channel import Limits
from autograder.grading.pipeline import GradeOptions, grade_submission
from autograder.grading.reports.markdown import check_feedback_md
from autograder.grading.results import CheckResult, GradingResult

REPO = Path(__file__).resolve().parents[1]
OPTIONS = GradeOptions(public=False, sandbox="none", secret=b"test-secret")
OPS = ("ops.exp", "ops.add")  # a broken exp, and an unrelated check graded after it


@pytest.fixture(scope="module")
def reference(reference_hw1: Path) -> Path:
    return reference_hw1


@pytest.fixture(scope="module")
def hw1() -> Assignment:
    return load_assignment("hw1", REPO)


def only(a: Assignment, ids: tuple[str, ...], timeout: float | None = None) -> Assignment:
    """``a`` with just the checks ``ids`` (in that order), optionally with a request timeout."""
    by_id = {c.id: c for c in a.checks}
    checks = [
        by_id[i] if timeout is None else dataclasses.replace(by_id[i], timeout=timeout) for i in ids
    ]
    return dataclasses.replace(a, checks=tuple(checks))


def patched(reference: Path, target: Path, *patches: tuple[str, str, str]) -> Path:
    """A copy of the reference with each (file under tapegrad/, old, new) applied exactly once."""
    shutil.copytree(reference, target)
    for file, old, new in patches:
        path = target / "tapegrad" / file
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == 1, f"{file}: {old!r} occurs {text.count(old)} times"
        path.write_text(text.replace(old, new), encoding="utf-8")
    return target


def grade(source: Path, a: Assignment) -> GradingResult:
    result = grade_submission(source, a, OPTIONS)  # must never raise
    assert isinstance(result, GradingResult)
    assert [c.id for c in result.checks] == [c.id for c in a.checks]
    return result


def check(result: GradingResult, check_id: str) -> CheckResult:
    (c,) = [c for c in result.checks if c.id == check_id]
    return c


def messages(c: CheckResult) -> str:
    """Everything the student reads about one check."""
    return "\n".join([c.error or "", check_feedback_md(c), *(k.message for k in c.cases)])


def assert_zero(c: CheckResult, *needles: str) -> None:
    assert c.score == 0, f"{c.id}: {c.score}/{c.max_score}"
    text = messages(c)
    for needle in needles:
        assert needle in text, f"{c.id}: {needle!r} not in\n{text}"


def assert_full(c: CheckResult) -> None:
    assert c.error is None and c.score == c.max_score, (
        f"{c.id}: {c.score}/{c.max_score}\n{messages(c)}"
    )


# -- no package, no import --------------------------------------------------------------------


@pytest.mark.parametrize("content", ["empty", "readme"])
def test_missing_package(content: str, hw1: Assignment, tmp_path: Path) -> None:
    sub = tmp_path / "sub"
    sub.mkdir()
    if content == "readme":
        (sub / "README.md").write_text("my homework\n")
    result = grade(sub, only(hw1, OPS))
    assert result.error and "no tapegrad package" in result.error
    assert "tapegrad/__init__.py" in result.error
    for c in result.checks:
        assert_zero(c, "no tapegrad package")


def test_syntax_error_in_ops(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", "def exp(x: Tensor) -> Tensor:", "def exp(x: Tensor) -> Tensor"),
    )
    result = grade(sub, only(hw1, OPS))
    assert result.error and "SyntaxError" in result.error and "tapegrad/ops.py" in result.error
    assert "def exp(x: Tensor) -> Tensor" in result.error  # the offending line is shown
    for c in result.checks:
        assert_zero(c, "SyntaxError")


def test_import_of_a_missing_module(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        (
            "__init__.py",
            "from . import data, ops\n",
            "from . import data, ops\nimport numpyy_typo\n",
        ),
    )
    result = grade(sub, only(hw1, OPS))
    assert result.error and "ModuleNotFoundError" in result.error and "numpyy_typo" in result.error
    assert "tapegrad/__init__.py" in result.error
    for c in result.checks:
        assert_zero(c, "numpyy_typo")


@pytest.mark.parametrize(
    "fixture",
    ["import_error", "raise_at_import", "wrong_tapegrad", "exit_at_import", "loop_at_import"],
)
def test_broken_imports_from_the_sandbox_fixtures(fixture: str, hw1: Assignment) -> None:
    """The worker's import fails, exits (os._exit(3)) or hangs (a short start timeout here)."""
    options = dataclasses.replace(OPTIONS, limits=Limits(start_timeout=2.0))
    result = grade_submission(
        REPO / "tests" / "fixtures" / "submissions" / fixture, only(hw1, OPS), options
    )
    assert result.error and result.error.startswith("tapegrad could not be imported"), result.error
    for c in result.checks:
        assert_zero(c, "could not be imported")


# -- ops that misbehave ---------------------------------------------------------------------------

EXP = "def exp(x: Tensor) -> Tensor:\n    return Exp()(x)\n"
EXP_FORWARD = "        return self.xp.exp(a)\n"
EXP_BACKWARD = "        return (gy * self.output,)\n"


def test_wrong_signature(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference, tmp_path / "sub", ("ops.py", EXP, "def exp(x, y):\n    return Exp()(x)\n")
    )
    result = grade(sub, only(hw1, OPS))
    assert result.error is None
    assert_zero(
        check(result, "ops.exp"), "TypeError", "exp() missing 1 required positional argument"
    )
    assert all(k.bug_class == "crash" for k in check(result, "ops.exp").cases)
    assert_full(check(result, "ops.add"))


def test_op_returns_a_list(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", EXP, "def exp(x: Tensor):\n    return Exp()(x).numpy().tolist()\n"),
    )
    result = grade(sub, only(hw1, OPS))
    assert_zero(check(result, "ops.exp"), "exp returned list, expected a tapegrad Tensor")
    assert_full(check(result, "ops.add"))


def test_op_returns_the_wrong_shape(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        (
            "ops.py",
            EXP,
            "def exp(x: Tensor) -> Tensor:\n    return reshape(Exp()(x), (1,) + x.shape)\n",
        ),
    )
    result = grade(sub, only(hw1, OPS))
    c = check(result, "ops.exp")
    assert_zero(c, "shape (1, 3, 5), expected (3, 5)")
    assert {k.bug_class for k in c.cases} == {"wrong_shape"}


def test_op_returns_integers(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", EXP_FORWARD, "        return self.xp.exp(a).astype(np.int64)\n"),
    )
    result = grade(sub, only(hw1, OPS))
    c = check(result, "ops.exp")
    assert_zero(c)
    assert c.bug_classes, check_feedback_md(c)
    assert set(c.bug_classes) <= {"wrong_dtype", "wrong_forward"}, c.bug_classes
    assert "int64" in messages(c), "the feedback should say the result is int64"


# (where the patch goes, what replaces it, what the feedback must say, the bug class)
BROKEN_EXP = {
    "nan output": (EXP_FORWARD, "        return self.xp.exp(a) * np.nan\n",
                   ("contains NaN or inf",), "nan_inf"),
    "exception in backward": (EXP_BACKWARD, "        raise RuntimeError('boom in backward')\n",
                              ("RuntimeError: boom in backward", "tapegrad/ops.py:", "in backward"),
                              "crash"),
    "sys.exit in forward": (EXP_FORWARD, "        import sys\n        sys.exit(3)\n",
                            ("SystemExit",), "crash"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN_EXP))
def test_broken_exp_loses_its_points_and_the_next_check_is_graded(
    case: str, reference: Path, hw1: Assignment, tmp_path: Path
) -> None:
    where, replacement, says, bug_class = BROKEN_EXP[case]
    sub = patched(reference, tmp_path / "sub", ("ops.py", where, replacement))
    result = grade(sub, only(hw1, OPS))
    c = check(result, "ops.exp")
    if where == EXP_BACKWARD:  # forward mode does not use backward: its cases keep their share
        reverse = [k for k in c.cases if not k.label.startswith("jvp: ")]
        assert reverse and not any(k.passed for k in reverse), check_feedback_md(c)
        assert all(k.passed for k in c.cases if k.label.startswith("jvp: "))
        assert c.score < c.max_score
        for needle in says:
            assert needle in messages(c), (needle, messages(c))
    else:
        assert_zero(c, *says)
    assert set(c.bug_classes) == {bug_class}
    assert_full(check(result, "ops.add"))


def test_infinite_loop_in_backward_times_out(
    reference: Path, hw1: Assignment, tmp_path: Path
) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", EXP_BACKWARD, "        while True:\n            pass\n"),
    )
    result = grade(sub, only(hw1, OPS, timeout=2.0))
    c = check(result, "ops.exp")
    assert_zero(c, "no answer to request 'op' within 2 s", "infinite loop")
    assert set(c.bug_classes) == {"timeout"}
    assert c.wall_time < 10, "the remaining cases must not each wait for the timeout"
    assert_full(check(result, "ops.add"))  # a fresh worker


def test_os_exit_in_backward_then_a_fresh_worker(
    reference: Path, hw1: Assignment, tmp_path: Path
) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", EXP_BACKWARD, "        import os\n        os._exit(1)\n"),
    )
    result = grade(sub, only(hw1, ("ops.exp", "ops.add", "ops.mul")))
    c = check(result, "ops.exp")
    assert_zero(c, "the worker exited with code 1")
    assert set(c.bug_classes) == {"crash"}
    assert_full(check(result, "ops.add"))
    assert_full(check(result, "ops.mul"))


def test_output_flood_is_still_graded(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    sub = patched(
        reference,
        tmp_path / "sub",
        ("ops.py", EXP_FORWARD, "        print('x' * 10_000_000)\n        return self.xp.exp(a)\n"),
    )
    result = grade(sub, only(hw1, OPS))
    assert result.error is None
    for c in result.checks:
        assert_full(c)


# -- archives and notebooks ------------------------------------------------------------------------


def _zip(directory: Path, target: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as z:
        for p in sorted(directory.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                z.write(p, prefix + p.relative_to(directory).as_posix())
    return target


@pytest.mark.parametrize("prefix", ["", "hw1-alice/"])
def test_valid_zip(prefix: str, reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    result = grade(
        _zip(reference, tmp_path / "sub.zip", prefix),
        only(hw1, (*OPS, "notebook.numerical_derivative")),
    )
    assert result.error is None
    for c in result.checks:
        assert_full(c)


def test_invalid_zip_bytes(hw1: Assignment, tmp_path: Path) -> None:
    bad = tmp_path / "sub.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file" * 10)
    result = grade(bad, only(hw1, OPS))
    assert (
        result.error
        and "could not be read" in result.error
        and "not a valid zip file" in result.error
    )
    for c in result.checks:
        assert_zero(c, "not a valid zip file")


def test_zip_with_parent_path_is_refused(reference: Path, hw1: Assignment, tmp_path: Path) -> None:
    target = tmp_path / "inner" / "sub.zip"
    target.parent.mkdir()
    _zip(reference, target)
    with zipfile.ZipFile(target, "a") as z:
        z.writestr("../evil.py", "print('escaped')\n")
    result = grade(target, only(hw1, OPS))
    assert result.error and "unsafe path in zip" in result.error and "../evil.py" in result.error
    for c in result.checks:
        assert_zero(c, "unsafe path")
    assert not list(tmp_path.rglob("evil.py"))


def test_lone_notebook(hw1: Assignment, tmp_path: Path) -> None:
    notebook = tmp_path / "my-hw1.ipynb"
    shutil.copyfile(REPO / "assignments" / "hw1" / "hw1.ipynb", notebook)
    result = grade(
        notebook, only(hw1, ("notebook.numerical_derivative", "notebook.dual_numbers", *OPS))
    )
    assert result.error is None
    assert any("no tapegrad/ package" in n and "score 0" in n for n in result.notes), result.notes
    assert_full(check(result, "notebook.numerical_derivative"))
    assert_full(check(result, "notebook.dual_numbers"))
    for op in OPS:
        c = check(result, op)
        assert_zero(c, "not implemented")
        assert set(c.bug_classes) == {"not_implemented"}


def test_notebook_tracer_without_accumulation_loses_the_reused_cases(
    hw1: Assignment, tmp_path: Path
) -> None:
    """hw1's scalar Var with the classic bug (= instead of += in backward): the cases with a
    reused node fail, one used once passes; the other graded cells keep their points."""
    text = (REPO / "assignments" / "hw1" / "hw1.ipynb").read_text(encoding="utf-8")
    right = "child.grad += local * node.grad"
    assert text.count(right) == 1
    notebook = tmp_path / "hw1.ipynb"
    notebook.write_text(text.replace(right, "child.grad = local * node.grad"), encoding="utf-8")
    result = grade(notebook, only(hw1, ("notebook.scalar_var", "notebook.forward_trace")))
    c = check(result, "notebook.scalar_var")
    failed = {k.label for k in c.cases if not k.passed}
    assert "Y = X + X, Z = Y + X" in failed and "diamond: a = x y, b = a + x, a * b" in failed
    assert "log(x) * exp(y), each input used once" not in failed
    assert 0 < c.score < c.max_score
    assert_full(check(result, "notebook.forward_trace"))


# -- the parent never imports student code --------------------------------------------------------


def test_student_code_runs_only_in_the_worker(
    reference: Path, hw1: Assignment, tmp_path: Path
) -> None:
    marker = tmp_path / "imported-by.txt"
    sub = patched(
        reference,
        tmp_path / "sub",
        (
            "__init__.py",
            "from . import data, ops\n",
            f"import os as _os\nwith open({str(marker)!r}, 'a') as _f:\n"
            "    _f.write(str(_os.getpid()) + '\\n')\n"
            "from . import data, ops\n",
        ),
    )
    result = grade(sub, only(hw1, ("ops.exp",)))
    assert_full(result.checks[0])
    pids = {int(line) for line in marker.read_text().split()}  # the worker did import it
    assert pids and os.getpid() not in pids
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        assert not path.startswith(str(sub)), f"{name} was imported from the submission: {path}"
        assert "tapegrad-submission-" not in path, (
            f"{name} was imported from a staged submission: {path}"
        )


# -- the grade command ----------------------------------------------------------------------------


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADER_SECRET", "test-secret")


def test_cli_completed_grading_of_a_broken_submission_exits_0(
    secret: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "sub").mkdir()
    assert (
        grade_main(
            [
                str(tmp_path / "sub"),
                "--assignment",
                "hw1",
                "--sandbox",
                "none",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 0
    )
    assert (tmp_path / "out" / "results.json").is_file()
    assert "no tapegrad package" in (tmp_path / "out" / "report.md").read_text()


def test_cli_missing_submission_exits_2(
    secret: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grade_main([str(tmp_path / "nope"), "--assignment", "hw1", "--sandbox", "none"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_unknown_assignment_exits_2(
    secret: None, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grade_main([str(reference), "--assignment", "hw99", "--sandbox", "none"]) == 2
    assert "hw99" in capsys.readouterr().err


def test_cli_fail_under_exits_1_on_full_marks(
    secret: None, reference: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        grade_main(
            [str(reference), "--assignment", "hw1", "--sandbox", "none", "--fail-under", "101"]
        )
        == 1
    )
    captured = capsys.readouterr()
    assert "100.0/100.0" in captured.out
    assert "below --fail-under 101" in captured.err

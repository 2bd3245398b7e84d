"""A student's repository, as a student and their CI job use it: the release of hw1, the grader
installed from the kit's wheel into a fresh virtual environment (no checkout, no instructor
file), and the release's own CI files executed step by step in a fresh directory.

* the untouched release: the public tests fail, ``grade --public`` scores 0 and exits 1 under
  ``--fail-under``, the job summary says so;
* a finished release (the reference package and notebook copied in): every step passes with
  every public point;
* without the grader's requirement the public-checks step is skipped with a notice.

The venv installs NumPy, Jinja2 and pytest from the package index (or pip's cache).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from autograder.authoring.image import build_wheels
from autograder.authoring.reference import build_reference
from autograder.authoring.release import build_release
from autograder.config import load_assignment
from autograder.paths import KIT_ROOT

ASSIGNMENT = "hw1"
PUBLIC_POINTS = sum(c.points for c in load_assignment(ASSIGNMENT, KIT_ROOT).public_checks)


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The kit's wheel, a fresh venv with nothing installed, the release and the reference."""
    base = tmp_path_factory.mktemp("student")
    (wheel,) = [
        w
        for w in build_wheels(KIT_ROOT, base / "wheel", deps=False)
        if w.name.startswith("tapegrad_kit-")
    ]
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    build_release(ASSIGNMENT, KIT_ROOT, base / "release")
    build_reference(ASSIGNMENT, KIT_ROOT, base / "reference")
    return {
        "wheel": wheel,
        "venv": venv,
        "release": base / "release",
        "reference": base / "reference",
    }


def _fresh_copy(kit: dict[str, Path], dest: Path, finished: bool) -> Path:
    """A fresh clone of the student's repository; ``finished``: the work done (the reference
    package and notebook in place of the stubs)."""
    shutil.copytree(kit["release"], dest)
    if finished:
        shutil.rmtree(dest / "tapegrad")
        shutil.copytree(kit["reference"] / "tapegrad", dest / "tapegrad")
        for notebook in kit["reference"].glob("*.ipynb"):
            shutil.copy2(notebook, dest / notebook.name)
    return dest


def _environment(kit: dict[str, Path], extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "PIP_"))
    }
    env["PATH"] = f"{kit['venv'] / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["VIRTUAL_ENV"] = str(kit["venv"])
    env.update(extra)
    return env


_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _github_value(text: str, variables: dict[str, str]) -> str:
    """Evaluate the only expressions the workflow's env uses: ``vars.X || 'default'``."""

    def evaluate(match: re.Match[str]) -> str:
        for alternative in match.group(1).split("||"):
            alternative = alternative.strip()
            if alternative.startswith("vars."):
                value = variables.get(alternative[5:], "")
            else:
                value = alternative.strip("'")
            if value:
                return value
        return ""

    return _EXPRESSION.sub(evaluate, text)


def run_github_workflow(
    repo: Path, kit: dict[str, Path], variables: dict[str, str]
) -> tuple[list[tuple[str, int]], Path]:
    """Execute ``.github/workflows/grade.yml``'s steps in ``repo`` as a runner would: the
    workflow's env, bash -eo pipefail, a step without ``if`` skipped after a failure, ``if:
    ${{ !cancelled() }}`` run anyway; ``uses:`` steps (checkout, setup-python, upload) are the
    fresh copy and the venv. Returns (step name, exit status) and the step summary file."""
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "grade.yml").read_text())
    summary = repo.parent / f"{repo.name}-step-summary.md"
    summary.write_text("")
    env = {k: _github_value(str(v), variables) for k, v in workflow["env"].items()}
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    (job,) = workflow["jobs"].values()
    failed = False
    statuses = []
    for step in job["steps"]:
        if "run" not in step:
            continue
        condition = str(step.get("if", "success()"))
        assert condition in ("success()", "${{ !cancelled() }}"), condition
        if failed and condition == "success()":
            statuses.append((step["name"], -1))
            continue
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=repo, env=_environment(kit, env), capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        statuses.append((step["name"], done.returncode))
        failed = failed or done.returncode != 0
        if step["name"] == "install":
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return statuses, summary


def run_gitlab_jobs(repo: Path, kit: dict[str, Path], grader: str) -> dict[str, int]:
    """Execute ``.gitlab-ci.yml``'s jobs in ``repo``: its variables, ``before_script`` then
    ``script``, each line under ``bash -e`` as GitLab's shell runs them."""
    ci = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    variables = {k: str(v) for k, v in ci["variables"].items()}
    variables["TAPEGRAD_GRADER"] = grader  # a project variable overrides the file's value
    before = ci["default"]["before_script"]
    statuses = {}
    for name in ("public-tests", "public-checks"):
        script = "\n".join([*before, *ci[name]["script"]])
        done = subprocess.run(
            ["bash", "-e", "-c", script], cwd=repo, env=_environment(kit, variables),
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        statuses[name] = done.returncode
    return statuses


def _summary_score(text: str) -> tuple[float, float]:
    """The score in the step summary's first line, ``## hw1: 0.0 / 86.0``."""
    match = re.match(rf"## {ASSIGNMENT}: ([\d.]+) / ([\d.]+)\n", text)
    assert match, text[:200]
    return float(match.group(1)), float(match.group(2))


def _results(repo: Path) -> dict:
    return json.loads((repo / "grade-report" / "results.json").read_text())


def test_the_untouched_release_fails_its_ci_with_a_score_of_0(
    kit: dict[str, Path], tmp_path: Path
) -> None:
    repo = _fresh_copy(kit, tmp_path / "repo", finished=False)
    statuses, summary = run_github_workflow(repo, kit, {"TAPEGRAD_GRADER": str(kit["wheel"])})
    status = dict(statuses)
    assert status["install"] == 0
    assert status["public tests"] != 0  # the stubs raise NotImplementedError
    assert status["public autograder checks"] == 1  # graded, below --fail-under
    results = _results(repo)
    assert results["score"] == 0
    assert len(results["tests"]) == len(load_assignment(ASSIGNMENT, KIT_ROOT).public_checks)
    assert {t["status"] for t in results["tests"]} == {"failed"}
    text = summary.read_text()
    assert _summary_score(text) == (0, PUBLIC_POINTS)
    assert "<details>" in text and "not implemented" in text.lower()
    # the grader came from the wheel, not from a checkout
    python = str(kit["venv"] / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import autograder; print(autograder.__file__)"],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert "site-packages" in where and str(KIT_ROOT) not in where


def test_a_finished_release_passes_its_ci_with_every_public_point(
    kit: dict[str, Path], tmp_path: Path
) -> None:
    repo = _fresh_copy(kit, tmp_path / "repo", finished=True)
    statuses, summary = run_github_workflow(repo, kit, {"TAPEGRAD_GRADER": str(kit["wheel"])})
    assert all(code == 0 for _, code in statuses), statuses
    results = _results(repo)
    assert results["score"] == pytest.approx(PUBLIC_POINTS)
    assert results["extra_data"]["sandbox"] != "not started"
    text = summary.read_text()
    assert _summary_score(text) == (PUBLIC_POINTS, PUBLIC_POINTS)
    assert "<details>" not in text  # nothing lost points
    junit = (repo / "grade-report" / "junit.xml").read_text()
    assert "<failure" not in junit and "ops.matmul" in junit


def test_the_gitlab_jobs_run_the_same_steps(kit: dict[str, Path], tmp_path: Path) -> None:
    untouched = _fresh_copy(kit, tmp_path / "untouched", finished=False)
    assert run_gitlab_jobs(untouched, kit, str(kit["wheel"])) == {
        "public-tests": 1,
        "public-checks": 1,
    }
    assert _results(untouched)["score"] == 0
    finished = _fresh_copy(kit, tmp_path / "finished", finished=True)
    assert run_gitlab_jobs(finished, kit, str(kit["wheel"])) == {
        "public-tests": 0,
        "public-checks": 0,
    }
    assert _results(finished)["score"] == pytest.approx(PUBLIC_POINTS)


def test_without_the_graders_requirement_the_checks_are_skipped_with_a_notice(
    kit: dict[str, Path], tmp_path: Path
) -> None:
    repo = _fresh_copy(kit, tmp_path / "repo", finished=True)
    workflow = yaml.safe_load((repo / ".github" / "workflows" / "grade.yml").read_text())
    (job,) = workflow["jobs"].values()
    (step,) = [s for s in job["steps"] if s.get("name") == "public autograder checks"]
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]], cwd=repo,
        env=_environment(kit, {"TAPEGRAD_GRADER": "", "ASSIGNMENT": ASSIGNMENT}),
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0
    assert "::notice::TAPEGRAD_GRADER is not set" in done.stdout


def test_the_graded_run_refuses_the_releases_public_file(kit: dict[str, Path]) -> None:
    """Without --public, a student's checks/ file is never used: the graded run's checks are
    the instructor's (the student controls everything in their repository)."""
    grade = kit["venv"] / "bin" / "grade"
    subprocess.run(
        [str(kit["venv"] / "bin" / "pip"), "install", "--quiet", str(kit["wheel"])], check=True
    )
    done = subprocess.run(
        [str(grade), ".", "--assignment", ASSIGNMENT], cwd=kit["release"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2
    assert "holds only the public checks" in done.stderr and "--public" in done.stderr


def test_the_release_carries_the_public_checks_and_nothing_hidden(kit: dict[str, Path]) -> None:
    a = load_assignment(ASSIGNMENT, KIT_ROOT)
    released = load_assignment(kit["release"] / "checks" / f"{ASSIGNMENT}.toml")
    assert released.released and released.public_seed == a.public_seed
    assert [c.id for c in released.checks] == [c.id for c in a.public_checks]
    assert [c.points for c in released.checks] == [c.points for c in a.public_checks]
    text = "\n".join(p.read_text() for p in (kit["release"] / "checks").iterdir())
    for hidden in a.hidden_checks:
        assert f'"{hidden.id}"' not in text
    assert "total_points" not in text
    answers = json.loads((kit["release"] / "checks" / f"{ASSIGNMENT}.answers.json").read_text())
    notebook_checks = {c.id for c in a.public_checks if c.kind == "notebook"}
    assert set(answers["checks"]) == notebook_checks


def test_the_student_readme_goes_in_the_order_a_student_works(kit: dict[str, Path]) -> None:
    text = (kit["release"] / "README.md").read_text()
    headings = re.findall(r"^## \d\. (.+)$", text, flags=re.M)
    assert headings[:5] == [
        "Set up",
        "Run the public tests",
        "Run the public checks",
        "Read the report",
        "Hand in",
    ]
    assert f"grade . --assignment {ASSIGNMENT} --public" in text
    assert "@@" not in text
    # the workload, from assignment.toml, before the work starts
    workload = load_assignment(ASSIGNMENT, KIT_ROOT).workload
    assert "hours" in workload
    assert text.index(f"**Workload:** {workload}") < text.index("## 1. Set up")

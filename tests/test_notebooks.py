"""Tests of the assignments' nbgrader source notebooks and of autograder.worker.cells.

The source notebooks must run top to bottom with the reference solution and pass their own
tests; the real ``nbgrader generate_assignment`` must turn them into student versions with no
solution and no hidden test left; the graded cells the grader extracts must run on their own.
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

from autograder.authoring.reference import build_reference
from autograder.config import assignment_ids, load_assignment
from autograder.worker.cells import (
    NotebookError,
    extract_graded_source,
    graded_cells,
    read_cells,
    strip_magics,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
IDS = assignment_ids(REPO_ROOT)
NOTEBOOKS = [(a, n) for a in IDS for n in load_assignment(a, REPO_ROOT).notebooks]
NOTEBOOK_CHECKS = [
    pytest.param(a, c, id=c.id)
    for a in IDS
    for c in load_assignment(a, REPO_ROOT).checks
    if c.kind == "notebook"
]
REGION = re.compile(r"### (BEGIN|END) (SOLUTION|HIDDEN TESTS)")


def source_of(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def split_regions(notebook: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Stripped lines inside ### BEGIN <region> ... ### END <region> markers, by region, and
    the lines outside every region."""
    inside: dict[str, list[str]] = {"SOLUTION": [], "HIDDEN TESTS": []}
    outside: set[str] = set()
    for cell in read_cells(notebook):
        region = None
        for line in source_of(cell).splitlines():
            match = REGION.search(line)
            if match:
                region = match.group(2) if match.group(1) == "BEGIN" else None
            elif region:
                inside[region].append(line.strip())
            else:
                outside.add(line.strip())
    return inside, outside


# ---------------------------------------------------------------------------- source notebooks


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_source_notebook_cells_have_valid_nbgrader_metadata(assignment_id: str, name: str) -> None:
    path = REPO_ROOT / "assignments" / assignment_id / name
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["nbformat"] == 4
    keys = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}
    for cell in graded_cells(path).values():
        meta = data["cells"][cell.index]["metadata"]["nbgrader"]
        assert keys <= set(meta) and meta["schema_version"] == 3 and meta["task"] is False
        text = source_of(data["cells"][cell.index])
        if cell.solution:
            assert "### BEGIN SOLUTION" in text and not cell.grade
        if cell.grade:
            assert meta["locked"] and cell.points > 0 and "### BEGIN SOLUTION" not in text


@pytest.mark.parametrize("assignment_id, check", NOTEBOOK_CHECKS)
def test_notebook_check_matches_its_cells(assignment_id: str, check) -> None:  # type: ignore[no-untyped-def]
    path = REPO_ROOT / "assignments" / assignment_id / check.notebook
    cells = graded_cells(path)
    assert cells[check.grade_id].solution, f"{check.grade_id} is not a solution cell"
    assert check.tests in cells and cells[check.tests].grade
    assert cells[check.tests].points == check.points, "nbgrader points differ from assignment.toml"


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_every_graded_test_cell_belongs_to_a_check(assignment_id: str, name: str) -> None:
    a = load_assignment(assignment_id, REPO_ROOT)
    claimed = {c.tests for c in a.checks if c.kind == "notebook" and c.notebook == name}
    graded = {g for g, cell in graded_cells(a.directory / name).items() if cell.grade}
    assert graded == claimed


@pytest.mark.parametrize("assignment_id, check", NOTEBOOK_CHECKS)
def test_graded_cell_runs_alone_and_passes_its_tests(assignment_id: str, check) -> None:  # type: ignore[no-untyped-def]
    """What the grader does: run just the graded cell as a module, then call the function.
    The nbgrader test cell (visible and hidden asserts) passes on the reference solution."""
    path = REPO_ROOT / "assignments" / assignment_id / check.notebook
    namespace: dict = {"__name__": "graded"}
    exec(compile(extract_graded_source(path, [check.grade_id]), "graded", "exec"), namespace)
    assert callable(namespace[check.function])
    tests = extract_graded_source(path, [check.tests])
    assert "### BEGIN HIDDEN TESTS" in tests, "each graded function needs hidden tests"
    exec(compile(tests, "tests", "exec"), namespace)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each notebook executed top to bottom by nbclient in what ``kit reference ID`` writes
    (the reference package, the source notebooks and data/), as it is: the kernel imports
    tapegrad from that folder and load_mnist() reads its data/."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    results = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONPATH", raising=False)
        mp.delenv("MNIST_DIR", raising=False)
        mp.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")  # figures kept
        for assignment_id, name in NOTEBOOKS:
            workdir = tmp_path_factory.mktemp(assignment_id) / "reference"
            build_reference(assignment_id, REPO_ROOT, workdir)
            assert (workdir / "data" / "mnist-sample").is_dir()
            nb = nbformat.read(workdir / name, as_version=4)
            resources = {"metadata": {"path": str(workdir)}}
            nbclient.NotebookClient(
                nb, timeout=300, kernel_name="python3", resources=resources
            ).execute()
            results[name] = nb
    return results


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_source_notebook_runs_top_to_bottom(executed: dict, assignment_id: str, name: str) -> None:
    nb = executed[name]
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    ran = [c for c in nb.cells if c.cell_type == "code"]
    assert ran and all(c.get("execution_count") for c in ran)


def written_questions(notebook: Path) -> dict[str, dict]:
    """The nbgrader manual-graded answer cells (markdown, solution and grade), by grade_id."""
    return {
        c["metadata"]["nbgrader"]["grade_id"]: c
        for c in read_cells(notebook)
        if c.get("cell_type") == "markdown"
        and c.get("metadata", {}).get("nbgrader", {}).get("solution")
        and c["metadata"]["nbgrader"].get("grade")
    }


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_each_notebook_teaches_with_figures_graded_cells_questions_and_expectations(
    executed: dict, assignment_id: str, name: str
) -> None:
    nb = executed[name]
    figures = [
        o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    ]
    assert len(figures) >= 3, f"{name}: {len(figures)} figures"
    a = load_assignment(assignment_id, REPO_ROOT)
    assert len([c for c in a.checks if c.kind == "notebook" and c.notebook == name]) >= 3
    questions = written_questions(REPO_ROOT / "assignments" / assignment_id / name)
    assert len(questions) >= 3
    for grade_id, cell in questions.items():
        meta = cell["metadata"]["nbgrader"]
        assert meta["points"] > 0 and not meta["locked"] and meta["schema_version"] == 3
        assert "### BEGIN SOLUTION" in source_of(cell), f"{grade_id}: the model answer is marked"
    prose = "".join(source_of(c) for c in nb.cells if c.cell_type == "markdown")
    assert prose.count("**Expected") >= 3, "say what a right cell shows"


def test_hw1_notebook_reproduces_the_worked_example(executed: dict) -> None:
    text = "".join(
        o.get("text", "") for c in executed["hw1.ipynb"].cells for o in c.get("outputs", [])
    )
    assert "df/dx1 = 5.500, df/dx2 = 1.716" in text
    assert "gradients OK" in text


# ---------------------------------------------------------------------------- nbgrader


@pytest.fixture(scope="module")
def nbgrader_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course directory in nbgrader's layout, source/<id>/<notebook>, after a real
    ``nbgrader generate_assignment`` of every assignment."""
    pytest.importorskip("nbgrader")
    course = tmp_path_factory.mktemp("course")
    for assignment_id, name in NOTEBOOKS:
        (course / "source" / assignment_id).mkdir(parents=True, exist_ok=True)
        shutil.copy(
            REPO_ROOT / "assignments" / assignment_id / name, course / "source" / assignment_id
        )
    command = [
        sys.executable, "-m", "nbgrader", "generate_assignment", "--assignment=*", "--force",
        "--no-db", f"--CourseDirectory.root={course}",
    ]  # fmt: skip
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(course / ".jupyter"))
    result = subprocess.run(
        command, cwd=course, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return course / "release"


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_nbgrader_student_version_has_stubs_and_no_solutions(
    nbgrader_release: Path, assignment_id: str, name: str
) -> None:
    source = REPO_ROOT / "assignments" / assignment_id / name
    released = nbgrader_release / assignment_id / name
    text = released.read_text(encoding="utf-8")
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    student_lines = {
        line.strip() for cell in read_cells(released) for line in source_of(cell).splitlines()
    }
    regions, outside = split_regions(source)
    for region, lines in regions.items():
        secret = [t for t in lines if t and t not in outside]
        assert secret
        assert not [t for t in secret if t in student_lines], f"{region} text left in {name}"
    cells = graded_cells(released)
    assert set(cells) == set(graded_cells(source)), "nbgrader must keep every graded cell"
    for cell in cells.values():
        if cell.solution:
            assert "raise NotImplementedError()" in cell.source
        if cell.grade:
            assert "assert" in cell.source, "the visible tests stay"


@pytest.mark.parametrize("assignment_id, name", NOTEBOOKS)
def test_nbgrader_clears_the_model_answers_of_the_written_questions(
    nbgrader_release: Path, assignment_id: str, name: str
) -> None:
    source = written_questions(REPO_ROOT / "assignments" / assignment_id / name)
    released = written_questions(nbgrader_release / assignment_id / name)
    assert set(released) == set(source)
    for cell in released.values():
        assert source_of(cell).strip() == "YOUR ANSWER HERE"


def test_nbgrader_stubs_raise_not_implemented(nbgrader_release: Path) -> None:
    path = nbgrader_release / "hw1" / "hw1.ipynb"
    namespace: dict = {}
    exec(extract_graded_source(path, ["numerical-derivative", "dual-numbers"]), namespace)
    with pytest.raises(NotImplementedError):
        namespace["numerical_derivative"](abs, 1.0)
    with pytest.raises(NotImplementedError):
        namespace["derivative"](lambda x: x, 1.0)


# ---------------------------------------------------------------------------- extraction


def notebook(tmp_path: Path, cells: list[dict], nbformat: int = 4) -> Path:
    path = tmp_path / "student.ipynb"
    data = {"nbformat": nbformat, "nbformat_minor": 5, "metadata": {}, "cells": cells}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def code_cell(source: str | list[str], grade_id: str | None = None) -> dict:
    meta = {}
    if grade_id:
        meta["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": False,
                            "schema_version": 3, "solution": True, "task": False}  # fmt: skip
    return {"cell_type": "code", "metadata": meta, "source": source, "outputs": [],
            "execution_count": None}  # fmt: skip


def test_extract_returns_the_named_cells_in_notebook_order(tmp_path: Path) -> None:
    path = notebook(tmp_path, [
        code_cell("x = 1"),
        code_cell(["def g():\n", "    return 2\n"], "g-cell"),
        {"cell_type": "markdown", "metadata": {}, "source": "# text"},
        code_cell("def f():\n    return g() + 1\n", "f-cell"),
    ])  # fmt: skip
    source = extract_graded_source(path, ["f-cell", "g-cell"])
    assert "x = 1" not in source
    assert source.index("def g") < source.index("def f")
    namespace: dict = {}
    exec(source, namespace)
    assert namespace["f"]() == 3


def test_extract_skips_magics_and_shell_lines_safely(tmp_path: Path) -> None:
    cell = (
        "%matplotlib inline\n"
        "!pip install something\n"
        "def f(x):\n"
        "    %time y = x\n"
        "    z = (x\n"
        "         % 3)\n"
        '    doc = """\n'
        "%not a magic inside a string\n"
        '"""\n'
        "    return z, doc\n"
    )
    namespace: dict = {}
    exec(extract_graded_source(notebook(tmp_path, [code_cell(cell, "f")]), ["f"]), namespace)
    assert namespace["f"](5) == (2, "\n%not a magic inside a string\n")


def test_a_python_cell_magic_is_dropped_and_others_refused() -> None:
    assert "x = 1" in strip_magics("%%time\nx = 1\n")
    with pytest.raises(NotebookError, match="cell magic %%bash"):
        strip_magics("%%bash\necho hi\n", "cell 'f'")


def test_missing_cell_says_what_to_do(tmp_path: Path) -> None:
    path = notebook(tmp_path, [code_cell("x = 1", "other")])
    with pytest.raises(NotebookError, match=r"cell 'numerical-derivative' not found in "
                       r"student.ipynb: did you delete or rename it\?"):  # fmt: skip
        extract_graded_source(path, ["numerical-derivative"])


def test_duplicated_cell_is_an_error(tmp_path: Path) -> None:
    path = notebook(tmp_path, [code_cell("x = 1", "f"), code_cell("x = 2", "f")])
    with pytest.raises(NotebookError, match="cell 'f' appears twice in student.ipynb"):
        extract_graded_source(path, ["f"])


def test_unreadable_notebooks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text('{"cells": [', encoding="utf-8")
    with pytest.raises(NotebookError, match=r"bad.ipynb: not a valid notebook \(bad JSON"):
        extract_graded_source(bad, ["f"])
    with pytest.raises(NotebookError, match="nbformat 3 is not supported"):
        extract_graded_source(notebook(tmp_path, [], nbformat=3), ["f"])
    with pytest.raises(NotebookError, match="notebook not found"):
        extract_graded_source(tmp_path / "missing.ipynb", ["f"])


def test_a_cell_that_is_not_python_is_reported(tmp_path: Path) -> None:
    path = notebook(tmp_path, [code_cell("def f(:\n    pass\n", "f")])
    with pytest.raises(
        NotebookError, match="cell 'f' of student.ipynb: not valid Python at line 1"
    ):
        extract_graded_source(path, ["f"])

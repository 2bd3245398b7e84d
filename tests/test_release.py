"""Tests of ``kit release`` and ``kit reference`` (autograder.authoring.release and
autograder.authoring.reference): the release's layout, that no solution text or hidden check
leaks into it, the refusal when one would, and the reference submission."""

from __future__ import annotations

import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autograder.authoring.leaks import find_leaks, leak_patterns
from autograder.authoring.reference import build_reference
from autograder.authoring.release import TEMPLATES, ReleaseError, build_release
from autograder.authoring.starter import check_starter
from autograder.config import assignment_ids, load_assignment
from autograder.kit import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parents[1]
IDS = assignment_ids(REPO_ROOT)
BLOCK = re.compile(r"^\s*### (BEGIN|END) SOLUTION")

pytest.importorskip("nbgrader")


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``kit release`` of every assignment (each runs nbgrader: a few seconds)."""
    out = tmp_path_factory.mktemp("releases")
    for assignment_id in IDS:
        assert (
            main(
                [
                    "release",
                    assignment_id,
                    "--out",
                    str(out / assignment_id),
                    "--root",
                    str(REPO_ROOT),
                ]
            )
            == 0
        )
    return {assignment_id: out / assignment_id for assignment_id in IDS}


def released_text(release: Path) -> dict[str, str]:
    """Every text file of a release, notebooks also as their decoded cell sources."""
    texts = {}
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(release).as_posix()
        texts[rel] = text
        if path.suffix == ".ipynb":
            cells = json.loads(text)["cells"]
            texts[rel + " (cells)"] = "\n".join("".join(c["source"]) for c in cells)
    return texts


def solution_block_lines() -> set[str]:
    """Lines (stripped, > 20 characters) inside solution blocks of solution/tapegrad that do
    not also appear outside them: parsed here independently of autograder.authoring.release."""
    inside, outside = set(), set()
    for path in (REPO_ROOT / "solution" / "tapegrad").rglob("*.py"):
        in_block = False
        for line in path.read_text(encoding="utf-8").splitlines():
            match = BLOCK.match(line)
            if match:
                in_block = match.group(1) == "BEGIN"
            else:
                (inside if in_block else outside).add(line.strip())
    return {line for line in inside - outside if len(line) > 20}


# ---------------------------------------------------------------------------- layout


@pytest.mark.parametrize("assignment_id", IDS)
def test_release_layout(releases: dict[str, Path], assignment_id: str) -> None:
    release = releases[assignment_id]
    a = load_assignment(assignment_id, REPO_ROOT)
    for rel in ("README.md", "pyproject.toml", ".gitignore", ".github/workflows/grade.yml",
                ".gitlab-ci.yml", "tests/conftest.py", f"tests/test_public_{assignment_id}.py",
                "data/mnist-sample/train-images-idx3-ubyte.gz", *a.notebooks):  # fmt: skip
        assert (release / rel).is_file(), rel
    earlier = IDS[: IDS.index(assignment_id) + 1]
    assert sorted(p.name for p in (release / "tests").glob("test_public_*.py")) == [
        f"test_public_{i}.py" for i in earlier
    ]
    assert not list(release.rglob("assignment.toml")), "assignment.toml names the hidden checks"
    assert not list(release.rglob("__pycache__"))
    # the starter with every assignment's blocks stripped, exactly what `kit starter` makes
    assert check_starter(REPO_ROOT / "solution" / "tapegrad", release / "tapegrad") == []
    stubs = (release / "tapegrad" / "ops.py").read_text(encoding="utf-8")
    assert 'raise NotImplementedError("hw1: ' in stubs
    for rel, text in released_text(release).items():
        assert "@@" not in text or rel.endswith(".gz"), f"unfilled placeholder in {rel}"
    readme = (release / "README.md").read_text(encoding="utf-8")
    assert f"grade . --assignment {assignment_id} --public" in readme
    assert f"pytest -m {assignment_id}" in readme
    project = tomllib.loads((release / "pyproject.toml").read_text(encoding="utf-8"))
    assert (
        project["project"]["name"] == "tapegrad"
        and "numpy>=1.24" in project["project"]["dependencies"]
    )
    public_points = sum(c.points for c in a.public_checks)
    for ci in (".github/workflows/grade.yml", ".gitlab-ci.yml"):
        text = (release / ci).read_text(encoding="utf-8")
        assert (
            f'ASSIGNMENT: "{assignment_id}"' in text and f'FAIL_UNDER: "{public_points:g}"' in text
        )
        assert "--public" in text and "--fail-under" in text and "pytest -m" in text


def test_release_files_are_not_private(releases: dict[str, Path]) -> None:
    assert oct(releases["hw1"].stat().st_mode & 0o077) != "0o0", "mkdtemp's 0700 leaked through"


# ---------------------------------------------------------------------------- no leaks


@pytest.mark.parametrize("assignment_id", IDS)
def test_no_solution_line_marker_or_hidden_check_in_the_release(
    releases: dict[str, Path], assignment_id: str
) -> None:
    texts = released_text(releases[assignment_id])
    secret = solution_block_lines()
    assert len(secret) > 100, "the solution should have many block lines to look for"
    hidden_ids = {c.id for i in IDS for c in load_assignment(i, REPO_ROOT).hidden_checks}
    for rel, text in texts.items():
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{marker} in {rel}"
        lines = {line.strip() for line in text.splitlines()}
        assert not lines & secret, f"solution lines in {rel}: {sorted(lines & secret)[:3]}"
        for check_id in hidden_ids:
            assert not re.search(rf"(?<![\w.]){re.escape(check_id)}(?!\w)", text), (check_id, rel)
    assert (
        find_leaks(
            releases[assignment_id],
            leak_patterns(REPO_ROOT, load_assignment(assignment_id, REPO_ROOT)),
        )
        == []
    )


def test_leak_scan_finds_planted_leaks(releases: dict[str, Path], tmp_path: Path) -> None:
    release = tmp_path / "release"
    shutil.copytree(releases["hw1"], release)
    patterns = leak_patterns(REPO_ROOT, load_assignment("hw1", REPO_ROOT))
    solution_line = next(iter(sorted(solution_block_lines())))
    hidden_test = "assert abs(derivative(lambda x: 2.0 / x, 4.0) + 0.125) < 1e-12"
    assert hidden_test in patterns.lines
    (release / "tests" / "test_extra.py").write_text(
        f"x = 1\n    {solution_line}\n", encoding="utf-8"
    )
    (release / "notes.md").write_text(
        "# see autodiff.second_order\n### BEGIN SOLUTION hw1\n", encoding="utf-8"
    )
    nb = json.loads((release / "hw1.ipynb").read_text(encoding="utf-8"))
    nb["cells"].append({"cell_type": "markdown", "metadata": {}, "source": [hidden_test]})
    (release / "hw1.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    leaks = {
        (leak.path, leak.what.split(" (")[0].split(" from ")[0])
        for leak in find_leaks(release, patterns)
    }
    assert ("tests/test_extra.py", "solution text") in leaks
    assert ("notes.md", "the marker 'BEGIN SOLUTION'") in leaks
    assert ("notes.md", "the id of a hidden check of hw1") in leaks
    assert any(
        path.startswith("hw1.ipynb cell") and what == "solution text" for path, what in leaks
    )


def test_hidden_ids_match_only_as_whole_names(releases: dict[str, Path], tmp_path: Path) -> None:
    release = tmp_path / "release"
    release.mkdir()
    (release / "a.py").write_text("tg.optim.clip_grad_norm_(params, 1.0)\nautodiff.jvp_extra\n")
    patterns = leak_patterns(REPO_ROOT, load_assignment("hw2", REPO_ROOT))
    assert "optim.clip_grad_norm" in patterns.hidden_ids
    assert find_leaks(release, patterns) == []


def test_release_refuses_a_planted_template_leak_and_writes_nothing(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    solution_line = sorted(solution_block_lines())[0]
    with (templates / "README.md").open("a", encoding="utf-8") as f:
        f.write(f"\n    {solution_line}\n")
    out = tmp_path / "out" / "hw1"
    with pytest.raises(ReleaseError) as info:
        build_release("hw1", REPO_ROOT, out, templates=templates)
    message = str(info.value)
    assert "refusing to release hw1" in message and "README.md:" in message
    assert solution_line[:60] in message and "solution/tapegrad/" in message
    assert not out.exists()
    assert list((tmp_path / "out").iterdir()) == [], "no staging directory left behind"


def test_kit_release_refuses_a_notebook_leak_in_a_copy_of_the_repo(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """End to end through the CLI: a hidden test pasted into a markdown cell of the source
    notebook survives nbgrader, and the release is refused naming the file and the text."""
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", root)
    for folder in ("solution", "assignments"):
        shutil.copytree(
            REPO_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    notebook = root / "assignments" / "hw1" / "hw1.ipynb"
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    leaked = "np.testing.assert_allclose(numerical_derivative(np.exp, xs), np.exp(xs), rtol=1e-8)"
    nb["cells"].insert(
        1, {"cell_type": "markdown", "id": "hint", "metadata": {}, "source": [f"Hint: `{leaked}`"]}
    )
    notebook.write_text(json.dumps(nb), encoding="utf-8")
    out = tmp_path / "release"
    assert main(["release", "hw1", "--root", str(root), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refusing to release hw1" in err and "hw1.ipynb" in err and "hidden tests" in err
    assert not out.exists()


def test_release_will_not_overwrite_without_force_or_touch_the_sources(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(ReleaseError, match="not empty; pass --force"):
        build_release("hw1", REPO_ROOT, out)
    assert (out / "mine.txt").read_text() == "keep me"
    for target in (REPO_ROOT, REPO_ROOT / "solution", REPO_ROOT / "solution" / "x"):
        with pytest.raises(ReleaseError, match="refusing to write"):
            build_reference("hw1", REPO_ROOT, target, force=True)


# ---------------------------------------------------------------------------- public tests


def _pytest(directory: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=directory, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_public_tests_fail_on_the_starter_and_pass_on_the_reference(
    releases: dict[str, Path], tmp_path: Path
) -> None:
    last = IDS[-1]  # its release holds the public tests of every assignment
    starter = _pytest(releases[last])
    assert starter.returncode == 1 and "NotImplementedError" in starter.stdout, starter.stdout[
        -2000:
    ]
    solved = tmp_path / "solved"
    shutil.copytree(releases[last], solved)
    shutil.rmtree(solved / "tapegrad")
    build_reference(last, REPO_ROOT, tmp_path / "reference")
    shutil.copytree(tmp_path / "reference" / "tapegrad", solved / "tapegrad")
    result = _pytest(solved)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout


def test_reveal_fills_in_the_earlier_assignments_and_nothing_else(tmp_path: Path) -> None:
    """kit release hw2 --reveal hw1: hw1's blocks hold the reference code (its public tests
    pass), hw2's are still stubs (its public tests fail), the README says what is given, the
    leak scan stays on for everything not revealed."""
    out = tmp_path / "hw2"
    assert main(["release", "hw2", "--reveal", "hw1", "--out", str(out)]) == 0
    package = "\n".join(p.read_text() for p in (out / "tapegrad").rglob("*.py"))
    assert 'NotImplementedError("hw1:' not in package
    assert 'NotImplementedError("hw2:' in package and 'NotImplementedError("hw3:' in package
    readme = (out / "README.md").read_text()
    assert "**Given:**" in readme and "hw1" in readme.split("**Given:**")[1].split("\n")[0]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m"]
    hw1 = subprocess.run(run + ["hw1"], cwd=out, env=env, capture_output=True, text=True)
    assert hw1.returncode == 0, hw1.stdout[-2000:]
    hw2 = subprocess.run(run + ["hw2"], cwd=out, env=env, capture_output=True, text=True)
    assert hw2.returncode == 1 and "NotImplementedError" in hw2.stdout
    # the hw2 solution is still secret: a leak planted from it is found
    patterns = leak_patterns(REPO_ROOT, load_assignment("hw2", REPO_ROOT), {"hw2", "hw3"})
    assert patterns.lines and find_leaks(out, patterns) == []
    assert not (tmp_path / "plain").exists()
    plain = leak_patterns(REPO_ROOT, load_assignment("hw2", REPO_ROOT))
    assert find_leaks(out, plain), "without --reveal, hw1's solution in the package is a leak"


@pytest.mark.parametrize(
    "reveal, why",
    [("hw2", "it is the assignment being released"), ("hw3", "only earlier"), ("hw9", "only")],
)
def test_reveal_refuses_the_assignment_itself_and_later_ones(
    reveal: str, why: str, tmp_path: Path
) -> None:
    with pytest.raises(ReleaseError, match=why):
        build_release("hw2", REPO_ROOT, tmp_path / "out", reveal=frozenset({reveal}))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------- reference


@pytest.mark.parametrize("assignment_id", IDS)
def test_reference_holds_the_solution_package_and_source_notebooks(
    tmp_path: Path, assignment_id: str
) -> None:
    out = tmp_path / "reference"
    assert main(["reference", assignment_id, "--out", str(out), "--root", str(REPO_ROOT)]) == 0
    a = load_assignment(assignment_id, REPO_ROOT)
    assert sorted(p.name for p in out.iterdir()) == sorted(["tapegrad", "data", *a.notebooks])
    solution = REPO_ROOT / "solution" / "tapegrad"
    for path in solution.rglob("*.py"):
        copied = out / "tapegrad" / path.relative_to(solution)
        assert filecmp.cmp(path, copied, shallow=False), copied
    assert "### BEGIN SOLUTION" in (out / "tapegrad" / "ops.py").read_text(encoding="utf-8")
    assert not list(out.rglob("__pycache__"))
    for name in a.notebooks:
        assert filecmp.cmp(a.directory / name, out / name, shallow=False)
    sample = REPO_ROOT / "data" / "mnist-sample"
    for path in sample.iterdir():
        assert filecmp.cmp(path, out / "data" / "mnist-sample" / path.name, shallow=False), path
    assert (out / "data" / "README.md").is_file(), "the sample's provenance goes with it"


@pytest.mark.parametrize("assignment_id", IDS)
def test_reference_outside_the_repository_loads_the_bundled_sample(
    tmp_path: Path, assignment_id: str
) -> None:
    """The reference's notebooks run as they are wherever it is built: ``tg.data.load_mnist()``
    (hw2, hw3) finds the sample shipped in the reference, with no MNIST_DIR and no repository
    above it."""
    out = tmp_path / f"reference-{assignment_id}"
    assert REPO_ROOT.resolve() not in out.resolve().parents, "the test needs a tmp dir outside"
    assert main(["reference", assignment_id, "--out", str(out), "--root", str(REPO_ROOT)]) == 0
    env = {k: v for k, v in os.environ.items() if k != "MNIST_DIR"}
    env["PYTHONPATH"] = str(out)
    code = (
        "import tapegrad as tg\n"
        "x, y = tg.data.load_mnist()\n"
        "assert len(x) > 0 and len(x) == len(y)\n"
        "print(tg.__file__)\n"
        "print(tg.data._default_dir().resolve())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=out, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    package, data = result.stdout.splitlines()[-2:]
    assert Path(package).resolve().is_relative_to(out.resolve() / "tapegrad")
    assert Path(data) == (out / "data" / "mnist-sample").resolve()


def test_reference_force_replaces_the_old_one(tmp_path: Path) -> None:
    out = tmp_path / "reference"
    build_reference("hw1", REPO_ROOT, out)
    (out / "stale.txt").write_text("old")
    with pytest.raises(ReleaseError):
        build_reference("hw1", REPO_ROOT, out)
    build_reference("hw1", REPO_ROOT, out, force=True)
    assert not (out / "stale.txt").exists() and (out / "tapegrad").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reference"]

"""``kit audit``: mutants made inside solution blocks only, each a readable one-place change;
and a real audit of hw1 that kills planted obvious mutants and reports a planted equivalent
one as a survivor."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

from autograder.audit.mutants import Mutant, catalogue_mutants, generate_mutants
from autograder.audit.run import AUDIT_FILE, run_audit
from autograder.authoring.bugs import CATALOGUE_FILE, load_catalogue
from autograder.paths import KIT_ROOT

SOURCE = """\
def outside(a, b):
    return a - b


def f(a, b):
    ### BEGIN SOLUTION hw1
    return a - b, a * 2.0
    ### END SOLUTION


def g(x):
    ### BEGIN SOLUTION hw1
    if x.ndim < 0:
        raise ValueError(f"bad rank {x.ndim + 1}")
    return -x.sum(axis=0, keepdims=True).T
    ### END SOLUTION


def h(y):
    ### BEGIN SOLUTION hw2
    return y + 1
    ### END SOLUTION
"""


@pytest.fixture
def package(tmp_path: Path) -> Path:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(SOURCE)
    return tmp_path / "pkg"


def _by_description(mutants: list[Mutant]) -> dict[str, Mutant]:
    return {m.description: m for m in mutants}


def test_mutants_change_one_place_inside_the_assignments_blocks(package: Path) -> None:
    mutants = generate_mutants(package, "hw1")
    found = _by_description(mutants)
    expected = {
        "`a - b` -> `(a + b)`": "arithmetic",
        "`a - b` -> `(b - a)`": "operand-order",
        "`a * 2.0` -> `(a / 2.0)`": "arithmetic",
        "`2.0` -> `4.0`": "constant",
        "`x.ndim < 0` -> `(x.ndim <= 0)`": "comparison",
        "`-x.sum(axis=0, keepdims=True).T` -> `x.sum(axis=0, keepdims=True).T`": "negation",
        "`x.sum(axis=0, keepdims=True).T` -> `x.sum(axis=0, keepdims=True)`": "transpose",
        "`x.sum(axis=0, keepdims=True)` -> `x`": "reduction",
        "`x.sum(axis=0, keepdims=True)` -> `x.sum(axis=0, keepdims=False)`": "keepdims",
        "`a - b, a * 2.0` -> `(a * 2.0, a - b)`": "return-order",
    }
    for description, operator in expected.items():
        assert description in found, sorted(found)
        assert found[description].operator == operator
    for mutant in mutants:
        ((rel, text),) = mutant.files
        ast.parse(text)
        assert rel == "mod.py" and text != SOURCE
        changed = [i for i, (a, b) in enumerate(zip(SOURCE.splitlines(), text.splitlines()))
                   if a != b]  # fmt: skip
        assert len(changed) == 1  # one place
        line = changed[0] + 1
        assert 6 <= line <= 8 or 12 <= line <= 16, mutant  # inside hw1's blocks only
        assert mutant.diff.count("@@ ") == 1
    ids = [m.id for m in mutants]
    assert len(ids) == len(set(ids))
    assert not any("y + 1" in m.description for m in mutants)  # hw2's block


def test_a_mutation_of_a_message_is_marked_likely_equivalent(package: Path) -> None:
    found = _by_description(generate_mutants(package, "hw1"))
    message = found["`x.ndim + 1` -> `(x.ndim - 1)`"]
    assert message.equivalent and "message" in message.equivalent
    assert found["`a - b` -> `(a + b)`"].equivalent is None


def test_the_catalogue_becomes_mutants() -> None:
    bugs = load_catalogue(KIT_ROOT / "assignments" / "hw1" / CATALOGUE_FILE)
    mutants = catalogue_mutants(KIT_ROOT / "solution" / "tapegrad", bugs)
    assert [m.id for m in mutants] == [f"catalogue:{b.id}" for b in bugs]
    assert all(m.diff.startswith("--- a/tapegrad/") for m in mutants)


def test_an_audit_kills_obvious_mutants_and_reports_an_equivalent_survivor(
    tmp_path: Path,
) -> None:
    """A copy of the kit whose hw1 reference has a planted equivalent line: a solution block
    computing ``scale = 2.0`` that nothing uses. Its constant's mutant survives; named in
    audit.toml, it is reported as equivalent, with the reason; obvious mutants are killed."""
    root = tmp_path / "kit"
    for name in ("solution", "assignments", "data", "starter"):
        shutil.copytree(KIT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(KIT_ROOT / "pyproject.toml", root / "pyproject.toml")
    ops = root / "solution" / "tapegrad" / "ops.py"
    text = ops.read_text()
    anchor = "ga = sum_to(gy * b, a.shape) if a.requires_grad_ else None"
    assert text.count(anchor) == 1
    indent = text[: text.index(anchor)].rsplit("\n", 1)[1]
    text = text.replace(anchor, f"unused_scale = 2.0  # planted\n{indent}{anchor}")
    ops.write_text(text)
    line = text[: text.index("unused_scale")].count("\n") + 1
    planted = [m for m in generate_mutants(root / "solution" / "tapegrad", "hw1")
               if m.description == "`2.0` -> `4.0`" and m.line == line]  # fmt: skip
    assert len(planted) == 1
    (root / "assignments" / "hw1" / AUDIT_FILE).write_text(
        f'[[equivalent]]\nmutant = "{planted[0].id}"\nreason = "planted: never used"\n'
    )
    mul = [m for m in generate_mutants(root / "solution" / "tapegrad", "hw1")
           if m.line == planted[0].line + 1]  # fmt: skip
    assert mul  # the mutants of Mul.backward's first line
    ids = {planted[0].id, *(m.id for m in mul), "catalogue:mul_missing_sum_to"}
    audit = run_audit("hw1", root, tmp_path / "audit", jobs=2, ids=ids)
    results = {r["id"]: r for r in audit["results"]}
    assert results[planted[0].id]["status"] == "equivalent"
    assert results[planted[0].id]["reason"] == "planted: never used"
    for m in mul:
        assert results[m.id]["status"] == "killed", results[m.id]
        assert "ops.mul" in results[m.id]["killed_by"]
    assert results["catalogue:mul_missing_sum_to"]["status"] == "killed"
    assert audit["kill_rate"] == 1.0 and audit["equivalent"] == 1
    saved = json.loads((tmp_path / "audit" / "audit.json").read_text())
    assert saved["kill_rate"] == 1.0
    page = (tmp_path / "audit" / "audit.html").read_text()
    assert "planted: never used" in page and "unused_scale" in page
    # without the instructor's note the planted mutant is a survivor, shown with its diff
    (root / "assignments" / "hw1" / AUDIT_FILE).unlink()
    again = run_audit("hw1", root, tmp_path / "audit", jobs=2, resume=True,
                      ids={planted[0].id, "catalogue:mul_missing_sum_to"})  # fmt: skip
    assert {r["id"]: r["status"] for r in again["results"]}[planted[0].id] == "survived"
    assert again["kill_rate"] == 0.5


@pytest.mark.parametrize("assignment", ["hw1", "hw2", "hw3", "hw4"])
def test_every_stub_costs_points(assignment: str, tmp_path: Path) -> None:
    """Each solution block, left alone as the starter's stub, loses points in its assignment's
    hidden suite (``kit audit --stubs``), except the ones judged equivalent in audit.toml."""
    audit = run_audit(assignment, KIT_ROOT, tmp_path / "stubs", jobs=2, stubs=True)
    missed = [r["id"] for r in audit["results"] if r["status"] not in ("killed", "equivalent")]
    assert not missed, f"stubs that cost no points in {assignment}: {missed}"
    assert audit["killed"] + audit["equivalent"] == audit["mutants"] > 0

"""What a student's repository needs for ``grade . --assignment ID --public``, and nothing more.

A student release carries, under :data:`~autograder.config.PUBLIC_DIR`::

    checks/<id>.toml           the assignment's [assignment] table (title, notebooks, limits, the
                               published seed) and its public [[checks]], with ``released =
                               true``: the same schema as assignment.toml, validated by the same
                               code, but no hidden check and no total of the hidden points
    checks/<id>.answers.json   the instructor's answers to the public notebook cases (plain JSON
                               numbers): the judge of a notebook check compares the student's
                               function with the solution cell's, which a release cannot carry

The grader installed from a wheel finds them (:func:`autograder.config.find_assignment`) when
it has no kit checkout. Both are written by ``kit release``, which then scans them for leaks
with everything else it releases.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from autograder.config import PUBLIC_DIR, Assignment, load_assignment
from autograder.grading.notebooks import record_answers
from autograder.grading.seeds import public_seeds

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["public_checks_toml", "public_answers", "write_public_checks"]

# [assignment] keys a release keeps: total_points would reveal the hidden points
_KEPT = ("id", "title", "notebooks", "time_limit", "timeout", "public_seed")


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} cannot be written")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise ValueError(f"{where}: cannot write a {type(value).__name__} value")


def _table(name: str, table: dict[str, Any], header: str) -> list[str]:
    lines = [header]
    nested = []
    for key, value in table.items():
        if isinstance(value, dict):
            nested.append((key, value))
        else:
            lines.append(f"{key} = {_toml_value(value, f'{name}.{key}')}")
    for key, value in nested:
        lines += _table(f"{name}.{key}", value, f"[{name}.{key}]")
    return lines


def public_checks_toml(assignment: Assignment) -> str:
    """``checks/<id>.toml``: the assignment's public checks, copied field by field from the
    instructor's file (so every option, thresholds included, means what it meant there)."""
    data = tomllib.loads(assignment.path.read_text(encoding="utf-8"))
    head = {k: data["assignment"][k] for k in _KEPT if k in data["assignment"]}
    public = [c for c in data["checks"] if c.get("visibility") == "public"]
    lines = [
        f"# The public checks of {assignment.id}, as `grade . --assignment {assignment.id} "
        "--public` runs them.",
        "# Written by the course's release: do not edit (your graded run uses the instructor's "
        "checks,",
        "# public and hidden, on other random cases).",
        "",
        *_table("assignment", {**head, "released": True}, "[assignment]"),
    ]
    for check in public:
        lines += ["", *_table("checks", check, "[[checks]]")]
    return "\n".join(lines) + "\n"


def public_answers(assignment: Assignment) -> dict[str, Any]:
    """The solution cell's answers to every public notebook check's cases (the published seed
    draws the same cases in every run of ``grade --public``)."""
    seeds = public_seeds(assignment.public_seed)
    checks: dict[str, Any] = {}
    for check in assignment.public_checks:
        if check.kind != "notebook":
            continue
        assert check.notebook and check.grade_id and check.function
        rng = np.random.default_rng(seeds.seed(assignment.id, check.id, ""))
        checks[check.id] = record_answers(
            assignment.notebook_dir / check.notebook, check.grade_id, check.function, rng
        )
    return {"assignment": assignment.id, "public_seed": assignment.public_seed, "checks": checks}


def write_public_checks(assignment: Assignment, dest: Path) -> list[Path]:
    """Write ``checks/<id>.toml`` and ``checks/<id>.answers.json`` under the release ``dest``,
    and load the first back through the validator (a release never ships a file ``grade``
    would refuse)."""
    if not assignment.public_checks:
        return []
    folder = dest / PUBLIC_DIR
    folder.mkdir(parents=True, exist_ok=True)
    toml_path = folder / f"{assignment.id}.toml"
    toml_path.write_text(public_checks_toml(assignment), encoding="utf-8")
    answers_path = folder / f"{assignment.id}.answers.json"
    answers_path.write_text(
        json.dumps(public_answers(assignment), separators=(",", ":")) + "\n", encoding="utf-8"
    )
    released = load_assignment(toml_path)
    if [c.id for c in released.checks] != [c.id for c in assignment.public_checks]:
        raise ValueError(f"{toml_path.name} does not hold exactly the public checks")
    return [toml_path, answers_path]

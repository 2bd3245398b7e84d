"""The leak scan: what must never be in a student release.

A released file leaks if it contains

* a marker: ``BEGIN SOLUTION``, ``END SOLUTION``, ``BEGIN HIDDEN TESTS``, ``END HIDDEN TESTS``;
* anywhere in its text, a line (stripped, longer than :data:`MIN_LEAK_CHARS`) of a solution
  block of ``solution/``, or of a source notebook's solution region or hidden tests, unless
  the starter or the notebook's code cells publish that line anyway (:func:`leak_patterns`);
* the id of a hidden check of any assignment (as a whole word: ``ops.diamond``).

Notebooks are scanned as they are stored (JSON) and cell by cell as text, so a line split
across JSON escapes is still found.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autograder.authoring.starter import PACKAGE, SKIPPED_DIRS, strip_solutions
from autograder.config import Assignment, assignment_ids, load_assignment
from autograder.worker.cells import read_cells

__all__ = ["Leak", "LeakPatterns", "MARKERS", "MIN_LEAK_CHARS", "find_leaks", "leak_patterns"]

MIN_LEAK_CHARS = 20  # shorter lines ("return out", "else:") are too common to call leaks
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_NB_REGION = re.compile(r"###\s*(BEGIN|END)\s+(SOLUTION|HIDDEN TESTS)\b")


@dataclass
class LeakPatterns:
    """What must not appear in a release. ``lines`` maps a stripped line to where it comes from."""

    lines: dict[str, str] = field(default_factory=dict)
    hidden_ids: dict[str, str] = field(default_factory=dict)  # check id -> "hw1 (hidden)"
    markers: tuple[str, ...] = MARKERS

    def id_pattern(self) -> re.Pattern[str] | None:
        if not self.hidden_ids:
            return None
        ids = "|".join(re.escape(i) for i in sorted(self.hidden_ids, key=len, reverse=True))
        return re.compile(rf"(?<![\w.])({ids})(?!\w)")


@dataclass(frozen=True)
class Leak:
    path: str  # relative to the release root, with "cell N" for notebooks
    line: int
    what: str
    text: str

    def __str__(self) -> str:
        text = self.text if len(self.text) <= 100 else self.text[:97] + "..."
        return f"{self.path}:{self.line}: {self.what}: {text!r}"


def leak_patterns(
    root: Path, assignment: Assignment, stripped: set[str] | None = None
) -> LeakPatterns:
    """Collect the secret lines of ``solution/`` and of the assignment's source notebooks, and
    the ids of the hidden checks of every assignment. ``stripped`` names the assignments whose
    solution blocks the release stubs (None: all); the others' are published, no secret.

    A line of a solution block is secret unless the starter publishes it anyway (it also
    appears, or is part of a line, outside the blocks). A line of a notebook's solution region
    or hidden tests is secret unless the starter or the notebook's own code cells publish it
    (a visible test repeated among the hidden ones); the notebook's markdown publishes nothing,
    so a hidden test pasted into a hint is caught.
    """
    patterns = LeakPatterns()
    package_inside: dict[str, str] = {}
    package_outside: set[str] = set()
    _solution_package_lines(
        root / "solution" / PACKAGE, root, package_inside, package_outside, stripped
    )
    notebook_inside: dict[str, str] = {}
    notebook_outside: set[str] = set()
    for name in assignment.notebooks:
        _notebook_region_lines(assignment.directory / name, root, notebook_inside, notebook_outside)
    starter = "\n".join(package_outside)  # a secret inside a published line is no secret
    code = "\n".join(notebook_outside)
    for text, where in package_inside.items():
        if text not in starter:
            patterns.lines.setdefault(text, where)
    for text, where in notebook_inside.items():
        if text not in starter and text not in code:
            patterns.lines.setdefault(text, where)
    public: set[str] = set()
    for other in assignment_ids(root):
        config = assignment if other == assignment.id else load_assignment(other, root)
        for check in config.checks:
            if check.hidden:
                patterns.hidden_ids[check.id] = f"a hidden check of {config.id}"
            else:
                public.add(check.id)
    for check_id in public:  # an id that is public somewhere is no secret
        patterns.hidden_ids.pop(check_id, None)
    return patterns


def _solution_package_lines(
    package: Path,
    root: Path,
    inside: dict[str, str],
    outside: set[str],
    stripped: set[str] | None = None,
) -> None:
    """Sort the lines of the package's Python files into inside and outside the solution
    blocks the release stubs (``stripped``: see :func:`leak_patterns`)."""
    for path in sorted(package.rglob("*.py")):
        if any(part in SKIPPED_DIRS for part in path.parts):
            continue
        source = path.read_text(encoding="utf-8")
        rel = path.relative_to(root).as_posix()
        kept = {
            line.strip()
            for line in strip_solutions(
                source, module=PACKAGE, assignments=stripped, filename=rel
            ).splitlines()
        }
        outside |= kept
        for lineno, line in enumerate(source.splitlines(), 1):
            text = line.strip()
            if len(text) > MIN_LEAK_CHARS and text not in kept:
                inside.setdefault(text, f"{rel}:{lineno}")


def _notebook_region_lines(
    path: Path, root: Path, inside: dict[str, str], outside: set[str]
) -> None:
    """Sort a source notebook's code lines into inside and outside its solution and
    hidden-test regions."""
    rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
    for index, cell in enumerate(read_cells(path)):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        lines = ("".join(source) if isinstance(source, list) else str(source)).splitlines()
        region: str | None = None
        for lineno, line in enumerate(lines, 1):
            text = line.strip()
            marker = _NB_REGION.search(text)
            if marker:
                region = marker.group(2).lower() if marker.group(1) == "BEGIN" else None
                continue
            if region is None:
                outside.add(text)
            elif len(text) > MIN_LEAK_CHARS:
                inside.setdefault(text, f"{rel} cell {index + 1} line {lineno} ({region})")


def find_leaks(release: Path, patterns: LeakPatterns) -> list[Leak]:
    """Every leak in the files under ``release`` (binary files are skipped).

    Secret lines are searched as substrings (so a solution line pasted into a comment or a
    markdown cell is found too); a notebook is searched cell by cell, in its decoded sources
    and outputs, and then as raw JSON for anything the cells do not show.
    """
    leaks: dict[tuple[str, str, str], Leak] = {}
    id_pattern = patterns.id_pattern()
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        rel = path.relative_to(release).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # compressed data (the MNIST sample): no text to leak
        for where, view in [*_notebook_views(rel, text), (rel, text)]:
            for leak in _leaks_in(where, view, patterns, id_pattern):
                leaks.setdefault((rel, leak.what, leak.text), leak)
    return list(leaks.values())


def _leaks_in(
    where: str, text: str, patterns: LeakPatterns, id_pattern: re.Pattern[str] | None
) -> Iterator[Leak]:
    def line_at(index: int) -> int:
        return text.count("\n", 0, index) + 1

    for marker in patterns.markers:
        index = text.find(marker)
        if index >= 0:
            yield Leak(where, line_at(index), f"the marker {marker!r}", _line(text, index))
    for secret, origin in patterns.lines.items():
        index = text.find(secret)
        if index >= 0:
            yield Leak(where, line_at(index), f"solution text from {origin}", secret)
    if id_pattern is not None:
        for match in id_pattern.finditer(text):
            what = f"the id of {patterns.hidden_ids[match.group(1)]} ({match.group(1)})"
            yield Leak(where, line_at(match.start()), what, _line(text, match.start()))


def _line(text: str, index: int) -> str:
    start = text.rfind("\n", 0, index) + 1
    end = text.find("\n", index)
    return text[start : end if end >= 0 else len(text)].strip()


def _notebook_views(rel: str, text: str) -> Iterator[tuple[str, str]]:
    """("hw1.ipynb cell 3", decoded text) for each cell's source and outputs."""
    if not rel.endswith(".ipynb"):
        return
    try:
        cells = json.loads(text).get("cells", [])
    except (json.JSONDecodeError, AttributeError):
        return
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            continue
        pieces = [cell.get("source", "")]
        for output in cell.get("outputs", []):
            pieces.append(output.get("text", ""))
            pieces.extend((output.get("data") or {}).values())
        joined = "\n".join("".join(p) if isinstance(p, list) else str(p) for p in pieces)
        yield f"{rel} cell {index + 1}", joined


# --------------------------------------------------------------------------- the release

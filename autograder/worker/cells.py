"""Read a notebook: the source of its graded cells, as one Python module.

A notebook check (``kind = "notebook"`` in assignment.toml) names a cell by its nbgrader
``grade_id``. This module only *reads* the notebook, as JSON (no nbformat, no kernel, nothing
executed); it is used in three places: the worker executes the returned source of the
student's cells (:mod:`autograder.worker.notebooks`), the grading process executes the
instructor's solution cell from ``assignments/`` (trusted, never a student's), and the release
tooling checks that graded cells survive ``nbgrader generate_assignment``.

IPython-only lines (``%magic``, ``!shell``) are not Python: each becomes ``pass`` at its own
indentation, so every other line keeps its place (a traceback's line N is the cell's line
N - 1: each cell is preceded by one comment line naming it). Lines that only *look* like
magics (inside a multi-line string, or continuing an expression in brackets or after a
backslash) are left alone. A cell that starts with a cell magic other than the timing and
capturing ones (``%%bash``, ``%%writefile``, ...) is not Python and is an error.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["GradedCell", "NotebookError", "extract_graded_source", "graded_cells", "read_cells"]

# Cell magics whose body is ordinary Python: the body is graded, the magic line dropped.
PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun"})


_FSTRING_START = getattr(tokenize, "FSTRING_START", -1)
_FSTRING_END = getattr(tokenize, "FSTRING_END", -1)


class NotebookError(ValueError):
    """The notebook cannot be read, or a graded cell is missing, duplicated or not Python."""


@dataclass(frozen=True)
class GradedCell:
    """A code cell with nbgrader metadata."""

    grade_id: str
    index: int  # position among all the notebook's cells, from 0
    source: str
    solution: bool
    grade: bool
    points: float


def read_cells(notebook_path: str | Path) -> list[dict[str, Any]]:
    """The cells of an nbformat-4 notebook, read as plain JSON."""
    path = Path(notebook_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotebookError(f"{path.name}: notebook not found ({path})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NotebookError(f"{path.name}: cannot read the notebook: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NotebookError(
            f"{path.name}: not a valid notebook (bad JSON at line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}); was it saved by Jupyter, or edited by hand?"
        ) from None
    if not isinstance(data, dict) or "cells" not in data:
        raise NotebookError(f"{path.name}: not a Jupyter notebook (no 'cells')")
    if data.get("nbformat") != 4:
        raise NotebookError(
            f"{path.name}: nbformat {data.get('nbformat')!r} is not supported; save it with a "
            "current Jupyter (nbformat 4)"
        )
    cells = data["cells"]
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise NotebookError(f"{path.name}: 'cells' is not a list of cells")
    return cells


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def graded_cells(notebook_path: str | Path) -> dict[str, GradedCell]:
    """Every code cell with an nbgrader ``grade_id``, by grade_id.

    Raises :class:`NotebookError` when two cells share a grade_id (a copied cell keeps its
    metadata; nbgrader itself refuses such notebooks).
    """
    name = Path(notebook_path).name
    found: dict[str, GradedCell] = {}
    for index, cell in enumerate(read_cells(notebook_path)):
        meta = (
            cell.get("metadata", {}).get("nbgrader")
            if isinstance(cell.get("metadata"), dict)
            else None
        )
        if cell.get("cell_type") != "code" or not isinstance(meta, dict):
            continue
        grade_id = meta.get("grade_id")
        if not isinstance(grade_id, str):
            continue
        if grade_id in found:
            raise NotebookError(
                f"cell {grade_id!r} appears twice in {name} (cells {found[grade_id].index + 1} "
                f"and {index + 1}): delete the copy, keeping the cell you answered in"
            )
        points = meta.get("points", 0)
        found[grade_id] = GradedCell(
            grade_id=grade_id,
            index=index,
            source=_source(cell),
            solution=bool(meta.get("solution")),
            grade=bool(meta.get("grade")),
            points=float(points) if isinstance(points, (int, float)) else 0.0,
        )
    return found


def extract_graded_source(notebook_path: str | Path, grade_ids: Iterable[str]) -> str:
    """The Python source of the cells called ``grade_ids``, in notebook order, one module.

    Each cell is preceded by a comment naming it; IPython magics and shell lines become
    ``pass``. Raises :class:`NotebookError` naming the notebook and the cell when the notebook
    is unreadable, a cell is missing or duplicated, or a cell is not valid Python.
    """
    path = Path(notebook_path)
    wanted = list(dict.fromkeys(grade_ids))
    cells = graded_cells(path)
    missing = [g for g in wanted if g not in cells]
    if missing:
        raise NotebookError(
            "; ".join(
                f"cell {g!r} not found in {path.name}: did you delete or rename it? (its "
                "metadata must keep the nbgrader grade_id; copy the cell from the release)"
                for g in missing
            )
        )
    parts = []
    for cell in sorted((cells[g] for g in wanted), key=lambda c: c.index):
        code = strip_magics(cell.source, f"cell {cell.grade_id!r} of {path.name}")
        parts.append(
            f"# ---- {path.name}, cell {cell.index + 1}: {cell.grade_id}\n{code.rstrip()}\n"
        )
    return "\n\n".join(parts)


def strip_magics(source: str, where: str = "<cell>") -> str:
    """``source`` with IPython magic and shell lines replaced by ``pass``; must then parse."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split(maxsplit=1)[0] if lines[0].strip() != "%%" else ""
        if magic not in PYTHON_CELL_MAGICS:
            raise NotebookError(
                f"{where}: starts with the cell magic %%{magic}, so it is not Python; "
                "remove the magic line"
            )
        lines[0] = ""
    candidates = [i for i, line in enumerate(lines) if line.lstrip().startswith(("%", "!"))]
    replaced = list(lines)
    for i in candidates:
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        replaced[i] = f"{indent}pass  # an IPython magic or shell line, skipped"
    keep = _continuation_lines("\n".join(replaced), len(lines))
    for i in candidates:
        if i in keep:  # inside a string, brackets, or after a backslash: real code or text
            replaced[i] = lines[i]
    result = "\n".join(replaced) + ("\n" if source.endswith("\n") else "")
    try:
        ast.parse(result)
    except SyntaxError as exc:
        raise NotebookError(
            f"{where}: not valid Python at line {exc.lineno}: {exc.msg}; fix the cell so that it "
            "runs"
        ) from None
    return result


def _continuation_lines(source: str, n_lines: int) -> set[int]:
    """0-based indices of lines that do not start a new statement: inside a multi-line string,
    inside brackets, or after a backslash continuation."""
    inside: set[int] = set()
    physical = source.splitlines()
    for i in range(1, len(physical)):
        if physical[i - 1].rstrip().endswith("\\"):
            inside.add(i)
    depth = 0
    first_token_seen: set[int] = set()
    fstring_starts: list[int] = []  # Python 3.12+ tokenizes f-strings in pieces
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            row = tok.start[0] - 1
            if row not in first_token_seen and tok.type not in (tokenize.NL, tokenize.NEWLINE):
                first_token_seen.add(row)
                if depth > 0:
                    inside.add(row)
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0], tok.end[0]))  # rows after the first
            elif tok.type == _FSTRING_START:
                fstring_starts.append(tok.start[0])
            elif tok.type == _FSTRING_END and fstring_starts:
                inside.update(range(fstring_starts.pop(), tok.end[0]))
            elif tok.type == tokenize.OP and tok.string in "([{":
                depth += 1
            elif tok.type == tokenize.OP and tok.string in ")]}":
                depth = max(depth - 1, 0)
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # the final ast.parse reports the problem
    return {i for i in inside if i < n_lines}

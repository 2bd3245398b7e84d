"""The class's files, made from the published ``OUT/<student>/`` folders only (so a resumed
batch writes exactly what an uninterrupted one writes):

* ``gradebook.csv``: student, total, one column per check (by check id), status, seconds;
* ``canvas.csv``: Canvas's gradebook import (Student, ID, SIS User ID, SIS Login ID, Section,
  then the assignment's column; the student id is the SIS Login ID; a "Points Possible" row);
* ``gradescope.csv``: Gradescope's score-export columns (Name, SID, Email, Total Score, Max
  Points, Status, then "check name (points)" per check);
* ``histogram.png``: the distribution of totals (needs matplotlib: the ``batch`` extra);
* ``index.html``: every student with a link to their report, and each check's pass rate;
* ``summary.json``: the figures :func:`render_summary` prints (mean, median, the checks the
  class fails most, the slowest submissions, grader errors).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from autograder.config import Assignment, CheckConfig
from autograder.grading.reports import atomic_write_text

from .runner import GRADED, GRADER_ERROR, Record, read_record, read_results
from .submissions import Entry

__all__ = ["Row", "class_summary", "load_rows", "render_summary", "write_gradebook"]

NOT_GRADED = "not graded"
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass
class Row:
    """One student of the gradebook (a group's members each get a row of its result)."""

    student: str
    key: str  # the folder under OUT/ holding the result
    record: Record | None
    scores: dict[str, float]  # check id -> points
    total: float

    @property
    def status(self) -> str:
        return self.record.status if self.record else NOT_GRADED

    @property
    def seconds(self) -> float:
        return self.record.seconds if self.record else 0.0


def _scores(results: dict[str, Any] | None) -> dict[str, float]:
    scores: dict[str, float] = {}
    for test in (results or {}).get("tests") or []:
        check_id = (test.get("extra_data") or {}).get("id")
        if check_id:
            scores[str(check_id)] = float(test.get("score") or 0.0)
    return scores


def load_rows(entries: list[Entry], out: Path) -> list[Row]:
    """A row per student of ``entries``, from what is published under ``out``."""
    rows = []
    for entry in entries:
        folder = out / entry.key
        record = read_record(folder)
        results = read_results(folder) if record and record.status == GRADED else None
        total = float(results.get("score", 0.0)) if results else 0.0
        for student in entry.students:
            rows.append(Row(student, entry.key, record, _scores(results), total))
    return sorted(rows, key=lambda r: r.student)


def _points(x: float) -> str:
    return f"{x:.4f}".rstrip("0").rstrip(".")


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def gradebook_csv(rows: list[Row], checks: tuple[CheckConfig, ...]) -> str:
    return _csv(
        ["student", "total", *(c.id for c in checks), "status", "seconds"],
        [
            [
                r.student,
                _points(r.total),
                *(_points(r.scores.get(c.id, 0.0)) for c in checks),
                r.status,
                f"{r.seconds:.1f}",
            ]  # fmt: skip
            for r in rows
        ],
    )


def canvas_csv(rows: list[Row], assignment: Assignment, max_points: float) -> str:
    column = f"{assignment.id}: {assignment.title}"
    header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", column]
    possible = ["    Points Possible", "", "", "", "", _points(max_points)]
    body = [["", "", "", r.student, "", _points(r.total)] for r in rows if r.status == GRADED]
    return _csv(header, [possible, *body])


def gradescope_csv(rows: list[Row], checks: tuple[CheckConfig, ...], max_points: float) -> str:
    header = ["Name", "SID", "Email", "Total Score", "Max Points", "Status"]
    header += [f"{c.name} ({_points(c.points)})" for c in checks]
    status = {GRADED: "Graded", GRADER_ERROR: "Grader error", NOT_GRADED: "Missing"}
    return _csv(
        header,
        [
            [
                "",
                r.student,
                "",
                _points(r.total),
                _points(max_points),
                status[r.status],
                *(_points(r.scores.get(c.id, 0.0)) for c in checks),
            ]  # fmt: skip
            for r in rows
        ],
    )


def class_summary(rows: list[Row], checks: tuple[CheckConfig, ...]) -> dict[str, Any]:
    """The class's figures: totals, each check's pass rate, the slowest, the grader errors."""
    graded = [r for r in rows if r.status == GRADED]
    totals = [r.total for r in graded]
    rates: list[dict[str, Any]] = []
    for c in checks:
        full = sum(1 for r in graded if r.scores.get(c.id, 0.0) >= c.points - 1e-9)
        mean = statistics.fmean(r.scores.get(c.id, 0.0) for r in graded) if graded else 0.0
        rates.append(
            {"id": c.id, "name": c.name, "points": c.points,
             "pass_rate": full / len(graded) if graded else 0.0, "mean": mean}
        )  # fmt: skip
    by_key = {r.key: r for r in rows}.values()  # a group's submission once
    slowest = sorted((r for r in by_key if r.record), key=lambda r: -r.seconds)[:5]
    return {
        "students": len(rows),
        "graded": len(graded),
        "grader_errors": [
            {"student": r.student, "error": r.record.error if r.record else None}
            for r in rows
            if r.status == GRADER_ERROR
        ],
        "not_graded": [r.student for r in rows if r.status == NOT_GRADED],
        "max_points": sum(c.points for c in checks),
        "mean": statistics.fmean(totals) if totals else None,
        "median": statistics.median(totals) if totals else None,
        "checks": rates,
        "hardest": sorted(rates, key=lambda x: (x["pass_rate"], x["mean"] / x["points"]))[:5],
        "slowest": [{"student": r.key, "seconds": r.seconds} for r in slowest],
    }


def render_summary(summary: dict[str, Any]) -> str:
    """The summary ``grade batch`` prints at the end."""
    mp = _points(summary["max_points"])
    lines = [f"{summary['graded']} of {summary['students']} students graded"]
    if summary["mean"] is not None:
        lines.append(
            f"mean {summary['mean']:.1f} / {mp}, median {_points(summary['median'])} / {mp}"
        )
    if summary["hardest"]:
        lines.append("checks the class fails most (share of students with full points):")
        lines += [f"  {c['pass_rate']:6.1%}  {c['id']}: {c['name']}" for c in summary["hardest"]]
    if summary["slowest"]:
        lines.append(
            "slowest: "
            + ", ".join(f"{s['student']} {s['seconds']:.1f} s" for s in summary["slowest"])
        )
    if summary["grader_errors"]:
        lines.append(f"grader errors ({len(summary['grader_errors'])}, not scores; rerun with "
                     "--resume to retry them):")  # fmt: skip
        for e in summary["grader_errors"][:10]:
            first = (e["error"] or "").strip().splitlines() or [""]
            lines.append(f"  {e['student']}: {first[0][:150]}")
    if summary["not_graded"]:
        lines.append(f"not graded yet: {len(summary['not_graded'])} (rerun with --resume)")
    return "\n".join(lines)


def histogram_png(rows: list[Row], max_points: float, title: str, path: Path) -> str | None:
    """Draw the totals' histogram; None when done, else why not (matplotlib missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return "histogram.png not drawn: matplotlib is missing (pip install 'tapegrad-kit[batch]')"
    totals = [r.total for r in rows if r.status == GRADED]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.hist(totals, bins=20, range=(0, max_points or 1), color="#3b6ea8", edgecolor="white")
    ax.set_xlabel("total points")
    ax.set_ylabel("students")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    mean = f", mean {statistics.fmean(totals):.1f}" if totals else ""
    ax.set_title(f"{title}: {len(totals)} graded{mean}")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)
    return None


def index_html(
    rows: list[Row], summary: dict[str, Any], assignment: Assignment, histogram: bool
) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["points"] = _points
    return env.get_template("index.html.j2").render(
        rows=rows, summary=summary, assignment=assignment, histogram=histogram, GRADED=GRADED
    )


def write_gradebook(
    entries: list[Entry], out: Path, assignment: Assignment, checks: tuple[CheckConfig, ...]
) -> tuple[dict[str, Any], list[str]]:
    """Write every class file into ``out``; return the summary and notes (what was skipped)."""
    rows = load_rows(entries, out)
    summary = class_summary(rows, checks)
    max_points = summary["max_points"]
    atomic_write_text(out / "gradebook.csv", gradebook_csv(rows, checks))
    atomic_write_text(out / "canvas.csv", canvas_csv(rows, assignment, max_points))
    atomic_write_text(out / "gradescope.csv", gradescope_csv(rows, checks, max_points))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    notes = []
    skipped = histogram_png(rows, max_points, assignment.id, out / "histogram.png")
    if skipped:
        notes.append(skipped)
    atomic_write_text(out / "index.html", index_html(rows, summary, assignment, not skipped))
    return summary, notes

"""Report: render a :class:`~autograder.results.GradingResult` for each audience.

* ``results.json`` for Gradescope (:mod:`.gradescope`),
* ``report.md`` and ``report.html`` for students and instructors (:mod:`.markdown`,
  :mod:`.html`),
* ``junit.xml`` for CI test reports (:mod:`.junit`),
* the summary ``grade`` prints (:mod:`.terminal`), and the one it appends to a CI job's
  ``$GITHUB_STEP_SUMMARY`` (:func:`.markdown.render_step_summary`).

Each renderer is a pure function from the result to text; :func:`write_reports` writes the
files, each atomically, so that a killed run leaves every report whole or absent.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from autograder.grading.reports._common import atomic_write_text
from autograder.grading.reports.gradescope import gradescope_results, render_gradescope
from autograder.grading.reports.html import render_html
from autograder.grading.reports.junit import render_junit
from autograder.grading.reports.markdown import render_markdown, render_step_summary
from autograder.grading.reports.terminal import render_terminal
from autograder.grading.results import GradingResult

__all__ = [
    "REPORTS",
    "atomic_write_text",
    "gradescope_results",
    "render_gradescope",
    "render_html",
    "render_junit",
    "render_markdown",
    "render_step_summary",
    "render_terminal",
    "write_reports",
]

# report kind -> (file name in the output directory, renderer)
REPORTS: dict[str, tuple[str, Callable[[GradingResult], str]]] = {
    "gradescope": ("results.json", render_gradescope),
    "markdown": ("report.md", render_markdown),
    "html": ("report.html", render_html),
    "junit": ("junit.xml", render_junit),
}


def write_reports(result: GradingResult, out_dir: Path | str) -> dict[str, Path]:
    """Write every report into ``out_dir`` (created if needed); return kind -> path.

    All reports are rendered before any is written, so a renderer bug leaves the directory
    as it was rather than with a mix of old and new files.
    """
    out = Path(out_dir)
    rendered = {kind: (name, render(result)) for kind, (name, render) in REPORTS.items()}
    return {kind: atomic_write_text(out / name, text) for kind, (name, text) in rendered.items()}

"""``report.html``: the feedback report as one self-contained page (inline CSS, no scripts, no
external resources), with a score bar, colour-coded statuses and one ``<details>`` per check,
open for the checks that lost points.

The page is the Jinja template ``templates/report.html.j2`` (its CSS is ``templates/report.css``).
The environment cleans every value the template prints (:func:`clean_text` as ``finalize``) and
then autoescapes it, so no line of the template has to remember either; long student text is
capped with the ``cap`` filter (:func:`safe`). A check's feedback is built, as in ``report.md``,
from its error, its likely bugs and its failed cases.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template

from autograder.grading.reports._common import (
    MAX_CASES_LISTED,
    MAX_ERROR_CHARS,
    MAX_NOTE_CHARS,
    bug_class_text,
    bug_class_title,
    cases_text,
    check_title,
    clean_text,
    display_status,
    extra_items,
    finite,
    gradescope_visibility,
    percent,
    points,
    safe,
    sandbox_warning,
    short_hash,
    when,
)
from autograder.grading.results import CheckResult, GradingResult

__all__ = ["render_html"]


def _anchor(check: CheckResult) -> str:
    """The check's id as an HTML id: "ops.mul" -> "check-ops-mul"."""
    return "check-" + (re.sub(r"[^a-z0-9]+", "-", check.id.lower()).strip("-") or "x")


def _clean(value: Any) -> Any:
    """What the template prints, before autoescaping: markup (its own macros' output) as it
    is, anything else through :func:`clean_text`."""
    return value if hasattr(value, "__html__") else clean_text(value)


@functools.cache
def _template() -> Template:
    env = Environment(
        loader=PackageLoader("autograder.grading.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_clean,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        anchor=_anchor,
        bug_class_text=bug_class_text,
        bug_class_title=bug_class_title,
        cap=safe,  # not Jinja's own "safe", which would mark text as markup
        cases_text=cases_text,
        check_title=check_title,
        display_status=display_status,
        extra_items=extra_items,
        finite=finite,
        gradescope_visibility=gradescope_visibility,
        percent=percent,
        points=points,
        sandbox_warning=sandbox_warning,
        short_hash=short_hash,
        when=when,
    )
    env.globals.update(
        MAX_CASES_LISTED=MAX_CASES_LISTED,
        MAX_ERROR_CHARS=MAX_ERROR_CHARS,
        MAX_NOTE_CHARS=MAX_NOTE_CHARS,
    )
    return env.get_template("report.html.j2")


def render_html(result: GradingResult) -> str:
    """The whole ``report.html``."""
    return _template().render(result=result)

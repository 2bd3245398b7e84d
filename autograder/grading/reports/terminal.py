"""The summary ``grade`` prints: a table of checks, the total, and the grading error or notes.

Colour only when asked (the CLI passes ``sys.stdout.isatty()`` and honours ``NO_COLOR``);
student text is cleaned first, so it can never carry its own terminal escapes.
"""

from __future__ import annotations

import unicodedata

from autograder.grading.reports._common import (
    cases_text,
    check_title,
    clean_text,
    display_status,
    one_line,
    percent,
    points,
    sandbox_warning,
    short_hash,
)
from autograder.grading.results import GradingResult

__all__ = ["render_terminal"]

NAME_WIDTH = 44
_COLORS = {"passed": "32", "partial": "33", "failed": "31", "error": "31", "warn": "33"}


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal (wide East Asian characters count 2)."""
    return sum(
        0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        for ch in text
    )


def _fit(text: str, width: int) -> str:
    """``text`` cut (with "…") or padded to exactly ``width`` columns."""
    if _width(text) > width:
        out, used = "", 0
        for ch in text:
            w = _width(ch)
            if used + w > width - 1:
                break
            out, used = out + ch, used + w
        text = out + "…"
    return text + " " * (width - _width(text))


def render_terminal(result: GradingResult, color: bool) -> str:
    """The summary as text lines (ANSI colours only when ``color``)."""

    def paint(text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    head = (
        f"{clean_text(result.assignment)} · submission {short_hash(result.submission_hash)}"
        f" · {clean_text(result.device)} · sandbox {clean_text(result.sandbox)}"
    )
    lines = [paint(head, "1")]
    if result.error:
        lines.append(paint(f"ERROR: {one_line(result.error, 90)}", _COLORS["error"]))
    if sandbox_warning(result):
        lines.append(paint("warning: no sandbox: resource limits only, no isolation", "33"))
    for note in result.notes:
        lines.append(paint(f"note: {one_line(note, 90)}", _COLORS["warn"]))

    if result.checks:
        lines.append("")
        lines.append(
            paint(
                f"  {_fit('Check', NAME_WIDTH)}  {'Points':>11}  {'Status':<8}  {'Cases':>7}", "1"
            )
        )
        for check in result.checks:
            status = display_status(check)
            pts = f"{points(check.score)}/{points(check.max_score)}"
            lines.append(
                f"  {_fit(check_title(check), NAME_WIDTH)}  {pts:>11}  "
                f"{paint(f'{status:<8}', _COLORS[status])}  {cases_text(check):>7}"
            )
    total = f"{points(result.score)}/{points(result.max_score)}"
    pct = percent(result.score, result.max_score)
    total_code = "32" if pct >= 100 - 1e-9 else "33" if result.score > 0 else "31"
    lines.append("")
    lines.append(
        f"  {_fit('Total', NAME_WIDTH)}  {paint(f'{total:>11}', '1;' + total_code)}  {pct:.1f}%"
    )
    return "\n".join(lines) + "\n"

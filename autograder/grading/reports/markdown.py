"""``report.md``: the feedback report in Markdown, and each check's feedback block (also used
as the check's ``output`` in ``results.json``, which Gradescope renders as Markdown).

Student-controlled text (error and case messages) only ever appears inside code blocks, so that
Markdown or HTML in it is shown, not rendered.
"""

from __future__ import annotations

import re

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

__all__ = [
    "STEP_SUMMARY_LIMIT",
    "check_feedback_md",
    "render_markdown",
    "render_step_summary",
    "submission_summary_md",
]

STATUS_MD = {
    "passed": "✅ passed",
    "partial": "🟡 partial",
    "failed": "❌ failed",
    "error": "⛔ error",
}

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def md_inline(text: object) -> str:
    """``text`` on one line with Markdown's special characters escaped (table cells, titles)."""
    one = " ".join(clean_text(text).split())
    return _INLINE_SPECIAL.sub(r"\\\1", one)


def md_codespan(text: object) -> str:
    """``text`` on one line as inline code (backticks inside become quotes)."""
    return "`" + " ".join(clean_text(text).split()).replace("`", "'") + "`"


def md_code(text: str, indent: str = "") -> str:
    """``text`` as a fenced code block (the fence longer than any backtick run inside)."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    lines = [fence + "text", *text.split("\n"), fence]
    return "\n".join(indent + ln if ln else ln for ln in lines)


def check_feedback_md(check: CheckResult) -> str:
    """One check's feedback, written from its facts: why it could not run, the likely bugs in
    plain words and the first failed cases (the rest counted)."""
    parts: list[str] = []
    if check.error:
        parts.append("**Could not run:**\n\n" + md_code(safe(check.error, MAX_ERROR_CHARS)))
    if check.bug_classes:
        items = [
            f"- **{md_inline(bug_class_title(b))}**: {md_inline(bug_class_text(b))}"
            for b in check.bug_classes
        ]
        parts.append("**Likely bugs:**\n\n" + "\n".join(items))
    failed = [c for c in check.cases if not c.passed]
    if failed:
        lines = [f"**Failed cases** ({len(failed)} of {len(check.cases)}):", ""]
        for case in failed[:MAX_CASES_LISTED]:
            lines.append(f"- **{md_inline(case.label) or 'case'}**")
            if case.message.strip():
                lines.append(md_code(safe(case.message), indent="  "))
        if len(failed) > MAX_CASES_LISTED:
            lines.append(f"- … and {len(failed) - MAX_CASES_LISTED} more failed cases")
        parts.append("\n".join(lines))
    if not parts:
        parts.append("All cases passed." if check.status == "passed" else "No feedback.")
    return "\n\n".join(parts)


def _quote(text: str) -> str:
    return "\n".join(f"> {ln}" if ln else ">" for ln in text.split("\n"))


def _alerts(result: GradingResult) -> list[str]:
    """The grading error, the sandbox warning and the notes, as Markdown blocks."""
    parts: list[str] = []
    if result.error:
        parts.append(
            _quote(
                "**Grading error: the submission could not be graded.**\n\n"
                + md_code(safe(result.error, MAX_ERROR_CHARS))
            )
        )
    warning = sandbox_warning(result)
    if warning:
        parts.append(_quote(f"**Warning:** {md_inline(warning)}"))
    if result.notes:
        parts.append(
            "**Notes:**\n\n"
            + "\n".join(f"- {md_inline(safe(n, MAX_NOTE_CHARS))}" for n in result.notes)
        )
    return parts


def submission_summary_md(result: GradingResult) -> str:
    """What concerns the whole submission: the grading error, sandbox warning, notes and where
    it was graded.

    This is ``results.json``'s top-level ``output``, which students see even when checks are
    hidden, so it names no check and no score.
    """
    meta = (
        f"Submission {md_codespan(short_hash(result.submission_hash))}, graded "
        f"{md_inline(when(result.started_at))} on {md_inline(result.device)} "
        f"(sandbox: {md_inline(result.sandbox)})."
    )
    return "\n\n".join([*_alerts(result), meta])


def _header(result: GradingResult) -> list[str]:
    """Title and score, then (prominently) the grading error and warnings, then the facts."""
    score, max_score = result.score, result.max_score
    pct = f"{percent(score, max_score):.1f}%" if max_score > 0 else "not graded"
    lines = [
        f"# Feedback: {md_inline(result.assignment)}",
        "",
        f"**Score: {points(score)} / {points(max_score)} ({pct})**",
        "",
    ]
    for block in _alerts(result):
        lines += [block, ""]
    return [
        *lines,
        "| | |",
        "|---|---|",
        f"| Submission | {md_codespan(short_hash(result.submission_hash))} |",
        f"| Graded | {md_inline(when(result.started_at))} |",
        f"| Device | {md_inline(result.device)} |",
        f"| Sandbox | {md_inline(result.sandbox)} |",
        f"| Case seeds | {'public' if result.public else 'per submission'} |",
        "",
    ]


def _summary_table(result: GradingResult) -> list[str]:
    lines = [
        "## Summary",
        "",
        "| Check | Points | Status | Cases passed |",
        "|---|---:|---|---:|",
    ]
    for check in result.checks:
        lines.append(
            f"| {md_inline(check_title(check))} | {points(check.score)} / "
            f"{points(check.max_score)} | {STATUS_MD[display_status(check)]} | "
            f"{cases_text(check)} |"
        )
    lines.append(f"| **Total** | **{points(result.score)} / {points(result.max_score)}** | | |")
    return [*lines, ""]


def _check_section(check: CheckResult) -> list[str]:
    meta = [f"**{points(check.score)} / {points(check.max_score)}**"]
    meta.append(STATUS_MD[display_status(check)])
    if check.cases:
        meta.append(f"{check.cases_passed} of {len(check.cases)} cases passed")
    if check.topic:
        meta.append(f"topic: {md_inline(check.topic)}")
    meta.append(f"visibility: {gradescope_visibility(check.visibility)}")
    meta.append(f"{finite(check.wall_time):.2f} s")
    meta += [f"{md_inline(k)}: {md_inline(v)}" for k, v in extra_items(check)]
    return [
        f"### {md_inline(check_title(check))}",
        "",
        " · ".join(meta),
        "",
        check_feedback_md(check),
        "",
    ]


def _footer(result: GradingResult) -> list[str]:
    versions = ", ".join(f"{md_inline(k)} {md_inline(v)}" for k, v in result.versions.items())
    return [
        "---",
        "",
        "<sub>"
        f"Submission {md_codespan(short_hash(result.submission_hash, 64))} · "
        f"suite {md_codespan(short_hash(result.suite_hash))} · "
        f"seeds {md_codespan(result.seed_derivation)} · "
        f"graded in {result.wall_time:.1f} s" + (f" · {versions}" if versions else "") + "</sub>",
        "",
    ]


def render_markdown(result: GradingResult) -> str:
    """The whole ``report.md``."""
    lines = _header(result)
    if result.checks:
        lines += _summary_table(result)
        lines += ["## Checks", ""]
        for check in result.checks:
            lines += _check_section(check)
    lines += _footer(result)
    return "\n".join(lines)


# GitHub refuses a step summary over 1 MiB; stay well below it with what other steps wrote
STEP_SUMMARY_LIMIT = 512 * 1024


def render_step_summary(result: GradingResult, limit: int = STEP_SUMMARY_LIMIT) -> str:
    """A CI job's summary (``$GITHUB_STEP_SUMMARY``): the score, the table of checks, and each
    check that lost points folded in a ``<details>`` block, as many as fit in ``limit`` bytes
    (the rest are counted: the whole report is in the job's artifacts)."""
    score, max_score = result.score, result.max_score
    lines = [f"## {md_inline(result.assignment)}: {points(score)} / {points(max_score)}", ""]
    for block in _alerts(result):
        lines += [block, ""]
    if result.checks:
        lines += _summary_table(result)[2:]  # without its "## Summary" heading
    text = "\n".join(lines) + "\n"
    lost = [c for c in result.checks if display_status(c) != "passed"]
    left_out = 0
    for check in lost:
        block = (
            f"<details><summary>{md_inline(check_title(check))}: {points(check.score)} / "
            f"{points(check.max_score)}</summary>\n\n{check_feedback_md(check)}\n\n</details>\n"
        )
        if len((text + block).encode()) > limit - 200:
            left_out += 1
            continue
        text += block
    if left_out:
        text += f"\n… and {left_out} more checks that lost points: see report.md\n"
    return text + "\n"

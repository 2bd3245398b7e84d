"""``report.html``: the feedback report as one self-contained page (inline CSS, no scripts, no
external resources), with a score bar, colour-coded statuses and one ``<details>`` per check,
open for the checks that lost points.

Every string from the result is escaped; the checks' Markdown feedback goes through a small
renderer that escapes first and then adds only its own tags (paragraphs, lists, code, bold).
"""

from __future__ import annotations

import html
import re

from autograder.grading.reports._common import (
    MAX_CASES_LISTED,
    MAX_ERROR_CHARS,
    MAX_NOTE_CHARS,
    MAX_OUTPUT_CHARS,
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

STATUS_LABEL = {"passed": "passed", "partial": "partial", "failed": "failed", "error": "error"}

CSS = """
:root {
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --card: #ffffff;
  --ok: #1a7f37; --ok-bg: #dafbe1; --part: #9a6700; --part-bg: #fff8c5;
  --bad: #cf222e; --bad-bg: #ffebe9; --err: #82071e; --err-bg: #ffcecb;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, "Helvetica Neue",
  Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 32px 24px 48px; }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 13px; }
header.card { padding: 24px 28px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  margin-bottom: 20px; }
.eyebrow { color: var(--muted); font-size: 13px; text-transform: uppercase;
  letter-spacing: .06em; }
h1 { margin: 4px 0 12px; font-size: 26px; }
h2 { font-size: 18px; margin: 28px 0 12px; }
.score { display: flex; align-items: baseline; gap: 10px; }
.score .big { font-size: 40px; font-weight: 700; }
.score .max { font-size: 20px; color: var(--muted); }
.score .pct { margin-left: auto; font-size: 20px; font-weight: 600; }
.bar { height: 12px; background: #eaeef2; border-radius: 6px; overflow: hidden;
  margin: 10px 0 18px; }
.bar > div { height: 100%; border-radius: 6px; }
.fill-passed { background: var(--ok); } .fill-partial { background: #d4a72c; }
.fill-failed, .fill-error { background: var(--bad); }
dl.meta { display: grid; grid-template-columns: repeat(auto-fit, minmax(130px, 1fr));
  gap: 10px 24px; margin: 0; }
dl.meta dt { color: var(--muted); font-size: 12px; text-transform: uppercase;
  letter-spacing: .05em; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.alert { border-radius: 10px; padding: 14px 18px; margin-bottom: 16px; border: 1px solid; }
.alert.error { background: var(--bad-bg); border-color: #ff8182; color: var(--err); }
.alert.warn { background: var(--part-bg); border-color: #d4a72c; color: #633c01; }
.alert.info { background: #ddf4ff; border-color: #54aeff; color: #0a3069; }
.alert pre { background: rgba(255,255,255,.7); color: var(--fg); }
.alert ul { margin: 6px 0 0; padding-left: 20px; }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
th, td { padding: 9px 14px; text-align: left; border-bottom: 1px solid var(--line); }
th { background: var(--bg); font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.total td { font-weight: 700; border-bottom: 0; background: var(--bg); }
td a { color: inherit; text-decoration: none; } td a:hover { text-decoration: underline; }
.pill { display: inline-block; min-width: 64px; text-align: center; padding: 1px 10px;
  border-radius: 999px; font-size: 12px; font-weight: 600; text-transform: uppercase;
  letter-spacing: .04em; }
.pill.passed { color: var(--ok); background: var(--ok-bg); }
.pill.partial { color: var(--part); background: var(--part-bg); }
.pill.failed { color: var(--bad); background: var(--bad-bg); }
.pill.error { color: var(--err); background: var(--err-bg); }
.tag { display: inline-block; padding: 0 8px; border-radius: 999px; font-size: 12px;
  color: var(--muted); border: 1px solid var(--line); }
details.check { border-left: 4px solid var(--line); }
details.check.passed { border-left-color: var(--ok); }
details.check.partial { border-left-color: #d4a72c; }
details.check.failed, details.check.error { border-left-color: var(--bad); }
details.check > summary { cursor: pointer; padding: 12px 18px; display: flex;
  align-items: center; gap: 12px; list-style: none; }
details.check > summary::-webkit-details-marker { display: none; }
details.check > summary::before { content: "\\25B8"; color: var(--muted); width: 10px; }
details.check[open] > summary::before { content: "\\25BE"; }
summary .title { font-weight: 600; flex: 1; overflow-wrap: anywhere; }
summary .pts { font-variant-numeric: tabular-nums; white-space: nowrap; color: var(--muted); }
.body { padding: 0 18px 16px 40px; }
.sub { color: var(--muted); font-size: 13px; margin: 0 0 10px; }
.body h3 { font-size: 14px; margin: 16px 0 6px; }
pre { background: var(--bg); border: 1px solid var(--line); border-radius: 6px;
  padding: 10px 12px; margin: 6px 0; white-space: pre-wrap; overflow-wrap: anywhere;
  max-height: 20em; overflow-y: auto; }
.feedback { max-height: 30em; overflow-y: auto; }
.feedback p { margin: 6px 0; }
.feedback code, li code { background: #eff1f3; padding: 1px 5px; border-radius: 4px; }
ul.bugs, ol.cases { margin: 4px 0; padding-left: 22px; }
ol.cases > li { margin-bottom: 8px; }
.more { color: var(--muted); font-style: italic; }
footer { color: var(--muted); font-size: 13px; margin-top: 28px; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px;
  margin: 8px 0 0; }
dl.kv dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; overflow-wrap: anywhere; }
"""


def esc(text: object) -> str:
    """``text`` cleaned of control characters and escaped for HTML text and attributes."""
    return html.escape(clean_text(text), quote=True)


def _inline_md(escaped: str) -> str:
    """Inline code and bold in already-escaped text (adds only our own tags)."""
    escaped = re.sub(r"`([^`\n]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*\n]+)\*\*", r"<strong>\1</strong>", escaped)


def md_to_html(text: str) -> str:
    """The little Markdown the checks' feedback uses: paragraphs, ``-`` lists, fenced code,
    inline code and bold. Everything is escaped before any tag is added."""
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        opening = re.match(r"\s*(`{3,})", line)
        if opening:
            fence = opening.group(1)
            body = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            out.append(f"<pre>{html.escape(chr(10).join(body))}</pre>")
            i += 1
            continue
        if not line.strip():
            i += 1
            continue
        block = []
        while i < len(lines) and lines[i].strip() and not lines[i].lstrip().startswith("```"):
            block.append(lines[i])
            i += 1
        if all(re.match(r"\s*[-*] ", ln) for ln in block):
            items = "".join(f"<li>{_inline_md(html.escape(ln.strip()[2:]))}</li>" for ln in block)
            out.append(f"<ul>{items}</ul>")
        else:
            out.append("<p>" + "<br>".join(_inline_md(html.escape(ln)) for ln in block) + "</p>")
    return "\n".join(out)


def _anchor(check: CheckResult) -> str:
    return "check-" + (re.sub(r"[^a-z0-9]+", "-", check.id.lower()).strip("-") or "x")


def _pill(status: str) -> str:
    return f'<span class="pill {status}">{STATUS_LABEL[status]}</span>'


def _bar_class(score: float, max_score: float) -> str:
    pct = percent(score, max_score)
    return "passed" if pct >= 100 - 1e-9 else "partial" if finite(score) > 0 else "failed"


def _header(result: GradingResult) -> str:
    score, max_score = result.score, result.max_score
    pct = percent(score, max_score)
    pct_text = f"{pct:.1f}%" if max_score > 0 else "not graded"
    mode = "public" if result.public else "per submission"
    meta = [
        (
            "Submission",
            f'<span class="mono" title="{esc(result.submission_hash)}">'
            f"{esc(short_hash(result.submission_hash))}</span>",
        ),
        ("Graded", esc(when(result.started_at))),
        ("Device", esc(result.device)),
        ("Sandbox", esc(result.sandbox)),
        ("Case seeds", esc(mode)),
    ]
    dl = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    return (
        '<header class="card">'
        '<div class="eyebrow">tapegrad autograder · feedback report</div>'
        f"<h1>{esc(result.assignment)}</h1>"
        f'<div class="score"><span class="big">{points(score)}</span>'
        f'<span class="max">/ {points(max_score)} points</span>'
        f'<span class="pct">{pct_text}</span></div>'
        f'<div class="bar" role="img" aria-label="{pct:.1f}% of the points">'
        f'<div class="fill-{_bar_class(score, max_score)}" style="width:{min(pct, 100):.1f}%">'
        "</div></div>"
        f'<dl class="meta">{dl}</dl>'
        "</header>"
    )


def _alerts(result: GradingResult) -> str:
    parts = []
    if result.error:
        parts.append(
            '<div class="alert error"><strong>Grading error: the submission could not be '
            f"graded.</strong><pre>{esc(safe(result.error, MAX_ERROR_CHARS))}</pre></div>"
        )
    warning = sandbox_warning(result)
    if warning:
        parts.append(f'<div class="alert warn"><strong>Warning:</strong> {esc(warning)}</div>')
    if result.notes:
        items = "".join(f"<li>{esc(safe(n, MAX_NOTE_CHARS))}</li>" for n in result.notes)
        parts.append(f'<div class="alert info"><strong>Notes</strong><ul>{items}</ul></div>')
    return "".join(parts)


def _summary(result: GradingResult) -> str:
    rows = []
    for check in result.checks:
        rows.append(
            f'<tr><td><a href="#{_anchor(check)}">{esc(check_title(check))}</a></td>'
            f'<td class="num">{points(check.score)} / {points(check.max_score)}</td>'
            f"<td>{_pill(display_status(check))}</td>"
            f'<td class="num">{esc(cases_text(check))}</td></tr>'
        )
    rows.append(
        f'<tr class="total"><td>Total</td><td class="num">{points(result.score)} / '
        f"{points(result.max_score)}</td><td></td><td></td></tr>"
    )
    return (
        '<h2>Summary</h2><table><thead><tr><th>Check</th><th class="num">Points</th>'
        '<th>Status</th><th class="num">Cases passed</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _check(check: CheckResult) -> str:
    status = display_status(check)
    sub = [f'<span class="mono">{esc(check.id)}</span>']
    if check.topic:
        sub.append(f'<span class="tag">{esc(check.topic)}</span>')
    if check.cases:
        sub.append(f"{check.cases_passed} of {len(check.cases)} cases passed")
    sub.append(f"{finite(check.wall_time):.2f} s")
    visibility = gradescope_visibility(check.visibility)
    if visibility != "visible":
        sub.append(f'<span class="tag">{esc(visibility.replace("_", " "))}</span>')
    sub += [f"{esc(k)}: {esc(v)}" for k, v in extra_items(check)]
    body = [f'<p class="sub">{" · ".join(sub)}</p>']
    if check.output.strip():
        body.append(
            f'<div class="feedback">{md_to_html(safe(check.output, MAX_OUTPUT_CHARS))}</div>'
        )
    if check.error:
        body.append(f"<h3>Could not run</h3><pre>{esc(safe(check.error, MAX_ERROR_CHARS))}</pre>")
    if check.bug_classes:
        items = "".join(
            f"<li><strong>{esc(bug_class_title(b))}</strong>: {esc(bug_class_text(b))}</li>"
            for b in check.bug_classes
        )
        body.append(f'<h3>Likely bugs</h3><ul class="bugs">{items}</ul>')
    failed = [c for c in check.cases if not c.passed]
    if failed:
        case_items: list[str] = []
        for case in failed[:MAX_CASES_LISTED]:
            msg = f"<pre>{esc(safe(case.message))}</pre>" if case.message.strip() else ""
            case_items.append(f"<li><strong>{esc(case.label) or 'case'}</strong>{msg}</li>")
        more = len(failed) - MAX_CASES_LISTED
        tail = f'<p class="more">… and {more} more failed cases</p>' if more > 0 else ""
        body.append(
            f"<h3>Failed cases ({len(failed)} of {len(check.cases)})</h3>"
            f'<ol class="cases">{"".join(case_items)}</ol>{tail}'
        )
    if len(body) == 1:
        body.append(
            '<p class="feedback">All cases passed.</p>'
            if status == "passed"
            else '<p class="feedback">No feedback.</p>'
        )
    is_open = " open" if status != "passed" else ""
    return (
        f'<details class="card check {status}" id="{_anchor(check)}"{is_open}>'
        f'<summary>{_pill(status)}<span class="title">{esc(check_title(check))}</span>'
        f'<span class="pts">{points(check.score)} / {points(check.max_score)}</span></summary>'
        f'<div class="body">{"".join(body)}</div></details>'
    )


def _footer(result: GradingResult) -> str:
    versions = " · ".join(f"{esc(k)} {esc(v)}" for k, v in result.versions.items())
    rows = [
        ("Submission hash", esc(result.submission_hash)),
        ("Suite hash", esc(result.suite_hash)),
        ("Seed derivation", esc(result.seed_derivation)),
        ("Grading time", f"{finite(result.wall_time):.1f} s"),
        *([("Versions", versions)] if versions else []),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    return f'<footer><strong>Reproducibility</strong><dl class="kv">{dl}</dl></footer>'


def render_html(result: GradingResult) -> str:
    """The whole ``report.html``."""
    title = f"{clean_text(result.assignment)}: {points(result.score)} / {points(result.max_score)}"
    checks = ""
    if result.checks:
        checks = _summary(result) + "<h2>Checks</h2>" + "".join(_check(c) for c in result.checks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Feedback: {html.escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>{_header(result)}{_alerts(result)}{checks}{_footer(result)}</main></body>"
        "</html>\n"
    )

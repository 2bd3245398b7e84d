"""What every report writer shares: safe text, points formatting, status words, bug-class
wording, and atomic file writes.

Messages and errors can carry student-controlled text (exception messages, printed output), so
every writer passes them through :func:`clean_text` first: terminal escapes, other control
characters and unencodable code points become visible ``\\xNN`` escapes instead of reaching a
terminal, a browser or an XML parser.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

from autograder.grading.diagnose import hint
from autograder.grading.results import VISIBILITIES, CheckResult, GradingResult

# How many failed cases each check lists before "and N more".
MAX_CASES_LISTED = 5
# Caps on one message, one check's feedback and the whole-submission error (characters).
MAX_MESSAGE_CHARS = 2000
MAX_OUTPUT_CHARS = 20000
MAX_ERROR_CHARS = 8000
MAX_NOTE_CHARS = 500

# C0 controls except \t and \n, DEL, C1 controls, lone surrogates (unencodable in UTF-8) and
# the two non-characters XML 1.0 forbids.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean_text(text: object) -> str:
    """``text`` as a string safe for any output: line ends normalised to ``\\n``, unsafe
    characters shown as escapes (``\\x1b``, ``\\udcff``)."""
    s = str(text).replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub(lambda m: ascii(m.group())[1:-1], s)


def truncate(text: str, limit: int) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


def safe(text: object, limit: int = MAX_MESSAGE_CHARS) -> str:
    """:func:`clean_text` then :func:`truncate`."""
    return truncate(clean_text(text), limit)


def one_line(text: object, limit: int = 200) -> str:
    """The first non-empty line of ``text``, cleaned and cut to ``limit`` characters."""
    lines = [ln.strip() for ln in clean_text(text).split("\n") if ln.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


def finite(x: float) -> float:
    """``x`` as a float, with NaN and infinities (a grader bug) counted as 0."""
    x = float(x)
    return x if math.isfinite(x) else 0.0


def round_score(x: float) -> float:
    """A score as reported: 4 decimals, so that 1/3 of a point stays readable."""
    return round(finite(x), 4)


def points(x: float) -> str:
    """Points for people: "3.0", "2.5", "1.33" (at least one decimal, at most two)."""
    s = f"{finite(x):.2f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def percent(score: float, max_score: float) -> float:
    """``score`` as a percentage of ``max_score`` (0 when nothing could be earned)."""
    return 100.0 * finite(score) / max_score if finite(max_score) > 0 else 0.0


def display_status(check: CheckResult) -> str:
    """The status people see: "passed", "partial", "failed" or "error" (could not run).

    Gradescope only knows passed/failed (:attr:`CheckResult.status`); the reports tell partial
    credit and a check that could not run apart from a plain failure.
    """
    if check.error:
        return "error"
    if check.status == "passed":
        return "passed"
    return "partial" if finite(check.score) > 0 else "failed"


def gradescope_visibility(visibility: str) -> str:
    """A visibility Gradescope accepts. "public" means "visible"; anything unknown is hidden,
    so that a typo in a config never shows a hidden check."""
    if visibility == "public":
        return "visible"
    return visibility if visibility in VISIBILITIES else "hidden"


def short_hash(h: str, n: int = 12) -> str:
    """The first ``n`` hex digits of a hash, without an algorithm prefix ("sha256:")."""
    h = clean_text(h or "")
    return h.split(":", 1)[-1][:n] or "unknown"


def when(iso: str) -> str:
    """An ISO 8601 time as "2025-03-01 14:02 UTC" (the text as given when it does not parse)."""
    if not iso:
        return "unknown"
    try:
        t = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return clean_text(iso)
    offset = t.utcoffset()
    zone = "" if offset is None else "UTC" if not offset else t.strftime("UTC%z")
    return f"{t:%Y-%m-%d %H:%M} {zone}".strip()


def bug_class_title(key: str) -> str:
    """A bug class key in words: "missing_broadcast_reduction" -> "Missing broadcast reduction"."""
    words = clean_text(key).replace("_", " ").replace("-", " ").strip()
    return words[:1].upper() + words[1:]


def bug_class_text(key: str) -> str:
    """What a bug class means, in plain words (its title when the grader has no wording)."""
    return clean_text(hint(key)) or bug_class_title(key)


def check_title(check: CheckResult) -> str:
    """How a check is named in every report: "ops.mul: Multiplication"."""
    name = clean_text(check.name)
    cid = clean_text(check.id)
    return f"{cid}: {name}" if name and name != cid else cid


def cases_text(check: CheckResult) -> str:
    """Cases passed as "6/8", or "-" for a check without cases."""
    return f"{check.cases_passed}/{len(check.cases)}" if check.cases else "-"


def extra_items(check: CheckResult) -> list[tuple[str, str]]:
    """The check's simple extra facts for people ("accuracy", "0.9312"); nested values and
    flags are left to ``results.json``."""
    items = []
    for key, value in check.extra.items():
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            shown = f"{value:.4g}" if isinstance(value, float) else str(value)
            items.append((clean_text(key), one_line(shown, 80)))
    return items


def sandbox_warning(result: GradingResult) -> str | None:
    """A warning when the submission ran without isolation."""
    if result.sandbox == "none":
        return (
            "The submission ran without a sandbox (--sandbox none): resource limits only, no "
            "isolation from the grader's files. Use bwrap or docker for real grading."
        )
    return None


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` as UTF-8 so that readers see the old file or the whole new
    one, never a part: a temporary file in the same directory, flushed and renamed over."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; reports are for reading
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path

"""``results.json`` in Gradescope's autograder format.

Only fields Gradescope documents (https://gradescope-autograders.readthedocs.io/en/latest/specs/)
appear at the top level and in each test; everything of ours (hashes, seeds, versions, device,
sandbox, timings, cases, bug classes, accuracy) goes under ``extra_data``, which Gradescope
stores without showing it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from autograder.grading.reports._common import (
    MAX_ERROR_CHARS,
    MAX_NOTE_CHARS,
    check_title,
    clean_text,
    finite,
    gradescope_visibility,
    round_score,
    safe,
)
from autograder.grading.reports.markdown import check_feedback_md, submission_summary_md
from autograder.grading.results import CheckResult, GradingResult

__all__ = ["TOP_LEVEL_KEYS", "TEST_KEYS", "gradescope_results", "render_gradescope"]

# The documented keys (leaderboard and the name formats are documented but unused here).
TOP_LEVEL_KEYS = frozenset(
    {
        "score",
        "execution_time",
        "output",
        "output_format",
        "test_output_format",
        "test_name_format",
        "visibility",
        "stdout_visibility",
        "extra_data",
        "tests",
        "leaderboard",
    }
)
TEST_KEYS = frozenset(
    {
        "score",
        "max_score",
        "status",
        "name",
        "name_format",
        "number",
        "output",
        "output_format",
        "tags",
        "visibility",
        "extra_data",
    }
)


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON: NumPy scalars and arrays unwrapped, non-finite floats as null
    (Gradescope rejects NaN), strings cleaned, anything else as its text."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # NumPy scalar or array
        return _jsonable(value.tolist())
    return clean_text(value)


def _test(number: int, check: CheckResult) -> dict[str, Any]:
    return {
        "name": check_title(check),
        "number": str(number),
        "score": round_score(check.score),
        "max_score": round_score(check.max_score),
        "status": check.status,
        "visibility": gradescope_visibility(check.visibility),
        "output": check_feedback_md(check),
        "output_format": "md",
        "tags": [clean_text(check.topic)] if check.topic else [],
        "extra_data": _jsonable(
            {
                "id": check.id,
                "topic": check.topic,
                "wall_time": round(finite(check.wall_time), 4),
                "cases_passed": check.cases_passed,
                "cases_total": len(check.cases),
                "bug_classes": check.bug_classes,
                "error": safe(check.error, MAX_ERROR_CHARS) if check.error else None,
                **({"extra": check.extra} if check.extra else {}),
            }
        ),
    }


def gradescope_results(result: GradingResult) -> dict[str, Any]:
    """The ``results.json`` object for ``result``.

    The top-level score is the sum of the tests' rounded scores, so that it matches what
    Gradescope shows per test. Its output names no check: students see it even when every
    check is hidden.
    """
    tests = [_test(i, check) for i, check in enumerate(result.checks, start=1)]
    return {
        "score": round(sum(t["score"] for t in tests), 4),
        "execution_time": max(0, round(finite(result.wall_time))),
        "output": submission_summary_md(result),
        "output_format": "md",
        "stdout_visibility": "hidden",  # the grader's log is for instructors
        "extra_data": _jsonable(
            {
                "assignment": result.assignment,
                "max_score": round_score(result.max_score),
                "submission_hash": result.submission_hash,
                "suite_hash": result.suite_hash,
                "seed_derivation": result.seed_derivation,
                "public": result.public,
                "device": result.device,
                "sandbox": result.sandbox,
                "versions": result.versions,
                "started_at": result.started_at,
                "wall_time": round(finite(result.wall_time), 4),
                "notes": [safe(n, MAX_NOTE_CHARS) for n in result.notes],
                "error": safe(result.error, MAX_ERROR_CHARS) if result.error else None,
            }
        ),
        "tests": tests,
    }


def render_gradescope(result: GradingResult) -> str:
    """``results.json``'s text (strict JSON, UTF-8 characters kept)."""
    return json.dumps(gradescope_results(result), indent=2, ensure_ascii=False, allow_nan=False)

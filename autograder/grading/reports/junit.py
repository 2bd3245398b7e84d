"""``junit.xml``: one ``<testcase>`` per check, for CI test-report consumers (GitLab, GitHub
actions, Jenkins).

A check that lost points has a ``<failure>``; one that could not run (not implemented, crash,
timeout) an ``<error>``. A submission that could not be graded at all gets an extra
``submission`` test case with an ``<error>``, so CI never reads it as zero tests, all passing.
Text goes through :func:`clean_text`, which leaves no character that XML 1.0 forbids.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from autograder.grading.reports._common import (
    MAX_ERROR_CHARS,
    check_title,
    clean_text,
    finite,
    one_line,
    points,
    round_score,
    safe,
)
from autograder.grading.reports.markdown import check_feedback_md
from autograder.grading.results import CheckResult, GradingResult

__all__ = ["render_junit"]


def _properties(parent: ET.Element, props: dict[str, object]) -> None:
    el = ET.SubElement(parent, "properties")
    for name, value in props.items():
        ET.SubElement(el, "property", name=name, value=clean_text(value))


def _testcase(parent: ET.Element, classname: str, check: CheckResult) -> str | None:
    """Add ``check`` as a ``<testcase>``; return "failure", "error" or None (passed)."""
    case = ET.SubElement(
        parent,
        "testcase",
        classname=classname,
        name=check_title(check),
        time=f"{finite(check.wall_time):.3f}",
    )
    _properties(
        case,
        {
            "score": round_score(check.score),
            "max_score": round_score(check.max_score),
            "cases_passed": check.cases_passed,
            "cases_total": len(check.cases),
        },
    )
    summary = (
        f"{points(check.score)}/{points(check.max_score)} points, "
        f"{check.cases_passed}/{len(check.cases)} cases passed"
    )
    if check.error:
        kind = "error"
        el = ET.SubElement(case, "error", message=one_line(check.error), type="CheckError")
    elif check.status == "failed":
        kind = "failure"
        el = ET.SubElement(case, "failure", message=summary, type="LostPoints")
    else:
        return None
    el.text = check_feedback_md(check)
    return kind


def render_junit(result: GradingResult) -> str:
    """``junit.xml``'s text: ``<testsuites>`` holding one ``<testsuite>`` for the assignment."""
    classname = clean_text(result.assignment) or "assignment"
    suites = ET.Element("testsuites", name="tapegrad autograder")
    suite = ET.SubElement(suites, "testsuite", name=classname)
    props: dict[str, object] = {
        "score": round_score(result.score),
        "max_score": round_score(result.max_score),
        "submission_hash": result.submission_hash,
        "suite_hash": result.suite_hash,
        "seed_derivation": result.seed_derivation,
        "device": result.device,
        "sandbox": result.sandbox,
        **{f"version.{k}": v for k, v in result.versions.items()},
    }
    _properties(suite, props)

    kinds = [_testcase(suite, classname, check) for check in result.checks]
    if result.error:
        case = ET.SubElement(suite, "testcase", classname=classname, name="submission", time="0")
        err = ET.SubElement(case, "error", message=one_line(result.error), type="SubmissionError")
        err.text = safe(result.error, MAX_ERROR_CHARS)
        kinds.append("error")

    counts = {
        "tests": str(len(kinds)),
        "failures": str(kinds.count("failure")),
        "errors": str(kinds.count("error")),
        "skipped": "0",
        "time": f"{finite(result.wall_time):.3f}",
    }
    suite.attrib.update(counts)
    if result.started_at:
        suite.set("timestamp", clean_text(result.started_at))
    suites.attrib.update({k: v for k, v in counts.items() if k != "skipped"})
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )

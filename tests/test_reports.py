"""The report writers: results.json (Gradescope), report.md, report.html, junit.xml and the
terminal summary, rendered from hand-built results (full marks, partial credit, a submission
that could not be graded, hostile student text)."""

from __future__ import annotations

import html.parser
import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from autograder.grading.reports import (
    REPORTS,
    atomic_write_text,
    gradescope_results,
    render_html,
    render_markdown,
    render_step_summary,
    render_terminal,
    write_reports,
)
from autograder.grading.reports.gradescope import TEST_KEYS, TOP_LEVEL_KEYS
from autograder.grading.results import CaseOutcome, CheckResult, GradingResult

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SUB_HASH = "sha256:" + "3f2a9c1e7b4d" + "0" * 52
SUITE_HASH = "sha256:" + "9e8d7c6b5a41" + "1" * 52


def _result(checks: list[CheckResult], **kw: object) -> GradingResult:
    fields: dict[str, object] = dict(
        assignment="hw1",
        submission_hash=SUB_HASH,
        suite_hash=SUITE_HASH,
        seed_derivation="hmac-sha256:key-2025a",
        public=False,
        sandbox="bwrap",
        device="cpu",
        versions={"python": "3.11.7", "numpy": "1.26.4", "grader": "0.1.0"},
        checks=checks,
        wall_time=12.345,
        started_at="2025-03-01T14:02:03+00:00",
    )
    fields.update(kw)
    return GradingResult(**fields)  # type: ignore[arg-type]


def _cases(n_pass: int, failed: list[CaseOutcome]) -> list[CaseOutcome]:
    return [CaseOutcome(f"case {i}", True) for i in range(n_pass)] + failed


@pytest.fixture
def full_marks() -> GradingResult:
    return _result(
        [
            CheckResult("ops.add", "Addition", 2.0, 2.0, cases=_cases(6, []), wall_time=0.1),
            CheckResult(
                "ops.matmul",
                "Matrix product",
                3.0,
                3.0,
                visibility="hidden",
                cases=_cases(8, []),
                topic="ops",
            ),
        ]
    )


@pytest.fixture
def partial() -> GradingResult:
    failed = [
        CaseOutcome(
            f"broadcast {i}",
            False,
            f"mul: a (3, 1) * b (3, 4): grad_a has shape (3, 4), expected (3, 1) [{i}]",
            "missing_broadcast_reduction",
        )
        for i in range(7)
    ]
    failed.append(CaseOutcome("reused node", False, "x * x: grad off by 2x", "no_accumulation"))
    return _result(
        [
            CheckResult(
                "ops.mul",
                "Multiplication",
                4.0,
                4.0 * 6 / 14,
                cases=_cases(6, failed),
                wall_time=0.42,
                topic="ops",
            ),
            CheckResult(
                "ops.softmax",
                "Softmax",
                2.0,
                0.0,
                visibility="after_published",
                error="not implemented: tapegrad.ops.softmax raises NotImplementedError",
            ),
            CheckResult(
                "mnist.mlp",
                "MNIST MLP",
                4.0,
                4.0,
                cases=_cases(1, []),
                extra={"accuracy": 0.9312},
            ),
        ]
    )


@pytest.fixture
def broken() -> GradingResult:
    return _result(
        [],
        error="tapegrad could not be imported: SyntaxError: invalid syntax (tensor.py, line 12)",
        sandbox="none",
        notes=["sandbox none: resource limits only"],
        wall_time=0.5,
    )


HOSTILE = (
    "<script>alert('x')</script> & \x1b[31mred\x1b[0m \x00\x07\x0b\x0c bell "
    "\ud83d\ude00 lone surrogate \udcff ünïcödé 中文 emoji 🎉 ]]> ``` `` | # *"
    + ("very long " * 1000)
)


@pytest.fixture
def hostile() -> GradingResult:
    return _result(
        [
            CheckResult(
                "ops.exp",
                "<b>Exp</b> ünïcödé 名前 " + "long name " * 20,
                3.0,
                1.0,
                cases=[
                    CaseOutcome("<img src=x onerror=alert(1)>", False, HOSTILE, "<script>"),
                    CaseOutcome("ok", True),
                ],
            ),
            CheckResult("ops.log", "Log", 1.0, 0.0, error=HOSTILE),
        ],
        error=HOSTILE,
        notes=[HOSTILE],
    )


ALL = ["full_marks", "partial", "broken", "hostile"]


@pytest.fixture(params=ALL)
def any_result(request: pytest.FixtureRequest) -> GradingResult:
    return request.getfixturevalue(request.param)


# ------------------------------------------------------------------------------- writing


def test_write_reports_writes_every_file(any_result: GradingResult, tmp_path: Path) -> None:
    out = tmp_path / "out" / "nested"
    paths = write_reports(any_result, out)
    assert set(paths) == set(REPORTS)
    assert {p.name for p in paths.values()} == {
        "results.json",
        "report.md",
        "report.html",
        "junit.xml",
    }
    assert sorted(os.listdir(out)) == sorted(p.name for p in paths.values())  # no temp files
    for p in paths.values():
        assert p.stat().st_size > 0
        p.read_text(encoding="utf-8")  # valid UTF-8 even with lone surrogates in the input


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")
    atomic_write_text(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["results.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    atomic_write_text(target, "old")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "half written \udcff")  # fails during the write
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["report.md"]


def test_renderer_failure_writes_nothing(
    partial: GradingResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(result: GradingResult) -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setitem(REPORTS, "junit", ("junit.xml", boom))
    with pytest.raises(RuntimeError):
        write_reports(partial, tmp_path)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- results.json


def _results_json(result: GradingResult, tmp_path: Path) -> dict:
    return json.loads(write_reports(result, tmp_path)["gradescope"].read_text(encoding="utf-8"))


def test_results_json_uses_only_documented_keys(any_result: GradingResult, tmp_path: Path) -> None:
    data = _results_json(any_result, tmp_path)
    assert set(data) <= TOP_LEVEL_KEYS
    assert {"score", "tests", "output", "extra_data"} <= set(data)
    assert data["output_format"] == "md"
    for test in data["tests"]:
        assert set(test) <= TEST_KEYS
        assert test["status"] in ("passed", "failed")
        assert test["output_format"] == "md"
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    # the documented keys themselves, as Gradescope spells them
    assert TOP_LEVEL_KEYS >= {"execution_time", "stdout_visibility", "visibility"}
    assert TEST_KEYS >= {"max_score", "number", "tags", "name"}


def test_results_json_score_is_sum_of_tests(partial: GradingResult, tmp_path: Path) -> None:
    data = _results_json(partial, tmp_path)
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=1e-9)
    assert data["score"] == pytest.approx(partial.score, abs=1e-3)
    mul = data["tests"][0]
    assert mul["score"] == round(4.0 * 6 / 14, 4)  # rounded to 4 decimals
    assert mul["max_score"] == 4.0
    assert [t["status"] for t in data["tests"]] == ["failed", "failed", "passed"]
    assert [t["number"] for t in data["tests"]] == ["1", "2", "3"]
    assert mul["tags"] == ["ops"]


def test_results_json_preserves_visibility(
    partial: GradingResult, full_marks: GradingResult, tmp_path: Path
) -> None:
    assert [t["visibility"] for t in gradescope_results(partial)["tests"]] == [
        "visible",
        "after_published",
        "visible",
    ]
    assert gradescope_results(full_marks)["tests"][1]["visibility"] == "hidden"


def test_unknown_visibility_is_hidden(partial: GradingResult) -> None:
    partial.checks[0].visibility = "hiden"  # a typo must not reveal a check
    partial.checks[2].visibility = "public"
    tests = gradescope_results(partial)["tests"]
    assert tests[0]["visibility"] == "hidden"
    assert tests[2]["visibility"] == "visible"


def test_results_json_extra_data(partial: GradingResult, tmp_path: Path) -> None:
    data = _results_json(partial, tmp_path)
    extra = data["extra_data"]
    assert extra["submission_hash"] == SUB_HASH
    assert extra["suite_hash"] == SUITE_HASH
    assert extra["seed_derivation"] == "hmac-sha256:key-2025a"
    assert extra["versions"]["numpy"] == "1.26.4"
    assert (extra["device"], extra["sandbox"]) == ("cpu", "bwrap")
    assert extra["max_score"] == 10.0
    mul, softmax, mnist = (t["extra_data"] for t in data["tests"])
    assert mul["id"] == "ops.mul"
    assert (mul["cases_passed"], mul["cases_total"]) == (6, 14)
    assert mul["bug_classes"] == ["missing_broadcast_reduction", "no_accumulation"]
    assert mul["wall_time"] == 0.42
    assert "not implemented" in softmax["error"]
    assert mnist["extra"] == {"accuracy": 0.9312}


def test_results_json_feedback(partial: GradingResult) -> None:
    data = gradescope_results(partial)
    mul, softmax, _ = (t["output"] for t in data["tests"])
    assert "grad_a has shape (3, 4), expected (3, 1) [0]" in mul  # the failed cases' messages
    assert "and 3 more failed cases" in mul  # 8 failed, 5 listed
    assert "sum it back over the broadcast axes" in mul  # bug class in plain words
    assert "not implemented" in softmax
    # the top-level output is shown even when tests are hidden: no check, no score in it
    assert "ops.mul" not in data["output"] and "Multiplication" not in data["output"]


def test_results_json_strict_with_nan_and_numpy(partial: GradingResult) -> None:
    np = pytest.importorskip("numpy")
    partial.checks[0].score = float("nan")
    partial.checks[2].extra = {"accuracy": np.float32(0.5), "curve": np.arange(3), "bad": np.inf}
    text = REPORTS["gradescope"][1](partial)
    data = json.loads(text)  # strict: NaN would not parse in Gradescope's JSON
    assert data["tests"][0]["score"] == 0.0
    assert data["tests"][2]["extra_data"]["extra"] == {
        "accuracy": 0.5,
        "curve": [0, 1, 2],
        "bad": None,
    }


def test_results_json_for_broken_submission(broken: GradingResult, tmp_path: Path) -> None:
    data = _results_json(broken, tmp_path)
    assert data["score"] == 0
    assert data["tests"] == []
    assert "SyntaxError" in data["output"]
    assert "without a sandbox" in data["output"]
    assert data["extra_data"]["error"].startswith("tapegrad could not be imported")


def test_results_json_hostile_is_clean(hostile: GradingResult, tmp_path: Path) -> None:
    text = write_reports(hostile, tmp_path)["gradescope"].read_text(encoding="utf-8")
    data = json.loads(text)
    blob = json.dumps(data, ensure_ascii=False)
    assert "\x1b" not in blob and "\x00" not in blob
    assert "\\x1b[31m" in data["tests"][0]["output"]  # shown, not interpreted
    assert len(data["tests"][0]["output"]) < 40_000  # long messages are capped


# -------------------------------------------------------------------------------- junit.xml


def _junit(result: GradingResult, tmp_path: Path) -> ET.Element:
    return ET.parse(write_reports(result, tmp_path)["junit"]).getroot()


def test_junit_counts(partial: GradingResult, tmp_path: Path) -> None:
    root = _junit(partial, tmp_path)
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("classname") for c in cases] == ["hw1"] * 3
    assert [c.get("name") for c in cases] == [
        "ops.mul: Multiplication",
        "ops.softmax: Softmax",
        "mnist.mlp: MNIST MLP",
    ]
    assert cases[0].get("time") == "0.420"
    failure = cases[0].find("failure")
    assert failure is not None and "6/14 cases passed" in failure.get("message", "")
    assert "Failed cases" in (failure.text or "")
    error = cases[1].find("error")
    assert error is not None and "not implemented" in error.get("message", "")
    assert cases[2].find("failure") is None and cases[2].find("error") is None
    props = {p.get("name"): p.get("value") for p in cases[0].iter("property")}
    assert props["score"] == str(round(4.0 * 6 / 14, 4)) and props["max_score"] == "4.0"
    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties") or []}
    assert suite_props["submission_hash"] == SUB_HASH
    assert suite_props["max_score"] == "10.0"


def test_junit_full_marks(full_marks: GradingResult, tmp_path: Path) -> None:
    suite = _junit(full_marks, tmp_path).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("2", "0", "0")


def test_junit_broken_submission_is_an_error(broken: GradingResult, tmp_path: Path) -> None:
    suite = _junit(broken, tmp_path).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("errors")) == ("1", "1")  # never "0 tests, all fine"
    error = suite.find("testcase/error")
    assert error is not None and "SyntaxError" in (error.text or "")


def test_junit_hostile_parses(hostile: GradingResult, tmp_path: Path) -> None:
    path = write_reports(hostile, tmp_path)["junit"]
    root = ET.parse(path).getroot()  # control characters would make this raise
    raw = path.read_text(encoding="utf-8")
    assert "<script>" not in raw and "\x1b" not in raw
    messages = [e.get("message", "") for e in root.iter() if e.tag in ("failure", "error")]
    assert len(messages) == 3 and all("\n" not in m for m in messages)
    assert "<script>" in "".join(e.text or "" for e in root.iter("failure"))  # escaped, kept


# ------------------------------------------------------------------------------ report.md


def test_markdown_partial(partial: GradingResult) -> None:
    md = render_markdown(partial)
    assert md.startswith("# Feedback: hw1")
    assert "| Check | Points | Status | Cases passed |" in md
    assert "| ops.mul: Multiplication | 1.71 / 4.0 |" in md
    assert "**Total** | **5.71 / 10.0**" in md
    assert "3f2a9c1e7b4d" in md and "2025-03-01 14:02 UTC" in md
    assert "Missing broadcast reduction" in md and "No accumulation" in md
    assert md.count("- **broadcast") == 5 and "and 3 more failed cases" in md
    assert "accuracy: 0.9312" in md


def test_markdown_error_is_prominent(broken: GradingResult) -> None:
    md = render_markdown(broken)
    assert "Grading error" in md and "SyntaxError: invalid syntax" in md
    assert md.index("Grading error") < md.index("| Submission")  # before everything else
    assert "without a sandbox" in md  # sandbox "none" warning
    assert "resource limits only" in md  # notes


def test_markdown_hostile_inside_code(hostile: GradingResult) -> None:
    md = render_markdown(hostile)
    assert "\x1b" not in md and "\x00" not in md
    # the message's ``` cannot close the code block around it: the fence is longer
    assert "````text" in md
    assert "\\<b\\>Exp\\</b\\>" in md  # the check name is escaped in titles and cells


# ---------------------------------------------------------------------------- report.html


class _Collector(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collector:
    c = _Collector()
    c.feed(page)
    return c


def test_html_content(partial: GradingResult) -> None:
    page = render_html(partial)
    parsed = _parse(page)
    text = " ".join(parsed.text)
    for check in partial.checks:
        assert check.name in text
    assert "5.71" in text and "10.0" in text
    assert parsed.tags.count("details") == 3
    assert page.count('<details class="card check passed"') == 1
    assert page.count(" open>") == 2  # the two checks that lost points
    assert "Missing broadcast reduction" in text
    assert "Failed cases (8 of 14)" in text
    assert page.count("<li><strong>broadcast ") == 5  # the first 5 failed cases, with messages
    assert "grad_a has shape (3, 4), expected (3, 1) [4]" in text
    assert "[5]" not in text and "grad off by 2x" not in text  # not among the first 5
    assert "and 3 more failed cases" in text
    assert "Could not run" in text and "tapegrad.ops.softmax raises NotImplementedError" in text
    assert "accuracy: 0.9312" in text and "All cases passed." in text
    assert 'href="#check-ops-mul"' in page and 'id="check-ops-mul"' in page


def test_html_does_not_read_check_output(partial: GradingResult) -> None:
    # reports are the only authors of feedback text: an "output" on a check (no longer a field
    # of CheckResult, so set as a stray attribute) is never shown
    for check in partial.checks:
        setattr(check, "output", "OUTPUT-SENTINEL <script>")  # noqa: B010
    page = render_html(partial)
    assert "OUTPUT-SENTINEL" not in page
    assert "grad_a has shape (3, 4)" in page


def test_html_no_feedback(partial: GradingResult) -> None:
    partial.checks[0].cases = []  # lost points, but neither an error nor failed cases
    page = render_html(partial)
    assert page.count("No feedback.") == 1 and page.count("All cases passed.") == 1


def test_html_is_self_contained(any_result: GradingResult) -> None:
    parsed = _parse(render_html(any_result))
    assert "script" not in parsed.tags and "link" not in parsed.tags and "img" not in parsed.tags
    urls = [v for k, v in parsed.attrs if k in ("src", "href") and v]
    assert all(u.startswith("#") for u in urls)


def test_html_escapes_hostile_text(hostile: GradingResult) -> None:
    page = render_html(hostile)
    assert "<script>" not in page and "<img" not in page and "<b>Exp" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;/script&gt;" in page
    parsed = _parse(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    text = "".join(parsed.text)  # shown as text, once per place: error, note, check error, case
    assert text.count("<script>alert('x')</script>") == 4
    assert "<img src=x onerror=alert(1)>" in text and "<b>Exp</b>" in text
    assert "\x1b" not in page and "\x00" not in page
    assert "\\x1b[31m" in page and "\\x00\\x07\\x0b\\x0c" in page  # shown, not interpreted
    assert "very long " * 100 in text and "more characters]" in text  # capped, not dropped
    assert "中文" in page and "🎉" in page


def test_html_cleans_every_field(partial: GradingResult) -> None:
    # not only messages: every string on the page loses its control characters
    evil = "\x1b[2J\x00<i>"
    for name in ("assignment", "submission_hash", "seed_derivation", "sandbox", "device"):
        setattr(partial, name, evil)
    partial.versions[evil] = evil
    partial.started_at = evil
    check = partial.checks[0]
    check.id, check.name, check.topic, check.visibility = evil, evil, evil, evil
    check.cases[6].label = evil  # the first failed case
    partial.checks[2].extra = {evil: evil}
    page = render_html(partial)
    assert "\x1b" not in page and "\x00" not in page and "<i>" not in page
    assert page.count("\\x1b[2J\\x00&lt;i&gt;") >= 10


def test_html_error_banner(broken: GradingResult) -> None:
    page = render_html(broken)
    assert page.index("</header>") < page.index("Grading error") < page.index("Reproducibility")
    assert "SyntaxError: invalid syntax" in page
    assert "alert warn" in page


# ------------------------------------------------------------------------------- terminal


def test_terminal_without_color(partial: GradingResult) -> None:
    out = render_terminal(partial, color=False)
    assert not ANSI.search(out) and "\x1b" not in out
    assert "1.71/4.0" in out and "partial" in out and "6/14" in out
    assert "error" in out and "passed" in out
    total = [ln for ln in out.splitlines() if ln.strip().startswith("Total")]
    assert total and "5.71/10.0" in total[0] and "57.1%" in total[0]


def test_terminal_with_color(partial: GradingResult) -> None:
    out = render_terminal(partial, color=True)
    assert "\x1b[32m" in out and "\x1b[33m" in out and "\x1b[31m" in out
    assert ANSI.sub("", out) == render_terminal(partial, color=False)


def test_terminal_width_and_hostile(hostile: GradingResult) -> None:
    out = render_terminal(hostile, color=False)
    assert "\x1b" not in out  # the student's own escapes are neutralised
    assert all(len(line) <= 100 for line in out.splitlines())
    assert "ERROR:" in out


def test_terminal_broken(broken: GradingResult) -> None:
    out = render_terminal(broken, color=False)
    assert "ERROR: tapegrad could not be imported" in out
    assert "0.0/0.0" in out


# ---- the CI job summary ($GITHUB_STEP_SUMMARY) ---------------------------------------------------


def test_step_summary_folds_the_checks_that_lost_points(partial: GradingResult) -> None:
    text = render_step_summary(partial)
    assert text.startswith("## hw1: ")
    folded = re.findall(r"<details><summary>(.*?)</summary>", text)
    assert len(folded) == 2  # ops.mul (partial) and ops.softmax (error); not mnist.mlp
    assert "grad_a has shape (3, 4)" in text and "not implemented" in text


def test_step_summary_stays_under_its_limit_and_counts_what_it_left_out() -> None:
    message = "x" * 4000
    checks = [
        CheckResult(
            f"ops.c{i}",
            f"check {i}",
            1.0,
            0.0,
            cases=[CaseOutcome(f"case {j}", False, message) for j in range(5)],
        )  # fmt: skip
        for i in range(200)
    ]
    text = render_step_summary(_result(checks), limit=64 * 1024)
    assert len(text.encode()) <= 64 * 1024
    shown = text.count("<details>")
    assert 0 < shown < 200
    assert f"and {200 - shown} more checks that lost points" in text


def test_grade_appends_the_step_summary_even_when_it_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autograder.cli import main

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main([str(tmp_path / "missing"), "--assignment", "hw1"]) == 2
    text = summary.read_text()
    assert text.startswith("earlier step\n## hw1: ")
    assert "does not exist" in text

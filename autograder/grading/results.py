"""What grading produces: one :class:`CheckResult` per check, gathered in a
:class:`GradingResult`: facts (scores, cases, bug classes, errors, timings), not prose. The
report writers (:mod:`autograder.grading.reports`) read these and are the only authors of
feedback text.

Plain dataclasses of JSON-friendly values, so a result can be written, read back and compared
without pickling anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["CaseOutcome", "CheckResult", "GradingResult", "VISIBILITIES"]

# Gradescope's visibility values; "public" checks are shown as "visible".
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


@dataclass
class CaseOutcome:
    """One randomized case of a check."""

    label: str  # what the case exercises: "broadcast a row", "scalar", ...
    passed: bool
    message: str = ""  # feedback: op, shapes, expected vs got (a summary), the likely bug
    bug_class: str | None = None  # a key of autograder.diagnose.BUG_CLASSES, when recognised


@dataclass
class CheckResult:
    """One check: points, status and feedback, as students and Gradescope see them."""

    id: str  # "ops.mul", "mnist.mlp", ...
    name: str  # human-readable title
    max_score: float
    score: float = 0.0
    visibility: str = "visible"
    cases: list[CaseOutcome] = field(default_factory=list)
    error: str | None = None  # the check could not run: not implemented, crash, timeout
    wall_time: float = 0.0  # seconds
    topic: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. {"accuracy": 0.93}

    @property
    def status(self) -> str:
        """Gradescope knows "passed" and "failed"; partial credit counts as failed."""
        return "passed" if self.score >= self.max_score - 1e-9 else "failed"

    @property
    def cases_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def bug_classes(self) -> list[str]:
        seen: list[str] = []
        for c in self.cases:
            if c.bug_class and c.bug_class not in seen:
                seen.append(c.bug_class)
        return seen

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckResult:
        d = {k: v for k, v in d.items() if k != "status"}
        d["cases"] = [CaseOutcome(**c) for c in d.get("cases", [])]
        return cls(**d)


@dataclass
class GradingResult:
    """Everything one grading run established about one submission."""

    assignment: str
    submission_hash: str  # sha256 of the submission's files (names and contents)
    suite_hash: str  # sha256 of the check definitions and the assignment config
    seed_derivation: str  # how case seeds were made: "public:<seed>" or "hmac-sha256:<key id>"
    public: bool
    sandbox: str  # "bwrap", "docker" or "none"
    device: str  # "cpu" or "cuda"
    versions: dict[str, str] = field(default_factory=dict)  # python, numpy, grader, ...
    checks: list[CheckResult] = field(default_factory=list)
    wall_time: float = 0.0
    started_at: str = ""  # ISO 8601, UTC
    notes: list[str] = field(default_factory=list)  # e.g. "sandbox none: resource limits only"
    error: str | None = None  # the submission as a whole could not be graded (and why)

    @property
    def score(self) -> float:
        return sum(c.score for c in self.checks)

    @property
    def max_score(self) -> float:
        return sum(c.max_score for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["checks"] = [c.to_dict() for c in self.checks]
        d["score"] = self.score
        d["max_score"] = self.max_score
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GradingResult:
        d = {k: v for k, v in d.items() if k not in ("score", "max_score")}
        d["checks"] = [CheckResult.from_dict(c) for c in d.get("checks", [])]
        return cls(**d)

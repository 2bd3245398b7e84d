"""The case loop every kind of check shares, and how a check talks to the worker.

A check is a list of cases. Each case is a label (what it exercises, shown to students) and a
function that draws its inputs, sends one request to the worker through ``request`` and judges
the reply, returning a :class:`~autograder.grading.diagnose.Verdict` and the text that says
which case it was ("same shape, input shapes (3, 4), (3, 4)"). :func:`run_cases` runs them in
order and turns each into a :class:`~autograder.grading.results.CaseOutcome`. When the
student's code fails (:class:`RequestFailed`), the case fails with that message; when the same
failure would repeat (not implemented, or the worker is gone), the remaining cases are recorded
as "not run" without being sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .diagnose import Verdict
from .results import CaseOutcome

__all__ = ["CaseRun", "Request", "RequestFailed", "run_cases", "take"]

Request = Callable[[dict[str, Any], list[np.ndarray]], tuple[dict[str, Any], list[np.ndarray]]]
CaseRun = Callable[[Request], tuple[Verdict, str]]  # -> (verdict, which case, in words)


class RequestFailed(Exception):
    """The worker could not answer (the student's code raised, hung or crashed).

    ``bug_class`` is "not_implemented", "crash" or "timeout"; ``fatal`` means the worker is
    gone (or unusable) and the remaining cases of the check are not run.
    """

    def __init__(self, message: str, bug_class: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.bug_class = bug_class
        self.fatal = fatal


def run_cases(
    request: Request, title: str, cases: Sequence[tuple[str, CaseRun]]
) -> list[CaseOutcome]:
    """Run every case of one check; ``title`` names what is checked in each message
    ("mul", "BatchNorm1d", "numerical_derivative")."""
    outcomes: list[CaseOutcome] = []
    for n, (label, run) in enumerate(cases):
        try:
            verdict, about = run(request)
        except RequestFailed as exc:
            outcomes.append(CaseOutcome(label, False, f"{title} ({label}): {exc}", exc.bug_class))
            if exc.fatal or exc.bug_class == "not_implemented":
                outcomes += [
                    CaseOutcome(rest, False, f"not run: {exc}", exc.bug_class)
                    for rest, _ in cases[n + 1 :]
                ]
                break
            continue
        message = "" if verdict.ok else f"{title} ({about}): {verdict.message}"
        outcomes.append(CaseOutcome(label, verdict.ok, message, verdict.bug_class))
    return outcomes


def take(arrays: list[np.ndarray], count: int) -> list[np.ndarray]:
    """The first ``count`` arrays of a reply, removed from ``arrays``; a reply with fewer is
    the worker's failure."""
    if len(arrays) < count:
        raise RequestFailed("the worker's reply was incomplete", "crash")
    taken = arrays[:count]
    del arrays[:count]
    return taken

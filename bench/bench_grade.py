"""How long grading takes: the full hidden suite of each assignment on its reference submission.

    python bench/bench_grade.py [hw1 hw2 ...]

Prints the wall time of each grading (worker start, every check, MNIST training where the
assignment has it) and the slowest checks. Targets on a 2-core machine: hw1 <= 15 s, hw2 with
the MNIST-sample threshold <= 60 s.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.authoring.reference import build_reference  # noqa: E402
from autograder.config import assignment_ids  # noqa: E402
from autograder.grading.pipeline import GradeOptions, grade_submission  # noqa: E402

TARGETS = {"hw1": 15.0, "hw2": 60.0}


def main(argv: list[str]) -> int:
    ids = argv or assignment_ids(ROOT)
    print(f"grading the reference submissions on {os.cpu_count()} CPUs, sandbox: default")
    for aid in ids:
        with tempfile.TemporaryDirectory() as tmp:
            submission = Path(tmp) / aid
            build_reference(aid, ROOT, submission)
            start = time.perf_counter()
            result = grade_submission(submission, aid, GradeOptions(secret=b"bench"))
            seconds = time.perf_counter() - start
        target = TARGETS.get(aid)
        verdict = ""
        if target is not None:
            verdict = f"(target <= {target:g} s: {'ok' if seconds <= target else 'MISSED'})"
        print(
            f"\n{aid}: {result.score:g}/{result.max_score:g} points, {len(result.checks)} checks, "
            f"{seconds:.1f} s wall {verdict}"
        )
        for check in sorted(result.checks, key=lambda c: -c.wall_time)[:5]:
            print(f"  {check.wall_time:6.2f} s  {check.id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

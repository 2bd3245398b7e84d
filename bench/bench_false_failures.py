"""False failures of the hidden suite: the reference graded under many different case seeds.

    python bench/bench_false_failures.py [--seeds N] [-j J] [hw1 hw2 ...]

Hidden cases are seeded from the submission's hash, so N copies of the reference submission
that differ only by a comment line are N independent draws of every randomized case. They are
graded with ``grade batch`` (default sandbox) and every copy below full marks is a false
failure of the suite: a case the reference cannot pass (an input too close to a kink, a
tolerance too tight). Prints the count and the checks involved. Target: 0 in 1,000 per
assignment.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.authoring.reference import build_reference  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=["hw1", "hw2", "hw3"])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    failures = 0
    for assignment in args.assignments:
        with tempfile.TemporaryDirectory(prefix="bench-false-") as tmp:
            reference = Path(tmp) / "reference"
            build_reference(assignment, ROOT, reference)
            shutil.rmtree(reference / "data", ignore_errors=True)  # the grader has its own
            klass = Path(tmp) / "class"
            klass.mkdir()
            for i in range(args.seeds):
                copy = klass / f"r{i:05d}"
                shutil.copytree(reference, copy)
                with open(copy / "tapegrad" / "__init__.py", "a") as f:
                    f.write(f"\n# copy {i}: another hash, other hidden cases\n")
            out = Path(tmp) / "out"
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", "autograder.cli", "batch", str(klass), "--assignment",
                 assignment, "--out", str(out), "-j", str(args.jobs)],
                capture_output=True, text=True,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            rows = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text())))
            bad = [r for r in rows if r["status"] != "graded" or float(r["total"]) < 100 - 1e-9]
            failures += len(bad)
            print(f"{assignment}: {len(bad)} false failures in {len(rows)} seeds "
                  f"({seconds:.0f} s, exit {done.returncode})")  # fmt: skip
            for r in bad[:10]:
                results = json.loads((out / r["student"] / "results.json").read_text())
                lost = [
                    f"{t['extra_data']['id']} {t['score']:g}/{t['max_score']:g}"
                    for t in results["tests"]
                    if t["score"] < t["max_score"]
                ]
                print(f"  {r['student']}: {r['total']} ({r['status']}): {', '.join(lost)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""How fast ``grade batch`` grades a class, and how it scales with ``-j``.

    python bench/bench_batch.py [--students N] [--jobs 1,2] [hw1 hw2 ...]

Builds a class of N submissions per assignment (a third finished work, a third untouched
releases, a third finished work with one classic bug each from ``assignments/<id>/bugs.toml``
where there is one), grades it with ``grade batch -j J`` for each J, in a fresh OUT each time
under the default sandbox, and prints submissions per minute and the scaling efficiency
(rate at -j J / (J x rate at -j 1)). Targets on a 2-core machine: a 300-student hw1 in under
5 minutes, efficiency from -j 1 to -j 2 >= 0.85.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autograder.authoring.bugs import CATALOGUE_FILE, apply_patches, load_catalogue  # noqa: E402
from autograder.authoring.reference import build_reference  # noqa: E402
from autograder.authoring.release import build_release  # noqa: E402


def make_class(assignment: str, students: int, dest: Path) -> None:
    sources = dest.parent / f"{assignment}-sources"
    build_reference(assignment, ROOT, sources / "reference")
    build_release(assignment, ROOT, sources / "release")
    catalogue = ROOT / "assignments" / assignment / CATALOGUE_FILE
    bugs = load_catalogue(catalogue) if catalogue.is_file() else ()
    dest.mkdir(parents=True)
    for i in range(students):
        target = dest / f"s{i:04d}"
        if i % 3 == 0:
            shutil.copytree(sources / "reference", target)
        elif i % 3 == 1:
            shutil.copytree(sources / "release", target)
        elif bugs:
            apply_patches(sources / "reference", target, bugs[i % len(bugs)].patches)
        else:
            shutil.copytree(sources / "reference", target)


def grade_batch(klass: Path, assignment: str, jobs: int, out: Path) -> float:
    command = [sys.executable, "-m", "autograder.cli", "batch", str(klass), "--assignment",
               assignment, "--out", str(out), "-j", str(jobs)]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"grade batch failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return seconds


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignments", nargs="*", default=["hw1", "hw2"])
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--jobs", default="1,2", help="comma-separated -j values")
    args = parser.parse_args(argv)
    jobs = [int(j) for j in args.jobs.split(",")]
    print(f"grade batch on {os.cpu_count()} CPUs, default sandbox, {args.students} submissions")
    for assignment in args.assignments:
        with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
            klass = Path(tmp) / "class"
            make_class(assignment, args.students, klass)
            rates = {}
            for j in jobs:
                seconds = grade_batch(klass, assignment, j, Path(tmp) / f"out-j{j}")
                rates[j] = 60 * args.students / seconds
                print(f"{assignment} -j {j}: {seconds:6.1f} s, {rates[j]:6.1f} submissions/min"
                      f" ({300 / rates[j]:.1f} min for 300)")  # fmt: skip
            if 1 in rates:
                for j in jobs:
                    if j > 1:
                        efficiency = rates[j] / (j * rates[1])
                        verdict = "ok" if efficiency >= 0.85 else "MISSED"
                        print(f"{assignment}: scaling efficiency -j 1 -> -j {j}: {efficiency:.2f}"
                              f" (target >= 0.85: {verdict})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

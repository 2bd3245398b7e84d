"""``make demo``: the kit's main job, end to end, on this machine.

1. tapegrad at work: a finite-difference gradient check report and a short MLP training run
   on the bundled MNIST sample, with its learning curves saved as a PNG;
2. the starter regenerated from the solution and verified;
3. the reference submission of hw1 and a sample buggy submission (the reference with three
   classic bugs planted) graded with the hidden checks; the score tables printed and the
   reports written under ``out/demo/``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .authoring.bugs import CATALOGUE_FILE, DEMO_BUGS, apply_patches, load_catalogue
from .authoring.reference import build_reference
from .authoring.starter import check_starter
from .grading.pipeline import GradeOptions, grade_submission
from .grading.reports import render_terminal, write_reports
from .paths import KIT_ROOT


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def plant_bugs(reference: Path, buggy: Path) -> None:
    """Copy the reference submission to ``buggy`` with the catalogue's :data:`DEMO_BUGS` planted."""
    bugs = {b.id: b for b in load_catalogue(KIT_ROOT / "assignments" / "hw1" / CATALOGUE_FILE)}
    apply_patches(reference, buggy, [p for bug in DEMO_BUGS for p in bugs[bug].patches])


def showcase(root: Path, out: Path) -> None:
    """A gradient check and a short training run, in a subprocess on the reference package."""
    code = (
        "import numpy as np, tapegrad as tg\n"
        "rng = np.random.default_rng(0)\n"
        "print(tg.check_grad(lambda a, b: tg.tanh(a @ b).sum(axis=1), rng.standard_normal((3, 4)),"
        " rng.standard_normal((4, 2))))\n"
        "from tapegrad.train import main\n"
        f"main(['--epochs', '5', '--plot', {str(out / 'curves.png')!r}])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(root / "solution"))
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def main() -> int:
    root = KIT_ROOT
    out = root / "out" / "demo"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    _section("tapegrad: a gradient check and MNIST training (bundled sample)")
    showcase(root, out)

    _section("starter: generated from solution/ by stripping solution blocks")
    differences = check_starter(root / "solution" / "tapegrad", root / "starter" / "tapegrad")
    print(
        "starter/ is up to date"
        if not differences
        else f"starter/ is STALE: {len(differences)} files differ"
    )

    reference = out / "submissions" / "reference-hw1"
    buggy = out / "submissions" / "buggy-hw1"
    build_reference("hw1", root, reference)
    plant_bugs(reference, buggy)
    options = GradeOptions(secret=b"demo-secret: set GRADER_SECRET for real grading")
    for name, submission in (("reference-hw1", reference), ("buggy-hw1", buggy)):
        _section(f"grade {submission.relative_to(root)} --assignment hw1")
        start = time.perf_counter()
        result = grade_submission(submission, "hw1", options)
        print(render_terminal(result, color))
        paths = write_reports(result, out / "reports" / name)
        print(
            f"graded in {time.perf_counter() - start:.1f} s; reports: "
            + ", ".join(str(p.relative_to(root)) for p in paths.values())
        )
    _section("done")
    print(f"learning curves: {(out / 'curves.png').relative_to(root)}")
    print(f"feedback pages:  {(out / 'reports' / 'buggy-hw1' / 'report.html').relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

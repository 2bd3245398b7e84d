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

from .grading.pipeline import GradeOptions, grade_submission, kit_root
from .authoring.reference import build_reference
from .grading.reports import render_terminal, write_reports
from .authoring.starter import check_starter

# Classic bugs planted in the sample buggy submission: (file, reference text, buggy text).
SAMPLE_BUGS = (
    # Mul.backward forgets to sum the gradient back to a broadcast input's shape
    (
        "tapegrad/ops.py",
        "ga = sum_to(gy * b, a.shape) if a.requires_grad_ else None",
        "ga = gy * b if a.requires_grad_ else None",
    ),
    # Sin.backward ignores the upstream gradient
    ("tapegrad/ops.py", "return (gy * cos(self.inputs[0]),)", "return (cos(self.inputs[0]),)"),
    # backprop overwrites instead of accumulating: reused nodes lose gradient
    (
        "tapegrad/tensor.py",
        "grads[id(x)] = gx if previous is None else previous + gx",
        "grads[id(x)] = gx",
    ),
)


def _section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def plant_bugs(submission: Path) -> None:
    for rel, good, bad in SAMPLE_BUGS:
        path = submission / rel
        text = path.read_text()
        if text.count(good) != 1:
            raise RuntimeError(f"demo: cannot plant a bug in {rel}: the reference changed")
        path.write_text(text.replace(good, bad))


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
    root = kit_root()
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
    shutil.copytree(reference, buggy)
    plant_bugs(buggy)
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

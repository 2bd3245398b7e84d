"""``kit reference ID --out DIR``: the reference submission of an assignment.

A submission is a directory holding a ``tapegrad/`` package and the assignment's notebooks
under their release names. The reference one holds the instructor's: ``solution/tapegrad/``
as it is (solutions kept) and the nbgrader source notebooks (solutions and hidden tests kept),
with the bundled MNIST sample under ``data/`` as in every student release. Grading it must give
full marks, which makes it the end-to-end test of an assignment's checks. It is also the
convenient way to run the source notebooks, wherever ``DIR`` is: ``tapegrad/`` sits next to
them, so ``import tapegrad`` works from the notebook's directory, and ``tg.data.load_mnist()``
finds ``data/mnist-sample/`` above the package, as in a student's release (``MNIST_DIR`` still
takes precedence when set).

The directory is built in a temporary directory beside ``DIR`` and moved into place when
complete (see :func:`autograder.authoring.release.write_atomically`).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from autograder.authoring.release import (
    ReleaseError,
    copy_bundled_data,
    copy_tree,
    write_atomically,
)
from autograder.authoring.starter import PACKAGE
from autograder.config import load_assignment

__all__ = ["build_reference"]


def build_reference(assignment_id: str, root: Path, out: Path, force: bool = False) -> list[str]:
    """Write the reference submission of ``assignment_id`` to ``out``; return its files."""
    assignment = load_assignment(assignment_id, root)
    package = root / "solution" / PACKAGE
    if not package.is_dir():
        raise ReleaseError(f"solution package not found: {package}")

    def build(staging: Path) -> None:
        copy_tree(package, staging / PACKAGE)
        for name in assignment.notebooks:
            shutil.copy2(assignment.directory / name, staging / name)
        copy_bundled_data(root, staging)  # where load_mnist's default finds it, as in a release

    return write_atomically(out, build, root, force)


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``reference`` subcommand to the ``kit`` command line."""
    parser = subparsers.add_parser(
        "reference",
        parents=parents,
        help="assemble the reference submission of an assignment (solution package + notebooks)",
        description=(
            "Assemble the reference submission of an assignment: solution/tapegrad/, the "
            "source notebooks with their solutions and the bundled MNIST sample (data/), laid "
            "out as a student's submission. "
            "Grading it must give full marks."
        ),
    )
    parser.add_argument("assignment", metavar="ID", help="assignment id, e.g. hw1")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: out/reference-ID)"
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, root: Path) -> int:
    """Run ``kit reference ID [--out DIR] [--force]``."""
    out = args.out if args.out is not None else root / "out" / f"reference-{args.assignment}"
    files = build_reference(args.assignment, root, out, force=args.force)
    notebooks = ", ".join(f for f in files if f.endswith(".ipynb")) or "no notebooks"
    data = ", data/" if any(f.startswith("data/") for f in files) else ""
    print(f"reference {args.assignment}: {out} (tapegrad/ with solutions, {notebooks}{data})")
    return 0

"""``kit release ID --out DIR``: the student release of an assignment, or a refusal.

The release is laid out as the student's repository root::

    tapegrad/                  the starter: solution/tapegrad/ with EVERY solution block
                               (hw1, hw2 and hw3) replaced by raise NotImplementedError
    hw1.ipynb ...              the student notebooks, made by `nbgrader generate_assignment`
    tests/                     public tests of this and the earlier assignments + conftest.py
    data/                      the bundled MNIST sample (tg.data.load_mnist's default)
    checks/                    the public checks and their notebook answers, for
                               `grade . --assignment ID --public` (autograder/public.py)
    README.md  pyproject.toml  .gitignore  .github/workflows/grade.yml  .gitlab-ci.yml

Every release holds the whole starter, whatever the assignment: students keep one repository
for the course and fill it in homework by homework, so the hw2 release must not contain the
hw1 solutions (they keep their own), and the stubs of later homeworks tell them where the
course is going. The files in ``autograder/authoring/templates/`` are copied with ``@@ID@@``-style
placeholders filled in.

Before anything is written, every released file is scanned for leaks
(:mod:`autograder.authoring.leaks`: solution text, notebook hidden tests, hidden check ids),
and the release is refused, with nothing written, if it holds any.

The release is built in a temporary directory beside ``DIR`` and moved into place only when it
is complete and clean.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from autograder import KitError
from autograder.authoring.leaks import find_leaks, leak_patterns
from autograder.authoring.starter import (
    PACKAGE,
    SKIPPED_DIRS,
    SKIPPED_SUFFIXES,
    generate_starter,
    solution_blocks,
)
from autograder.config import Assignment, assignment_ids, load_assignment
from autograder.paths import SAMPLE
from autograder.public import write_public_checks
from autograder.worker.cells import graded_cells

__all__ = [
    "ReleaseError",
    "build_release",
    "copy_bundled_data",
    "generate_notebooks",
    "render_files",
    "write_atomically",
]

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The bundled MNIST sample, relative to the repository root; releases and reference submissions
# ship it at the same place, where tg.data.load_mnist() finds it by default.
# template path -> path in the release (those not listed keep their relative path)
RENAMED = {
    "gitignore": ".gitignore",
    "gitlab-ci.yml": ".gitlab-ci.yml",
    "github/workflows/grade.yml": ".github/workflows/grade.yml",
}
_PLACEHOLDER = re.compile(r"@@[A-Z_]+@@")


class ReleaseError(KitError):
    """The release cannot be built, or would leak solutions or hidden checks."""


# --------------------------------------------------------------------------- writing safely


def write_atomically(
    out: Path, build: Callable[[Path], None], root: Path, force: bool
) -> list[str]:
    """Run ``build(staging_dir)`` and move the result to ``out``; on any error write nothing.
    Returns the files written, relative to ``out``.

    ``out`` must not exist, be empty, or (with ``force``) be replaced whole. Refuses to write
    at or around the repository's own sources.
    """
    out = Path(out).resolve()
    root = Path(root).resolve()
    sources = [
        root / name
        for name in ("solution", "starter", "assignments", "autograder", "tests", "data")
    ]
    for path in [root, *sources]:
        replaces = out == path or out in path.parents  # out is the sources or holds them
        inside = path != root and path in out.parents  # out is somewhere in the sources
        if replaces or inside:
            raise ReleaseError(f"refusing to write to {out}: it would overwrite {path}")
    if out.exists() and not out.is_dir():
        raise ReleaseError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ReleaseError(f"--out {out} exists and is not empty; pass --force to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp's 0700 would make the release private
    try:
        build(staging)
        files = sorted(p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file())
        if out.exists():
            old = staging.with_name(staging.name.replace("building", "old"))
            out.rename(old)
            staging.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return files


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory without caches and compiled files."""
    shutil.copytree(
        src, dst, ignore=shutil.ignore_patterns(*SKIPPED_DIRS, *(f"*{s}" for s in SKIPPED_SUFFIXES))
    )


def copy_bundled_data(root: Path, dest: Path) -> None:
    """Copy the bundled MNIST sample (:data:`autograder.paths.SAMPLE`, with ``data/README.md``,
    its provenance) to the same place under ``dest``: beside a ``tapegrad/`` package in
    ``dest``, it is what ``tg.data.load_mnist()`` finds by default (the first
    ``data/mnist-sample`` above the package). Nothing is copied if the repository has no sample.
    """
    sample = root / SAMPLE
    if sample.is_dir():
        copy_tree(sample, dest / SAMPLE)
        readme = sample.parent / "README.md"
        if readme.is_file():
            shutil.copy2(readme, dest / SAMPLE.parent / "README.md")


# --------------------------------------------------------------------------- notebooks


def generate_notebooks(assignment: Assignment, dest: Path) -> list[Path]:
    """Student versions of the assignment's notebooks, made by nbgrader's own
    ``generate_assignment`` converter (what ``nbgrader generate_assignment ID --no-db`` runs)
    in a temporary course directory laid out as nbgrader expects (``source/<id>/``).

    Only the notebooks are copied into it, so nothing else from ``assignments/<id>/``
    (assignment.toml included) can reach the release. It runs in this process, with an
    explicit configuration: no personal or course ``nbgrader_config.py`` is read.
    """
    if not assignment.notebooks:
        return []
    try:
        from nbgrader.converters import GenerateAssignment
        from nbgrader.coursedir import CourseDirectory
        from traitlets.config import Config
    except ImportError as exc:
        raise ReleaseError(
            f"kit release needs nbgrader ({exc}): install the dev extra, pip install -e '.[dev]'"
        ) from None
    with tempfile.TemporaryDirectory(prefix="nbgrader-course-") as tmp:
        course = Path(tmp)
        source = course / "source" / assignment.id
        source.mkdir(parents=True)
        for name in assignment.notebooks:
            shutil.copy2(assignment.directory / name, source / name)
        config = Config()
        config.CourseDirectory.root = str(course)
        config.CourseDirectory.assignment_id = assignment.id
        config.GenerateAssignment.no_database = True  # --no-db
        config.SaveCells.enabled = False
        config.BaseConverter.force = True
        messages = _LogCapture()
        log = logging.getLogger("autograder.release.nbgrader")
        log.propagate = False
        log.setLevel(logging.WARNING)
        log.handlers = [messages]
        try:
            converter = GenerateAssignment(
                coursedir=CourseDirectory(config=config), config=config, log=log
            )
            converter.start()
        except Exception as exc:  # nbgrader reports bad metadata and the like by raising
            detail = "\n  ".join([*messages.lines[-15:], f"{type(exc).__name__}: {exc}"])
            raise ReleaseError(
                f"nbgrader generate_assignment {assignment.id} failed:\n  {detail}"
            ) from None
        written = []
        for name in assignment.notebooks:
            produced = course / "release" / assignment.id / name
            if not produced.is_file():
                raise ReleaseError(f"nbgrader did not produce release/{assignment.id}/{name}")
            _check_graded_cells_kept(assignment.directory / name, produced)
            shutil.copy2(produced, dest / name)
            written.append(dest / name)
    return written


class _LogCapture(logging.Handler):
    """Keeps nbgrader's warnings and errors for the error message instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname}: {record.getMessage()}")


def _check_graded_cells_kept(source: Path, released: Path) -> None:
    missing = set(graded_cells(source)) - set(graded_cells(released))
    if missing:
        raise ReleaseError(f"{released.name}: nbgrader dropped the graded cells {sorted(missing)}")


# --------------------------------------------------------------------------- leak scanning


def render_template(text: str, values: dict[str, str], name: str) -> str:
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", value)
    left = _PLACEHOLDER.search(text)
    if left:
        raise ReleaseError(f"autograder/templates/{name}: unknown placeholder {left.group(0)}")
    return text


def template_values(
    assignment: Assignment, grader: str = "", reveal: frozenset[str] = frozenset()
) -> dict[str, str]:
    """The placeholders' values; ``grader`` is the pip requirement students install the
    autograder with (the course's wheel URL, say), or "" when the course gives it otherwise;
    ``reveal`` the earlier assignments whose solutions the release fills in."""
    public_points = sum(c.points for c in assignment.public_checks)
    if any(c in grader for c in "\"'\n$`\\"):
        raise ReleaseError(f"--grader {grader!r}: quotes, $, ` and backslashes are not allowed")
    return {
        "ID": assignment.id,
        "TITLE": f"{assignment.id}: {assignment.title}",
        "NOTEBOOK_ROWS": ", ".join(f"`{n}`" for n in assignment.notebooks) or "(no notebook)",
        "FAIL_UNDER": f"{public_points:g}",
        "GRADER": grader,
        "GRADER_SHOWN": grader or "<the grader's pip requirement, from your course>",
        "WORKLOAD": f"**Workload:** {assignment.workload}\n\n" if assignment.workload else "",
        "GIVEN": _given(assignment, reveal),
    }


def _given(assignment: Assignment, reveal: frozenset[str]) -> str:
    if not reveal:
        return ""
    names = ", ".join(sorted(reveal))
    return (
        f"**Given:** the parts of `tapegrad/` that {names} asked for are filled in with the "
        f"course's solution, so that a bug left in {names} does not sink {assignment.id}: only "
        f'the `raise NotImplementedError("{assignment.id}: ...")` stubs are yours. Keep the '
        "given code as it is (or replace it with your own, at your risk).\n\n"
    )


def public_test_files(assignment: Assignment, root: Path, templates: Path) -> list[str]:
    """``tests/test_public_<id>.py`` of this assignment and the ones before it."""
    ids = assignment_ids(root)
    upto = ids[: ids.index(assignment.id) + 1] if assignment.id in ids else [assignment.id]
    return [
        f"tests/test_public_{i}.py"
        for i in upto
        if (templates / "tests" / f"test_public_{i}.py").is_file()
    ]


def stripped_assignments(root: Path, reveal: frozenset[str] = frozenset()) -> set[str] | None:
    """The solution blocks a release replaces by stubs: every block (None) or, with
    ``reveal``, every block but those of the revealed assignments."""
    if not reveal:
        return None
    blocks = {
        block_id
        for path in sorted((root / "solution" / PACKAGE).rglob("*.py"))
        for block_id, _, _ in solution_blocks(path.read_text(encoding="utf-8"), str(path))
    }
    return blocks - reveal


def check_reveal(assignment: Assignment, root: Path, reveal: frozenset[str]) -> None:
    """``reveal`` may name only assignments that come before ``assignment``."""
    ids = assignment_ids(root)
    earlier = ids[: ids.index(assignment.id)] if assignment.id in ids else []
    for other in sorted(reveal):
        if other not in earlier:
            why = (
                "it is the assignment being released"
                if other == assignment.id
                else f"only earlier assignments can be revealed: {', '.join(earlier) or 'none'}"
            )
            raise ReleaseError(f"--reveal {other}: {why}")


def render_files(
    assignment: Assignment,
    root: Path,
    dest: Path,
    templates: Path = TEMPLATES,
    grader: str = "",
    reveal: frozenset[str] = frozenset(),
) -> None:
    """Write everything of the release but the notebooks into the empty directory ``dest``:
    the starter package (with the revealed assignments' blocks filled in from the
    reference), the rendered templates, the data."""
    generate_starter(
        root / "solution" / PACKAGE, dest / PACKAGE, assignments=stripped_assignments(root, reveal)
    )
    values = template_values(assignment, grader, reveal)
    chosen = {
        p.relative_to(templates).as_posix()
        for p in templates.rglob("*")
        if p.is_file() and not p.relative_to(templates).as_posix().startswith("tests/")
        and not any(part in SKIPPED_DIRS for part in p.parts)
    }  # fmt: skip
    chosen |= {"tests/conftest.py", *public_test_files(assignment, root, templates)}
    for rel in sorted(chosen):
        target = dest / RENAMED.get(rel, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(
            render_template((templates / rel).read_text(encoding="utf-8"), values, rel),
            encoding="utf-8",
        )
    copy_bundled_data(root, dest)
    write_public_checks(assignment, dest)


def build_release(
    assignment_id: str,
    root: Path,
    out: Path,
    force: bool = False,
    templates: Path = TEMPLATES,
    grader: str = "",
    reveal: frozenset[str] = frozenset(),
) -> list[str]:
    """Build, scan and write the release of ``assignment_id`` to ``out``; return its files.
    ``reveal`` names earlier assignments whose solution blocks are filled in, not stubbed.

    Raises :class:`ReleaseError` (and writes nothing) when a leak is found, or when ``reveal``
    names the assignment itself or a later one.
    """
    assignment = load_assignment(assignment_id, root)
    check_reveal(assignment, root, reveal)
    patterns = leak_patterns(root, assignment, stripped_assignments(root, reveal))

    def refuse_leaks(staging: Path) -> None:
        leaks = find_leaks(staging, patterns)
        if leaks:
            shown = "\n  ".join(str(leak) for leak in leaks[:30])
            more = f"\n  ... and {len(leaks) - 30} more" if len(leaks) > 30 else ""
            raise ReleaseError(
                f"refusing to release {assignment.id}: {len(leaks)} leak(s) of solution text or "
                f"hidden checks; nothing was written to {out}\n  {shown}{more}"
            )

    def build(staging: Path) -> None:
        render_files(assignment, root, staging, templates, grader, reveal)
        refuse_leaks(staging)  # before nbgrader, so a leaking template fails fast
        generate_notebooks(assignment, staging)
        refuse_leaks(staging)

    return write_atomically(out, build, root, force)


# --------------------------------------------------------------------------- command line


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``release`` subcommand to the ``kit`` command line."""
    parser = subparsers.add_parser(
        "release",
        parents=parents,
        help="write the student release of an assignment (refuses if anything would leak)",
        description=(
            "Write the student release of an assignment, laid out as the student's repository "
            "root: the starter package, the nbgrader student notebooks, public tests, README, "
            "pyproject.toml and CI workflows. Refuses, writing nothing, if any solution text or "
            "hidden check would leak."
        ),
    )
    parser.add_argument("assignment", metavar="ID", help="assignment id, e.g. hw1")
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: out/release-ID)"
    )
    parser.add_argument("--force", action="store_true", help="replace --out if it is not empty")
    parser.add_argument(
        "--grader",
        default=os.environ.get("TAPEGRAD_GRADER", ""),
        metavar="REQUIREMENT",
        help="the pip requirement students install the autograder with (e.g. the URL of the "
        "kit's wheel): written into the README and the CI files (default: $TAPEGRAD_GRADER; "
        "without it, CI reads the repository variable TAPEGRAD_GRADER)",
    )
    parser.add_argument(
        "--reveal",
        default="",
        metavar="IDS",
        help="comma-separated earlier assignments (hw1,hw2) whose solutions the starter "
        "package fills in, so that a bug left in them does not sink this one",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, root: Path) -> int:
    """Run ``kit release ID [--out DIR] [--force] [--grader REQ] [--reveal IDS]``."""
    out = args.out if args.out is not None else root / "out" / f"release-{args.assignment}"
    reveal = frozenset(part.strip() for part in args.reveal.split(",") if part.strip())
    files = build_release(
        args.assignment, root, out, force=args.force, grader=args.grader, reveal=reveal
    )
    print(f"release {args.assignment}: {len(files)} files in {out} (leak scan clean)")
    for group in _summary(files):
        print(f"  {group}")
    return 0


def _summary(files: list[str]) -> Iterator[str]:
    groups: dict[str, int] = {}
    for f in files:
        head = f.split("/", 1)[0] + ("/" if "/" in f else "")
        groups[head] = groups.get(head, 0) + 1
    for head, count in groups.items():
        yield head if not head.endswith("/") else f"{head} ({count} file{'s' if count > 1 else ''})"

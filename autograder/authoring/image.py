"""``kit image build`` and ``kit image gradescope``: the grading image, and Gradescope's zip.

Both are made from one build context (:func:`build_context`)::

    Dockerfile            docker/Dockerfile (or Dockerfile.gpu with --gpu)
    run_autograder        docker/run_autograder: Gradescope's entry point
    setup.sh              docker/setup.sh: Gradescope's set-up, for the zip
    wheelhouse/           the kit's wheel and every dependency's, so the build needs no network
    source/
      ASSIGNMENT          the id run_autograder grades (without an ID: none, and all the
                          assignments; autograder/run_autograder.py then picks one by title)
      assignments/ID/     assignment.toml and its source notebooks (the hidden checks)
      data/mnist-sample/  the training data and the test labels
      starter/tapegrad/   graded in place of a missing package (a lone notebook)
      grader-secret       this machine's secret, so regrades reproduce the same cases

and nothing of ``solution/``: the reference is not needed to grade, and the build checks it
is not there. In the image, ``source/`` is readable by root only (the worker runs as another
uid). ``kit image build`` runs ``docker build`` or ``podman build`` (whichever is installed,
or ``--engine``) with ``--build-arg BASE_IMAGE=...`` (``$BASE_IMAGE`` by default);
``--engine-arg`` and ``--build-option`` pass what a machine needs (a runtime, ulimits).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from autograder import KitError
from autograder.authoring.release import copy_bundled_data, copy_tree
from autograder.config import assignment_ids, load_assignment
from autograder.engine import find_engine
from autograder.secret import load_secret

__all__ = ["ImageError", "build_context", "build_image", "build_wheels", "write_gradescope_zip"]

DOCKER = "docker"  # the folder of the repository holding the Dockerfiles and scripts


class ImageError(KitError):
    """The image or the zip could not be made."""


def build_context(root: Path, assignment_id: str | None, dest: Path, *, gpu: bool = False) -> Path:
    """Write the build context for ``assignment_id`` (None: every assignment of the kit, the
    one to grade chosen at run time) into ``dest`` (see the module docstring)."""
    ids = [assignment_id] if assignment_id else assignment_ids(root)
    docker = root / DOCKER
    shutil.copy2(docker / ("Dockerfile.gpu" if gpu else "Dockerfile"), dest / "Dockerfile")
    for name in ("run_autograder", "setup.sh"):
        shutil.copy2(docker / name, dest / name)
    source = dest / "source"
    for one in ids:
        assignment = load_assignment(one, root)
        checks = source / "assignments" / assignment.id
        checks.mkdir(parents=True)
        for name in (assignment.path.name, *assignment.notebooks):  # not the bug catalogue
            shutil.copy2(assignment.directory / name, checks / name)
    copy_bundled_data(root, source)
    copy_tree(root / "starter" / "tapegrad", source / "starter" / "tapegrad")
    if assignment_id:
        (source / "ASSIGNMENT").write_text(assignment_id + "\n")
    secret = source / "grader-secret"
    secret.write_bytes(load_secret() + b"\n")
    os.chmod(secret, 0o600)
    _wheelhouse(root, dest / "wheelhouse", gpu)
    leaked = [p for p in dest.rglob("*") if "solution" in p.relative_to(dest).parts]
    if leaked:
        raise ImageError(f"the build context holds solution files: {leaked[:3]}")
    return dest


def _wheelhouse(root: Path, wheelhouse: Path, gpu: bool) -> None:
    """The kit's wheel and every dependency's wheel (the ``gpu`` extra's too)."""
    build_wheels(root, wheelhouse, extra="gpu" if gpu else None)


# What the kit's wheel is built from (pyproject.toml lists only the autograder package).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "autograder")


def build_wheels(
    root: Path, wheelhouse: Path, *, extra: str | None = None, deps: bool = True
) -> list[Path]:
    """``pip wheel`` the kit (and, with ``deps``, its dependencies) into ``wheelhouse``, from a
    clean copy of its sources: built in place, setuptools would keep a ``build/`` folder in
    the checkout whose stale files end up in later wheels."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tapegrad-wheel-") as tmp:
        for name in WHEEL_SOURCES:
            source = root / name
            if source.is_dir():
                shutil.copytree(
                    source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, Path(tmp) / name)
        target = f"{tmp}[{extra}]" if extra else tmp
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheelhouse)]
        done = subprocess.run(
            [*command, *([] if deps else ["--no-deps"]), target],
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise ImageError(f"building the wheels failed:\n{done.stderr[-3000:]}")
    return sorted(wheelhouse.glob("*.whl"))


def _engine(choice: str | None) -> str:
    name = find_engine(choice)
    if name is None:
        raise ImageError(
            f"no container engine ({choice or 'docker or podman'}) is installed and working here"
        )
    return name


def build_image(
    root: Path,
    assignment_id: str | None,
    tag: str,
    *,
    gpu: bool = False,
    base: str | None = None,
    engine: str | None = None,
    engine_args: tuple[str, ...] = (),
    build_options: tuple[str, ...] = (),
) -> str:
    """Build the grading image of ``assignment_id`` as ``tag``; return the engine used."""
    command = _engine(engine)
    with tempfile.TemporaryDirectory(prefix="tapegrad-image-") as tmp:
        context = build_context(root, assignment_id, Path(tmp), gpu=gpu)
        args = [command, *engine_args, "build", *build_options, "-t", tag]
        base = base or os.environ.get("BASE_IMAGE")
        if base:
            args += ["--build-arg", f"BASE_IMAGE={base}"]
        done = subprocess.run([*args, str(context)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(f"{command} build failed:\n{(done.stdout + done.stderr)[-4000:]}")
    return command


def write_gradescope_zip(root: Path, assignment_id: str | None, out: Path) -> Path:
    """Gradescope's "upload autograder" zip: setup.sh, run_autograder, the wheelhouse and what
    ``source/`` holds in the image, all at the top (Gradescope unpacks the zip into
    ``/autograder/source``)."""
    with tempfile.TemporaryDirectory(prefix="tapegrad-zip-") as tmp:
        context = build_context(root, assignment_id, Path(tmp))
        source = context / "source"
        files = [context / "setup.sh", context / "run_autograder"]
        files += sorted(p for p in (context / "wheelhouse").rglob("*") if p.is_file())
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for path in files:
                z.write(path, path.relative_to(context).as_posix())
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                z.write(path, path.relative_to(source).as_posix())
    return out


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``kit image build`` and ``kit image gradescope``."""
    image = subparsers.add_parser(
        "image", parents=parents, help="build the grading image, or Gradescope's autograder zip"
    )
    actions = image.add_subparsers(dest="action", metavar="ACTION", required=True)
    build = actions.add_parser("build", parents=parents, help="build the grading image")
    build.add_argument(
        "assignment", metavar="ID", nargs="?", help="the one assignment it grades (default: all)"
    )
    build.add_argument("--tag", default=None, help="default: tapegrad-grader:ID (or :latest)")
    build.add_argument("--gpu", action="store_true", help="CUDA base and CuPy (Dockerfile.gpu)")
    build.add_argument("--base", default=None, help="base image (default: $BASE_IMAGE)")
    build.add_argument("--engine", choices=("docker", "podman"), default=None)
    build.add_argument(
        "--engine-arg", action="append", default=[], help="an option of the engine itself"
    )
    build.add_argument(
        "--build-option", action="append", default=[], help="an option of its build command"
    )
    build.set_defaults(run=run_build)
    zip_ = actions.add_parser("gradescope", parents=parents, help="write Gradescope's zip")
    zip_.add_argument("assignment", metavar="ID", nargs="?", help="default: all assignments")
    zip_.add_argument("--out", type=Path, default=None, help="default: out/gradescope-ID.zip")
    zip_.set_defaults(run=run_gradescope)


def run_build(args: argparse.Namespace, root: Path) -> int:
    tag = args.tag or f"tapegrad-grader:{args.assignment or 'latest'}"
    engine = build_image(
        root,
        args.assignment,
        tag,
        gpu=args.gpu,
        base=args.base,
        engine=args.engine,
        engine_args=tuple(args.engine_arg),
        build_options=tuple(args.build_option),
    )
    print(f"image {tag} built with {engine} for {args.assignment or 'every assignment'}")
    return 0


def run_gradescope(args: argparse.Namespace, root: Path) -> int:
    out = args.out or root / "out" / f"gradescope-{args.assignment or 'all'}.zip"
    write_gradescope_zip(root, args.assignment, out)
    print(f"Gradescope autograder zip for {args.assignment or 'every assignment'}: {out}")
    return 0

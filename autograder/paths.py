"""Where the kit's own files are: the one place that knows the repository's layout.

The grader is installed either editable from the kit's checkout (instructors) or from a wheel
(students and CI, in a release). :data:`PACKAGE` is this package's folder, :data:`KIT_ROOT`
the checkout holding it; :func:`find_kit_root` finds a checkout from the current directory,
as ``kit`` does.
"""

from __future__ import annotations

from pathlib import Path

from autograder import KitError

__all__ = [
    "BUNDLED_MNIST",
    "KIT_ROOT",
    "PACKAGE",
    "SAMPLE",
    "RootNotFoundError",
    "find_kit_root",
    "is_kit_root",
]

PACKAGE = Path(__file__).resolve().parent  # autograder/
KIT_ROOT = PACKAGE.parent  # the checkout this package lives in
SAMPLE = Path("data") / "mnist-sample"  # in a kit checkout, a release, a reference, an image
BUNDLED_MNIST = KIT_ROOT / SAMPLE


class RootNotFoundError(KitError):
    """No kit checkout (a directory with pyproject.toml and solution/) was found."""


def is_kit_root(path: Path) -> bool:
    """Whether ``path`` looks like the kit's checkout."""
    return (path / "pyproject.toml").is_file() and (path / "solution").is_dir()


def find_kit_root(start: Path | None = None) -> Path:
    """The nearest directory, ``start`` (default: the CWD) or a parent, that is a checkout."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if is_kit_root(candidate):
            return candidate
    raise RootNotFoundError(
        f"no repository root (a directory with pyproject.toml and solution/) at or above {start}; "
        "run from inside the repository or pass --root"
    )

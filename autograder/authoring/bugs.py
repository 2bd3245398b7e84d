"""Catalogues of classic student bugs, each bug a textual patch of the reference package.

A catalogue is data beside its assignment (``assignments/hw1/bugs.toml``), not code in this
package: it quotes the solution, so it must never travel with the installed grader (which
students install, and which the grading image's worker can read). Each entry is a
:class:`Bug`: a few ``(file under tapegrad/, old, new)`` replacements of ``solution/tapegrad/``
text, each ``old`` occurring exactly once, with the check that must lose points, the bug class
the grader should name, and checks that must stay at full marks. The kit's tests grade every
entry end to end (``tests/test_grader_bugs.py``); ``make demo`` plants :data:`DEMO_BUGS` in
its sample buggy submission with :func:`apply_patches`.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CATALOGUE_FILE", "DEMO_BUGS", "Bug", "apply_patches", "load_catalogue"]

PACKAGE = "tapegrad"  # the patched files are under <submission>/tapegrad/
CATALOGUE_FILE = "bugs.toml"  # in an assignment's folder


@dataclass(frozen=True)
class Bug:
    """One student bug: ``patches`` are (file under tapegrad/, old, new), each ``old``
    occurring exactly once in the reference file."""

    id: str
    description: str
    patches: tuple[tuple[str, str, str], ...]
    check: str  # the check that must lose points
    expected: str  # the bug class the grader should name (a key of BUG_CLASSES)
    ops: tuple[str, ...] = ()  # narrow a multi-op check to these op specs (speed)
    unaffected: tuple[str, ...] = ()  # other checks, graded too, that must stay at full marks


def load_catalogue(path: Path) -> tuple[Bug, ...]:
    """The bugs of a catalogue file (``assignments/<id>/bugs.toml``), in file order."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return tuple(
            Bug(
                id=entry["id"],
                description=entry["description"],
                patches=tuple((p["file"], p["old"], p["new"]) for p in entry["patches"]),
                check=entry["check"],
                expected=entry["expected"],
                ops=tuple(entry.get("ops", ())),
                unaffected=tuple(entry.get("unaffected", ())),
            )
            for entry in data["bugs"]
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a bug catalogue ({type(exc).__name__}: {exc})") from None


# The bugs planted in ``make demo``'s sample buggy submission of hw1: Mul.backward without
# sum_to, Sin.backward ignoring the upstream gradient, backprop overwriting instead of
# accumulating a reused node's gradient.
DEMO_BUGS: tuple[str, ...] = ("mul_missing_sum_to", "sin_ignores_upstream", "backprop_overwrites")


def apply_patches(reference: Path, target: Path, patches: Iterable[tuple[str, str, str]]) -> None:
    """Copy the submission directory ``reference`` to ``target`` (which must not exist), then
    apply each ``(file under tapegrad/, old, new)`` patch in turn, replacing ``old``, which
    must occur exactly once in the file, by ``new``.

    Raises ValueError naming the file when ``old`` occurs zero or several times (the reference
    changed, or the patch is ambiguous).
    """
    shutil.copytree(reference, target)
    for file, old, new in patches:
        path = Path(target) / PACKAGE / file
        text = path.read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise ValueError(
                f"cannot patch {PACKAGE}/{file}: {old!r} occurs {count} times in {path} "
                "(must be exactly once)"
            )
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

"""Find the submissions of a class in the layouts instructors actually have.

``find_submissions(DIR, assignment_id)`` recognises, in this order:

* **Gradescope's export** ("Download Submissions", unzipped or as its ``.zip``): a
  ``submission_metadata.yml`` beside one ``submission_<n>/`` folder per submission (possibly
  inside one top-level folder). The metadata names each submission's submitters; the
  submission is stored under the first submitter's student id (``:sid``, else the e-mail's
  local part, else the folder), and the others of a group share its result.
* **nbgrader's** ``submitted/<student>/<assignment>/`` (DIR is the course directory or its
  ``submitted/`` folder): one folder per student holding the assignment's notebooks.
* **One entry per student**: every folder, ``.zip`` or ``.ipynb`` in DIR, named by the
  student id (``alice/``, ``bob.zip``, ``carol.ipynb``).

Student ids become folder names under ``OUT/``: they are checked (letters, digits and
``._@+-``), and two entries with the same id are an error naming both, never a silent
overwrite.
"""

from __future__ import annotations

import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from autograder import KitError

__all__ = ["BatchError", "Entry", "find_submissions"]

_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}")
SKIPPED = {"__MACOSX", ".DS_Store", "__pycache__", ".ipynb_checkpoints", ".git"}


class BatchError(KitError):
    """The batch cannot start (a bad DIR, a clash of student ids, a bad export)."""


@dataclass(frozen=True)
class Entry:
    """One submission: graded once, stored in ``OUT/<key>/``."""

    key: str  # the student id (a group submission: its first submitter's)
    source: Path  # a folder, a .zip or a .ipynb
    students: tuple[str, ...]  # everyone it grades (a group: several)
    layout: str  # "entries" | "gradescope" | "nbgrader"


def _check_id(student: str, where: str) -> str:
    if not _SAFE.fullmatch(student) or student in (".", ".."):
        raise BatchError(
            f"{where}: {student!r} cannot be a student id (letters, digits and ._@+- only, "
            "at most 100 characters): rename it"
        )
    return student


def _no_clashes(entries: list[Entry]) -> list[Entry]:
    seen: dict[str, Entry] = {}
    for entry in entries:
        for student in entry.students:
            if student in seen:
                raise BatchError(
                    f"two submissions for student {student!r}: {seen[student].source} and "
                    f"{entry.source}; keep one"
                )
            seen[student] = entry
    return sorted(entries, key=lambda e: e.key)


def _plain(directory: Path) -> list[Entry]:
    entries = []
    for path in sorted(directory.iterdir()):
        if path.name in SKIPPED or path.name.startswith("."):
            continue
        if path.is_dir():
            student = path.name
        elif path.suffix in (".zip", ".ipynb") and path.is_file():
            student = path.stem
        else:
            continue
        entries.append(Entry(_check_id(student, str(path)), path, (student,), "entries"))
    return entries


def _nbgrader(submitted: Path, assignment_id: str) -> list[Entry]:
    entries = []
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir()):
        if student_dir.name in SKIPPED or student_dir.name.startswith("."):
            continue
        folder = student_dir / assignment_id
        if folder.is_dir():
            student = _check_id(student_dir.name, str(student_dir))
            entries.append(Entry(student, folder, (student,), "nbgrader"))
    return entries


def _yaml_loader() -> Any:
    """PyYAML's safe loader, told to read the Ruby tags Gradescope's export may carry as
    plain data (never to construct objects)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def plain(loader: Any, suffix: str, node: Any) -> Any:
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    Loader.add_multi_constructor("!", plain)
    return Loader


def _submitter_id(submitter: Any) -> str | None:
    if not isinstance(submitter, dict):
        return None
    get = {str(k).lstrip(":"): v for k, v in submitter.items()}.get
    if get("sid"):
        return str(get("sid")).strip()
    if get("email"):
        return str(get("email")).split("@")[0].strip()
    return None


def _gradescope(export: Path) -> list[Entry]:
    try:
        import yaml
    except ImportError:
        raise BatchError(
            "reading Gradescope's export needs PyYAML: pip install 'tapegrad-kit[batch]'"
        ) from None
    metadata_file = export / "submission_metadata.yml"
    try:
        metadata = yaml.load(metadata_file.read_text(encoding="utf-8"), Loader=_yaml_loader())
    except (OSError, yaml.YAMLError) as exc:
        raise BatchError(f"{metadata_file}: cannot be read ({exc})") from None
    if not isinstance(metadata, dict):
        raise BatchError(f"{metadata_file}: expected a mapping of submission folders")
    entries = []
    for folder_name, record in sorted(metadata.items()):
        folder = export / str(folder_name)
        if not folder.is_dir():
            raise BatchError(f"{metadata_file}: {folder_name} is listed but not in the export")
        submitters = (record or {}).get(":submitters") or (record or {}).get("submitters") or []
        students = [s for s in map(_submitter_id, submitters) if s] or [str(folder_name)]
        where = f"{metadata_file}: {folder_name}"
        students = [_check_id(s, where) for s in students]
        entries.append(Entry(students[0], folder, tuple(students), "gradescope"))
    return entries


def _extract(archive: Path, dest: Path) -> Path:
    """Unzip an export into ``dest`` once (a later run reuses it); refuse unsafe names."""
    done = dest / ".extracted"
    if done.is_file():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    try:
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                name = PurePosixPath(info.filename)
                if name.is_absolute() or ".." in name.parts:
                    raise BatchError(f"{archive}: unsafe path {info.filename!r} in the zip")
            z.extractall(dest)
    except zipfile.BadZipFile as exc:
        raise BatchError(f"{archive}: not a zip file ({exc})") from None
    done.write_text(str(archive) + "\n")
    return dest


def _find_export(directory: Path) -> Path | None:
    if (directory / "submission_metadata.yml").is_file():
        return directory
    inner = [p for p in directory.iterdir() if p.is_dir() and p.name not in SKIPPED]
    if len(inner) == 1 and (inner[0] / "submission_metadata.yml").is_file():
        return inner[0]
    return None


def find_submissions(
    directory: Path, assignment_id: str, scratch: Path | None = None
) -> list[Entry]:
    """Every submission under ``directory`` (a folder, or a Gradescope export's .zip, which is
    unzipped into ``scratch``), sorted by student id. Raises :class:`BatchError`."""
    directory = Path(directory)
    if directory.is_file() and directory.suffix == ".zip":
        if scratch is None:
            raise BatchError(f"{directory}: a zipped export needs a folder to unzip into")
        directory = _extract(directory, scratch)
    if not directory.is_dir():
        raise BatchError(f"{directory}: no such folder (the class's submissions)")
    export = _find_export(directory)
    if export is not None:
        entries = _gradescope(export)
    elif (directory / "submitted").is_dir():
        entries = _nbgrader(directory / "submitted", assignment_id)
    elif directory.name == "submitted":
        entries = _nbgrader(directory, assignment_id)
    else:
        entries = _plain(directory)
    if not entries:
        raise BatchError(
            f"{directory}: no submissions found (expected one folder, .zip or .ipynb per "
            "student, Gradescope's export, or nbgrader's submitted/<student>/"
            f"{assignment_id}/)"
        )
    return _no_clashes(entries)

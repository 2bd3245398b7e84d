"""Assignments as data: load and validate ``assignments/<id>/assignment.toml``.

An assignment file is the single place an instructor changes what is graded: which checks,
their points, their visibility, time limits and MNIST thresholds. Like Otter-Grader's config,
it is data, not code; the grader reads it through :func:`load_assignment`. Everything is
validated on load, and every error names the file and the field::

    assignments/hw1/assignment.toml: checks[3].points: must be a positive number, got 'two'

Unknown keys are errors too (a misspelt ``visiblity`` would otherwise silently leave a check
hidden), with a "did you mean" suggestion.

Schema (the files under ``assignments/`` show it in use; hw1's has it as a comment)::

    [assignment]
    id = "hw1"                    # must equal the folder name under assignments/
    title = "Automatic differentiation"
    notebooks = ["hw1.ipynb"]     # nbgrader source notebooks in this folder (release names)
    time_limit = 900              # seconds for grading one whole submission
    timeout = 60                  # default seconds per worker request (optional, default 60)
    public_seed = 20260101        # the fixed case seed of `grade --public`
    total_points = 100            # optional: the checks' points must add up to this
    workload = "about 12 hours"   # optional: the student README states it
    released = false              # true only in a student release's checks/<id>.toml (written
                                  # by kit release: public checks only, see autograder/public.py)

    [[checks]]                    # one table per check, in report order
    id = "ops.mul"                # unique; letters, digits, '_', '-', dot-separated
    name = "mul: a * b"           # what students see
    kind = "op"                   # "op" | "module" | "train" | "notebook"
    points = 2                    # > 0; partial credit = share of cases passed
    visibility = "public"         # "public" (shown to students) | "hidden"
    timeout = 60                  # optional, seconds per request; default [assignment].timeout

    # kind = "op": a check derived from op specs in autograder/worker/opspecs.py
    op = "mul"                    # a SPECS name, or a list of them: op = ["sin", "exp"]
    cases = 1                     # optional: random draws per shape case (default 1)
    forward = true                # optional: forward values vs the NumPy reference (default true)
    vjp = true                    # optional: VJP vs finite differences (default true)
    jvp = false                   # optional: forward mode vs reverse mode (default false)
    second_order = false          # optional: gradients of gradients (smooth ops only)

    # kind = "module": a behaviour probe of a module, loss, optimizer or initializer
    probe = "linear"              # a probe of autograder/worker/modules (RUNS)

    # kind = "train": train with the submission's framework, threshold test accuracy
    recipe = "mlp"                # a recipe of autograder/worker/training.py (RECIPES)
    epochs = 5
    seed = 0
    batch_size = 64               # optional, passed to the recipe
    lr = 0.1                      # optional, passed to the recipe
    [checks.thresholds]           # test accuracy for full marks, per dataset
    mnist-sample = 0.88           # known datasets: mnist-sample, mnist, fashion-mnist
    mnist = 0.96

    # kind = "notebook": a function defined in a graded nbgrader cell
    notebook = "hw1.ipynb"        # one of [assignment].notebooks
    grade_id = "numerical-derivative"        # the solution cell's nbgrader grade_id
    function = "numerical_derivative"        # what that cell defines (worker/notebooks.py CALLS)
    tests = "numerical-derivative-tests"     # optional: its nbgrader test cell (same points)

A notebook check compares the student's function with the source notebook's solution cell on
the grader's cases; the nbgrader test cell named by ``tests`` (visible and hidden asserts) is
the same check for nbgrader's own autograding, so its points must equal the check's (the kit's
tests verify it). Graded cells must be self-contained: the grader runs just those cells.

The id of an ``op`` check conventionally is ``ops.<op name>``; the flags say which derived
checks run, so a hidden second-order check over a few smooth ops sets ``forward = false``,
``vjp = false``, ``second_order = true``. ``jvp`` and ``second_order`` are refused for specs
that declare them out of scope (``OpSpec.jvp``, ``OpSpec.smooth``).
"""

from __future__ import annotations

import difflib
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from autograder import KitError
from autograder.paths import KIT_ROOT
from autograder.worker.modules import RUNS
from autograder.worker.notebooks import CALLS
from autograder.worker.opspecs import SPECS
from autograder.worker.training import RECIPES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "Assignment",
    "CheckConfig",
    "ConfigError",
    "DATASETS",
    "KINDS",
    "VISIBILITIES",
    "PUBLIC_DIR",
    "assignment_ids",
    "assignment_path",
    "find_assignment",
    "load_assignment",
]

FILENAME = "assignment.toml"
# In a student release: checks/<id>.toml holds the public checks (`released = true`) and
# checks/<id>.answers.json the instructor's answers to the public notebook cases.
PUBLIC_DIR = "checks"
KINDS = ("op", "module", "train", "notebook")
VISIBILITIES = ("public", "hidden")
DATASETS = ("mnist-sample", "mnist", "fashion-mnist")
DEFAULT_TIMEOUT = 60.0

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
_ASSIGNMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OP_NAMES = {s.name: s for s in SPECS}

_ASSIGNMENT_KEYS = {
    "id", "title", "notebooks", "time_limit", "timeout", "public_seed", "total_points",
    "released", "workload",
}  # fmt: skip
_COMMON_KEYS = {"id", "name", "kind", "points", "visibility", "timeout"}
_KIND_KEYS = {
    "op": {"op", "cases", "forward", "vjp", "jvp", "second_order"},
    "module": {"probe"},
    "train": {"recipe", "thresholds", "epochs", "seed", "batch_size", "lr"},
    "notebook": {"notebook", "grade_id", "function", "tests"},
}


class ConfigError(KitError, ValueError):
    """An assignment file is missing or invalid; ``problems`` lists every error found."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class CheckConfig:
    """One check of an assignment. Fields of other kinds keep their defaults."""

    id: str
    name: str
    kind: str
    points: float
    visibility: str
    timeout: float
    # kind "op"
    ops: tuple[str, ...] = ()
    cases: int = 1
    forward: bool = True
    vjp: bool = True
    jvp: bool = False
    second_order: bool = False
    # kind "module"
    probe: str | None = None
    # kind "train"
    recipe: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    epochs: int | None = None
    seed: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    # kind "notebook"
    notebook: str | None = None
    grade_id: str | None = None
    function: str | None = None
    tests: str | None = None

    @property
    def hidden(self) -> bool:
        return self.visibility == "hidden"


@dataclass(frozen=True)
class Assignment:
    """An assignment: its metadata and its checks, in the order of the file."""

    id: str
    title: str
    notebooks: tuple[str, ...]
    time_limit: float
    timeout: float
    public_seed: int
    checks: tuple[CheckConfig, ...]
    path: Path  # the assignment.toml it was loaded from
    # A student release's copy (checks/<id>.toml): public checks only, the notebooks and data/
    # in the repository above it, the notebook checks' answers recorded beside it.
    released: bool = False
    workload: str = ""  # for students, in hours: "about 12 to 15 hours: ..."

    @property
    def directory(self) -> Path:
        return self.path.parent

    @property
    def notebook_dir(self) -> Path:
        """Where the notebooks named by ``notebooks`` are: the instructor's source notebooks
        beside assignment.toml, or the student's at the root of a release."""
        return self.path.parents[1] if self.released else self.path.parent

    @property
    def data_root(self) -> Path:
        """The directory holding ``data/`` (the kit checkout, or the release)."""
        return self.path.parents[1] if self.released else self.path.parents[2]

    @property
    def answers_path(self) -> Path | None:
        """A release's recorded answers to the public notebook cases (None in the kit)."""
        return self.path.with_name(f"{self.id}.answers.json") if self.released else None

    @property
    def total_points(self) -> float:
        return math.fsum(c.points for c in self.checks)

    @property
    def public_checks(self) -> tuple[CheckConfig, ...]:
        return tuple(c for c in self.checks if not c.hidden)

    @property
    def hidden_checks(self) -> tuple[CheckConfig, ...]:
        return tuple(c for c in self.checks if c.hidden)

    @property
    def op_names(self) -> frozenset[str]:
        """Every op spec some check of this assignment names."""
        return frozenset(name for c in self.checks for name in c.ops)

    def check(self, check_id: str) -> CheckConfig:
        """The check called ``check_id``."""
        for c in self.checks:
            if c.id == check_id:
                return c
        known = ", ".join(c.id for c in self.checks)
        raise KeyError(f"{self.id} has no check {check_id!r}; known: {known}")


# --------------------------------------------------------------------------- finding files


def assignment_ids(root: Path | None = None) -> list[str]:
    """Ids of the assignments under ``root/assignments`` (folders with an assignment.toml),
    in natural order (hw2 before hw10)."""
    base = Path(root or KIT_ROOT) / "assignments"
    if not base.is_dir():
        return []
    ids = [p.parent.name for p in base.glob(f"*/{FILENAME}")]
    return sorted(ids, key=lambda s: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)])


def assignment_path(path_or_id: str | Path, root: Path | None = None) -> Path:
    """The assignment.toml meant by an id (``"hw1"``), a folder, or the file itself."""
    text = str(path_or_id)
    looks_like_id = isinstance(path_or_id, str) and _ASSIGNMENT_ID.fullmatch(text) is not None
    if looks_like_id and not Path(text).is_dir():
        root = Path(root or KIT_ROOT)
        path = root / "assignments" / text / FILENAME
        if not path.is_file():
            known = ", ".join(assignment_ids(root)) or "none"
            raise ConfigError(
                [f"no assignment {text!r}: {_show(path, root)} does not exist (known: {known})"]
            )
        return path
    path = Path(path_or_id)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise ConfigError([f"{path}: no such assignment file"])
    return path


def _show(path: Path, root: Path | None = None) -> str:
    """``path`` relative to ``root`` or the CWD when below one of them, for messages."""
    resolved = path.resolve()
    for base in (root, Path.cwd()):
        if base is None:
            continue
        try:
            return resolved.relative_to(Path(base).resolve()).as_posix()
        except ValueError:
            continue
    return str(path)


def find_assignment(
    assignment_id: str,
    *,
    root: Path | None = None,
    submission: Path | None = None,
    public: bool = False,
) -> Assignment:
    """The assignment ``grade`` should use.

    The instructor's ``root/assignments/<id>/assignment.toml`` (``root`` defaulting to the kit
    checkout holding this package) when there is one. Otherwise, for ``--public`` only, a
    student release's ``checks/<id>.toml``: in the submission directory, then in the CWD
    (the grader installed from a wheel has no checkout). A graded run never reads checks from
    the submission, which the student controls.
    """
    kit = Path(root or KIT_ROOT) / "assignments" / assignment_id / FILENAME
    if root is not None or kit.is_file() or not _ASSIGNMENT_ID.fullmatch(assignment_id):
        return load_assignment(assignment_id, root)
    places = [p for p in (submission, Path.cwd()) if p is not None and p.is_dir()]
    for place in places:
        released = place / PUBLIC_DIR / f"{assignment_id}.toml"
        if released.is_file():
            if not public:
                raise ConfigError(
                    [
                        f"{_show(released)} holds only the public checks of {assignment_id}: "
                        "run `grade ... --public` (the graded run's checks are the instructor's)"
                    ]
                )
            return load_assignment(released)
    known = ", ".join(assignment_ids(root)) or "none"
    raise ConfigError(
        [
            f"no assignment {assignment_id!r}: neither the kit's assignments/{assignment_id}/"
            f"{FILENAME} (known: {known}) nor a student release's {PUBLIC_DIR}/{assignment_id}"
            ".toml in "
            + " or ".join(str(p) for p in places)
            + "; in your repository, run `grade . --assignment "
            f"{assignment_id} --public` from its top folder"
        ]
    )


# --------------------------------------------------------------------------- loading


def load_assignment(path_or_id: str | Path, root: Path | None = None) -> Assignment:
    """Load and validate an assignment by id (looked up in ``root/assignments/``, ``root``
    defaulting to the repository holding this package), folder or file path.

    Raises :class:`ConfigError` listing every problem, each prefixed by the file name.
    """
    path = assignment_path(path_or_id, root)
    shown = _show(path, root)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{shown}: invalid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{shown}: not UTF-8 text: {exc}"]) from None
    v = _Validator(shown)
    assignment = v.assignment(data, path)
    if v.problems:
        raise ConfigError(v.problems)
    assert assignment is not None
    return assignment


class _Validator:
    """Collects problems, each as ``<file>: <field>: <message>``."""

    def __init__(self, shown: str) -> None:
        self.shown = shown
        self.problems: list[str] = []
        self.context = ""  # " (check 'ops.mul')" while validating a check with an id

    def error(self, where: str, message: str) -> None:
        self.problems.append(f"{self.shown}: {where}: {message}{self.context}")

    # ---- the two levels of the file

    def assignment(self, data: dict[str, Any], path: Path) -> Assignment | None:
        self.unknown_keys(data, {"assignment", "checks"}, "")
        head = data.get("assignment")
        if not isinstance(head, dict):
            self.error("assignment", "missing [assignment] table")
            head = {}
        self.unknown_keys(head, _ASSIGNMENT_KEYS, "assignment")
        a_id = self.string(head, "id", "assignment.id", pattern=_ASSIGNMENT_ID)
        released = self.boolean(head, "released", "assignment.released", default=False)
        if a_id and path.parent.parent.name == "assignments" and a_id != path.parent.name:
            self.error("assignment.id", f"{a_id!r} does not match its folder {path.parent.name!r}")
        if a_id and released and a_id != path.stem:
            self.error("assignment.id", f"{a_id!r} does not match its file name {path.name!r}")
        title = self.string(head, "title", "assignment.title")
        workload = (
            self.string(head, "workload", "assignment.workload") if "workload" in head else ""
        )
        # a student's notebook may be missing: grading says so, the file is still valid
        notebooks = self.notebooks(head, None if released else path.parent)
        time_limit = self.number(head, "time_limit", "assignment.time_limit")
        timeout = self.number(head, "timeout", "assignment.timeout", default=DEFAULT_TIMEOUT)
        seed = self.integer(head, "public_seed", "assignment.public_seed", minimum=0)

        raw_checks = data.get("checks")
        if not isinstance(raw_checks, list) or not raw_checks:
            self.error("checks", "at least one [[checks]] table is required")
            raw_checks = []
        checks: list[CheckConfig] = []
        first_seen: dict[str, int] = {}
        for i, raw in enumerate(raw_checks):
            check = self.check(raw, f"checks[{i}]", timeout or DEFAULT_TIMEOUT, notebooks)
            if check is None:
                continue
            if check.id in first_seen:
                first = first_seen[check.id]
                self.error(
                    f"checks[{i}].id", f"duplicate check id {check.id!r} (also checks[{first}])"
                )
            first_seen.setdefault(check.id, i)
            if released and check.hidden:
                self.error(f"checks[{i}].visibility", "a released file holds public checks only")
            checks.append(check)

        if "total_points" in head:
            total = self.number(head, "total_points", "assignment.total_points")
            got = math.fsum(c.points for c in checks)
            if total is not None and len(checks) == len(raw_checks) and abs(got - total) > 1e-9:
                self.error(
                    "assignment.total_points",
                    f"the checks' points add up to {got:g}, not {total:g}",
                )
        if self.problems:
            return None
        return Assignment(
            id=a_id, title=title, notebooks=tuple(notebooks), time_limit=time_limit,  # type: ignore[arg-type]
            timeout=timeout, public_seed=seed, checks=tuple(checks), path=path,  # type: ignore[arg-type]
            released=released, workload=workload or "",
        )  # fmt: skip

    def check(
        self, raw: Any, where: str, default_timeout: float, notebooks: list[str]
    ) -> CheckConfig | None:
        if not isinstance(raw, dict):
            self.error(where, f"must be a table ([[checks]]), got {raw!r}")
            return None
        before = len(self.problems)
        check_id = self.string(raw, "id", f"{where}.id", pattern=_ID)
        self.context = f" (check {check_id!r})" if check_id else ""
        try:
            return self._check(raw, where, check_id, default_timeout, notebooks, before)
        finally:
            self.context = ""

    def _check(
        self, raw: dict[str, Any], label: str, check_id: str | None, default_timeout: float,
        notebooks: list[str], before: int,
    ) -> CheckConfig | None:  # fmt: skip
        kind = self.choice(raw, "kind", f"{label}.kind", KINDS)
        allowed = _COMMON_KEYS | _KIND_KEYS.get(kind or "", set())
        self.unknown_keys(raw, allowed, label, kind=kind)
        fields: dict[str, Any] = {
            "id": check_id,
            "name": self.string(raw, "name", f"{label}.name"),
            "kind": kind,
            "points": self.number(raw, "points", f"{label}.points"),
            "visibility": self.choice(raw, "visibility", f"{label}.visibility", VISIBILITIES),
            "timeout": self.number(raw, "timeout", f"{label}.timeout", default=default_timeout),
        }
        if kind == "op":
            fields.update(self.op_fields(raw, label))
        elif kind == "module":
            probe = self.string(raw, "probe", f"{label}.probe", pattern=_ID)
            fields["probe"] = self.known(probe, RUNS, f"{label}.probe", "module probe")
        elif kind == "train":
            fields.update(self.train_fields(raw, label))
        elif kind == "notebook":
            fields.update(self.notebook_fields(raw, label, notebooks))
        if len(self.problems) > before:
            return None
        return CheckConfig(**fields)

    # ---- kind-specific fields

    def known(self, name: Any, table: Mapping[str, Any], where: str, what: str) -> Any:
        """``name`` when the grader has a ``what`` of that name, else an error naming the known
        ones (and the closest): a misspelt probe fails here, not at grading time."""
        if isinstance(name, str) and name not in table:
            close = difflib.get_close_matches(name, list(table), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.error(where, f"no {what} named {name!r} (known: {', '.join(table)}){hint}")
        return name

    def op_fields(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        value = raw.get("op")
        names: list[str] = []
        if value is None:
            self.error(
                f"{where}.op", "missing (the name of an op spec in autograder/worker/opspecs.py)"
            )
        elif isinstance(value, str):
            names = [value]
        elif isinstance(value, list) and value and all(isinstance(x, str) for x in value):
            names = list(value)
        else:
            self.error(f"{where}.op", f"must be an op name or a list of op names, got {value!r}")
        for name in names:
            if name not in _OP_NAMES:
                close = difflib.get_close_matches(name, list(_OP_NAMES), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.error(
                    f"{where}.op",
                    f"no op spec named {name!r} in autograder/worker/opspecs.py{hint}",
                )
        if len(set(names)) != len(names):
            self.error(f"{where}.op", f"an op is listed twice: {names}")
        defaults = {"forward": True, "vjp": True, "jvp": False, "second_order": False}
        flags = {
            key: self.boolean(raw, key, f"{where}.{key}", default)
            for key, default in defaults.items()
        }
        if not any(flags.values()):
            self.error(where, "forward, vjp, jvp and second_order are all false: nothing to check")
        for name in names:
            spec = _OP_NAMES.get(name)
            if spec is None:
                continue
            if flags["jvp"] and not spec.jvp:
                self.error(
                    f"{where}.jvp", f"op {name!r} has no forward mode in its spec (jvp=False)"
                )
            if flags["second_order"] and not spec.smooth:
                self.error(
                    f"{where}.second_order",
                    f"op {name!r} is not smooth (a kink or a tie): second derivatives are "
                    "not checked for it",
                )
        cases = self.integer(raw, "cases", f"{where}.cases", minimum=1, default=1)
        return {"ops": tuple(names), "cases": cases, **flags}

    def train_fields(self, raw: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "recipe": self.known(
                self.string(raw, "recipe", f"{where}.recipe", pattern=_NAME),
                RECIPES,
                f"{where}.recipe",
                "training recipe",
            ),
            "epochs": self.integer(raw, "epochs", f"{where}.epochs", minimum=1),
            "seed": self.integer(raw, "seed", f"{where}.seed", minimum=0),
            "batch_size": self.integer(
                raw, "batch_size", f"{where}.batch_size", minimum=1, default=None
            ),
            "lr": self.number(raw, "lr", f"{where}.lr", default=None),
        }
        table = raw.get("thresholds")
        thresholds: dict[str, float] = {}
        if not isinstance(table, dict) or not table:
            self.error(
                f"{where}.thresholds",
                f"missing: a [checks.thresholds] table with one of {', '.join(DATASETS)}",
            )
        else:
            for name, value in table.items():
                key = f"{where}.thresholds.{name}"
                if name not in DATASETS:
                    close = difflib.get_close_matches(name, DATASETS, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    self.error(key, f"unknown dataset (known: {', '.join(DATASETS)}){hint}")
                elif _is_number(value) and 0 < value <= 1:
                    thresholds[name] = float(value)
                else:
                    self.error(key, f"must be an accuracy in (0, 1], got {value!r}")
        out["thresholds"] = MappingProxyType(thresholds)
        return out

    def notebook_fields(
        self, raw: dict[str, Any], where: str, notebooks: list[str]
    ) -> dict[str, Any]:
        notebook = self.string(raw, "notebook", f"{where}.notebook")
        if notebook and notebooks and notebook not in notebooks:
            self.error(
                f"{where}.notebook",
                f"{notebook!r} is not one of assignment.notebooks ({', '.join(notebooks)})",
            )
        tests = raw.get("tests")
        return {
            "notebook": notebook,
            "grade_id": self.string(raw, "grade_id", f"{where}.grade_id"),
            "function": self.known(
                self.string(raw, "function", f"{where}.function", pattern=_NAME),
                CALLS,
                f"{where}.function",
                "notebook function the grader can call",
            ),
            "tests": None if tests is None else self.string(raw, "tests", f"{where}.tests"),
        }

    def notebooks(self, head: dict[str, Any], folder: Path | None) -> list[str]:
        value = head.get("notebooks")
        if value is None:
            self.error(
                "assignment.notebooks", "missing (a list of notebook file names; [] for none)"
            )
            return []
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            self.error("assignment.notebooks", f"must be a list of file names, got {value!r}")
            return []
        for i, name in enumerate(value):
            if Path(name).name != name or not name.endswith(".ipynb"):
                self.error(
                    f"assignment.notebooks[{i}]", f"must be a .ipynb file name, got {name!r}"
                )
            elif folder is not None and not (folder / name).is_file():
                self.error(f"assignment.notebooks[{i}]", f"{name!r} not found in {_show(folder)}/")
        if len(set(value)) != len(value):
            self.error("assignment.notebooks", f"a notebook is listed twice: {value}")
        return list(value)

    # ---- typed fields

    def unknown_keys(
        self, table: dict[str, Any], allowed: set[str], where: str, kind: str | None = None
    ) -> None:
        for key in table:
            if key in allowed:
                continue
            path = f"{where}.{key}" if where else key
            other = [k for k, keys in _KIND_KEYS.items() if key in keys]
            if kind and other:
                self.error(
                    path, f"not a field of {kind!r} checks (it belongs to {other[0]!r} checks)"
                )
                continue
            close = difflib.get_close_matches(key, sorted(allowed), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.error(path, f"unknown field{hint}")

    def string(
        self, table: dict[str, Any], key: str, where: str, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        value = table.get(key)
        if value is None:
            self.error(where, "missing (a string is required)")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(where, f"must be a non-empty string, got {value!r}")
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.error(where, f"{value!r} is not a valid name (letters, digits, '_', '-', '.')")
            return None
        return value

    def number(
        self, table: dict[str, Any], key: str, where: str, default: Any = ...
    ) -> float | None:
        if key not in table:
            if default is ...:
                self.error(where, "missing (a positive number is required)")
                return None
            return default  # type: ignore[no-any-return]
        value = table[key]
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            self.error(where, f"must be a positive number, got {value!r}")
            return None
        return float(value)

    def integer(
        self, table: dict[str, Any], key: str, where: str, minimum: int, default: Any = ...
    ) -> int | None:
        if key not in table:
            if default is ...:
                self.error(where, f"missing (an integer >= {minimum} is required)")
                return None
            return default  # type: ignore[no-any-return]
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.error(where, f"must be an integer >= {minimum}, got {value!r}")
            return None
        return value

    def boolean(self, table: dict[str, Any], key: str, where: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.error(where, f"must be true or false, got {value!r}")
            return default
        return value

    def choice(
        self, table: dict[str, Any], key: str, where: str, choices: Sequence[str]
    ) -> str | None:
        value = table.get(key)
        if value is None:
            self.error(where, f"missing (one of {', '.join(map(repr, choices))})")
            return None
        if value not in choices:
            self.error(where, f"must be one of {', '.join(map(repr, choices))}, got {value!r}")
            return None
        return value  # type: ignore[no-any-return]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)

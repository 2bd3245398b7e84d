"""``kit audit ID [--out DIR] [-j N] [--resume] [--count N --seed S] [--only TEXT] [--stubs]``

Grades the reference and every mutant of it (:mod:`.mutants`) with the hidden suite in the
default sandbox, ``-j N`` at a time, through ``grade batch``'s runner: each mutant is one
submission (the reference's ``tapegrad/`` with the mutated file, and its notebooks), graded by
``grade`` in its own process and published atomically under ``DIR/graded/``, so ``--resume``
grades only what is missing. A mutant is *killed* when some check gives it fewer points than
the reference; which checks did is recorded.

Writes ``DIR/audit.json`` and ``DIR/audit.html``: the kill rate over the mutants that are not
likely equivalent, the kill count of each check, and every survivor as a diff with its file
and line. A survivor is *likely equivalent* when the mutation only changes a message (a
heuristic) or when ``assignments/<ID>/audit.toml`` says so, with the instructor's reason::

    [[equivalent]]
    mutant = "ops.py:Pow.backward:comparison:a.data > 0"
    reason = "the fast path for a scalar exponent gives the same result"
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from autograder import KitError
from autograder.authoring.bugs import CATALOGUE_FILE, load_catalogue
from autograder.authoring.reference import build_reference
from autograder.authoring.starter import PACKAGE
from autograder.batch.progress import Progress
from autograder.batch.runner import (
    GRADED,
    GradeSpec,
    finished,
    read_results,
    run_local,
)
from autograder.batch.submissions import Entry
from autograder.config import load_assignment
from autograder.grading.pipeline import suite_hash

from .mutants import Mutant, catalogue_mutants, generate_mutants, stub_mutants

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["AuditError", "MutantResult", "register", "run", "run_audit"]

AUDIT_FILE = "audit.toml"  # in an assignment's folder: survivors judged equivalent
REFERENCE = "reference"
MARGIN = 120.0
TEMPLATES = Path(__file__).resolve().parent / "templates"


class AuditError(KitError):
    """The audit cannot run (no reference, a bad audit.toml, ...)."""


@dataclass
class MutantResult:
    mutant: Mutant
    status: str  # "killed" | "survived" | "equivalent" | "error"
    killed_by: list[str] = field(default_factory=list)
    score: float = 0.0
    reason: str | None = None  # why equivalent, or the grader error

    def to_json(self) -> dict[str, Any]:
        m = self.mutant
        return {
            "id": m.id, "key": m.key, "operator": m.operator, "file": f"{PACKAGE}/{m.file}",
            "line": m.line, "description": m.description, "status": self.status,
            "killed_by": self.killed_by, "score": self.score, "reason": self.reason,
            "diff": m.diff,
        }  # fmt: skip


def load_equivalents(directory: Path) -> dict[str, str]:
    """``audit.toml``'s judged-equivalent mutants: id -> reason."""
    path = directory / AUDIT_FILE
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return {str(e["mutant"]): str(e["reason"]) for e in data.get("equivalent", [])}
    except (tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise AuditError(f"{path}: each [[equivalent]] needs mutant and reason ({exc})") from None


def select(
    mutants: list[Mutant], count: int | None, seed: int, only: str | None,
    ids: set[str] | None = None,
) -> list[Mutant]:  # fmt: skip
    """The mutants whose id contains ``only`` (and is in ``ids``), or a sample of ``count``."""
    chosen = [m for m in mutants if (not only or only in m.id) and (ids is None or m.id in ids)]
    if count is not None and count < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, count), key=lambda m: m.id)
    return chosen


def _write_mutant(reference: Path, mutant: Mutant, dest: Path) -> None:
    """A submission: the reference's package with the mutated files, and its notebooks."""
    if dest.is_dir():
        return
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(reference / PACKAGE, staging / PACKAGE)
    for notebook in reference.glob("*.ipynb"):
        shutil.copy2(notebook, staging / notebook.name)
    for rel, text in mutant.files:
        (staging / PACKAGE / rel).write_text(text, encoding="utf-8")
    staging.rename(dest)


def _check_scores(results: dict[str, Any] | None) -> dict[str, float]:
    return {
        str((t.get("extra_data") or {}).get("id")): float(t.get("score") or 0.0)
        for t in (results or {}).get("tests") or []
    }


def run_audit(
    assignment_id: str, root: Path, out: Path, *, jobs: int = 1, resume: bool = False,
    count: int | None = None, seed: int = 0, only: str | None = None,
    sandbox: str | None = None, ids: set[str] | None = None, stubs: bool = False,
) -> dict[str, Any]:  # fmt: skip
    """Grade the mutants (with ``stubs``: one per solution block, left as a stub); write and
    return the audit (see the module docstring)."""
    assignment = load_assignment(assignment_id, root)
    package = root / "solution" / PACKAGE
    catalogue = assignment.directory / CATALOGUE_FILE
    bugs = load_catalogue(catalogue) if catalogue.is_file() else ()
    every = (
        stub_mutants(package, assignment.id)
        if stubs
        else generate_mutants(package, assignment.id) + catalogue_mutants(package, bugs)
    )
    mutants = select(every, count, seed, only, ids)
    if not mutants:
        raise AuditError(f"no mutant of {assignment.id} matches (--only {only!r})")
    equivalents = load_equivalents(assignment.directory)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        shutil.rmtree(out / "graded", ignore_errors=True)
    reference = out / REFERENCE
    if not (reference / PACKAGE).is_dir():
        shutil.rmtree(reference, ignore_errors=True)
        build_reference(assignment.id, root, reference)
    sources = out / "mutants"
    sources.mkdir(exist_ok=True)
    for mutant in mutants:
        _write_mutant(reference, mutant, sources / mutant.key)
    entries = [Entry(REFERENCE, reference, (REFERENCE,), "audit")]
    entries += [Entry(m.key, sources / m.key, (m.key,), "audit") for m in mutants]
    graded = out / "graded"
    suite = suite_hash(assignment)
    todo = [e for e in entries if not (resume and finished(e, graded, suite))]
    spec = GradeSpec(
        assignment=assignment.id, root=str(root), sandbox=sandbox,
        timeout=assignment.time_limit + MARGIN,
    )  # fmt: skip
    print(
        f"audit {assignment.id}: {len(mutants)} mutants"
        + (f" ({len(entries) - len(todo)} already graded)" if resume else "")
        + f", grading {len(todo)} with -j {jobs}",
        flush=True,
    )
    progress = Progress(len(todo), sys.stderr, "auditing")
    try:
        for record in run_local(todo, graded, spec, jobs):
            progress.advance(record)
    finally:
        progress.close()
    return _report(assignment.id, mutants, equivalents, graded, out)


def _report(
    assignment_id: str, mutants: list[Mutant], equivalents: dict[str, str], graded: Path,
    out: Path,
) -> dict[str, Any]:  # fmt: skip
    reference = read_results(graded / REFERENCE)
    if reference is None or float(reference.get("score", 0)) < float(
        (reference.get("extra_data") or {}).get("max_score", 1)
    ):
        raise AuditError(
            f"the reference of {assignment_id} did not get full marks: see "
            f"{graded / REFERENCE / 'report.md'}"
        )
    expected = _check_scores(reference)
    results = []
    for mutant in mutants:
        data = read_results(graded / mutant.key)
        record = json.loads((graded / mutant.key / "batch.json").read_text())
        if data is None or record["status"] != GRADED:
            results.append(MutantResult(mutant, "error", reason=record.get("error")))
            continue
        scores = _check_scores(data)
        killed_by = sorted(c for c, s in expected.items() if scores.get(c, 0.0) < s - 1e-9)
        result = MutantResult(mutant, "killed" if killed_by else "survived", killed_by)
        result.score = float(data.get("score", 0.0))
        reason = equivalents.get(mutant.id) or mutant.equivalent
        if not killed_by and reason:
            result.status, result.reason = "equivalent", reason
        results.append(result)
    counted = [r for r in results if r.status in ("killed", "survived")]
    killed = sum(r.status == "killed" for r in counted)
    by_check: dict[str, int] = {}
    for r in results:
        for check in r.killed_by:
            by_check[check] = by_check.get(check, 0) + 1
    audit = {
        "assignment": assignment_id,
        "mutants": len(results),
        "killed": killed,
        "survived": len(counted) - killed,
        "equivalent": sum(r.status == "equivalent" for r in results),
        "errors": sum(r.status == "error" for r in results),
        "kill_rate": killed / len(counted) if counted else None,
        "kills_by_check": dict(sorted(by_check.items(), key=lambda kv: -kv[1])),
        "results": [r.to_json() for r in results],
    }
    (out / "audit.json").write_text(json.dumps(audit, indent=1) + "\n", encoding="utf-8")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
        undefined=jinja2.StrictUndefined,
    )  # fmt: skip
    page = env.get_template("audit.html.j2").render(audit=audit)
    (out / "audit.html").write_text(page, encoding="utf-8")
    return audit


def render_audit(audit: dict[str, Any], out: Path) -> str:
    """What ``kit audit`` prints."""
    rate = audit["kill_rate"]
    lines = [
        f"{audit['assignment']}: {audit['mutants']} mutants: {audit['killed']} killed, "
        f"{audit['survived']} survived, {audit['equivalent']} likely equivalent, "
        f"{audit['errors']} grader errors",
        f"kill rate (of the non-equivalent): {rate:.3f}" if rate is not None else "no kill rate",
    ]
    top = list(audit["kills_by_check"].items())[:5]
    if top:
        lines.append("checks that killed most: " + ", ".join(f"{c} {n}" for c, n in top))
    survivors = [r for r in audit["results"] if r["status"] == "survived"]
    if survivors:
        lines.append("survivors:")
        lines += [f"  {r['file']}:{r['line']}  {r['operator']}: {r['description']}"
                  for r in survivors[:40]]  # fmt: skip
        if len(survivors) > 40:
            lines.append(f"  ... and {len(survivors) - 40} more")
    lines.append(f"details: {out / 'audit.html'} and {out / 'audit.json'}")
    return "\n".join(lines)


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``audit`` subcommand to the ``kit`` command line."""
    parser = subparsers.add_parser(
        "audit",
        parents=parents,
        help="grade mutants of the reference: the hidden suite's kill rate and survivors",
        description=__doc__.split("\n\n")[1],
    )
    parser.add_argument("assignment", metavar="ID")
    parser.add_argument("--out", type=Path, help="default: out/audit-ID")
    parser.add_argument("-j", "--jobs", type=int, default=1)
    parser.add_argument("--resume", action="store_true", help="keep the mutants already graded")
    parser.add_argument("--count", type=int, help="a random sample of N mutants")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed")
    parser.add_argument("--only", metavar="TEXT", help="only mutants whose id contains TEXT")
    parser.add_argument("--sandbox", help="as for grade (default: the strongest here)")
    parser.add_argument(
        "--stubs",
        action="store_true",
        help="instead: each solution block left as a stub, one at a time (every stub must "
        "cost points somewhere)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, root: Path) -> int:
    default = f"audit-{args.assignment}" + ("-stubs" if args.stubs else "")
    out = (args.out or root / "out" / default).resolve()
    audit = run_audit(
        args.assignment, root, out, jobs=args.jobs, resume=args.resume, count=args.count,
        seed=args.seed, only=args.only, sandbox=args.sandbox, stubs=args.stubs,
    )  # fmt: skip
    print(render_audit(audit, out))
    return 0

"""Generate the students' starter package from the instructor's reference implementation.

In ``solution/tapegrad/`` a *solution block* is a run of lines between two comment markers::

        ### BEGIN SOLUTION hw1
        ...reference code...
        ### END SOLUTION

The generator replaces each block, marker lines included, by
``raise NotImplementedError("hw1: <qualified name>")`` at the indentation of the BEGIN marker,
where the qualified name is that of the innermost enclosing function with its enclosing classes
and functions joined by dots (``Mul.backward``), or the module's dotted name (``tapegrad.ops``)
for a block outside any function. Everything else is copied verbatim; non-Python files are
copied as they are; ``__pycache__`` and compiled files are skipped.

Only comment tokens are looked at, so marker-like text inside a string is left alone. A comment
that starts like a marker but is not exactly one (``# BEGIN SOLUTION``, ``### begin solution``,
a missing id, a marker after code on the same line) is an error rather than ordinary text, so
a typo cannot ship a solution to students.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import io
import re
import tokenize
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from autograder import KitError

__all__ = [
    "Difference",
    "MarkerError",
    "StarterError",
    "check_starter",
    "generate_starter",
    "render_package",
    "solution_blocks",
    "strip_solutions",
]

PACKAGE = "tapegrad"
SKIPPED_DIRS = frozenset({"__pycache__"})
SKIPPED_SUFFIXES = frozenset({".pyc", ".pyo"})

# Any comment that mentions BEGIN/END SOLUTION is treated as an attempted marker ...
_MARKER_LIKE = re.compile(r"#+\s*(BEGIN|END)[\s_-]*SOLUTION\b", re.IGNORECASE)
# ... and must then have exactly one of these forms.
_BEGIN = re.compile(r"###[ \t]+BEGIN[ \t]+SOLUTION(?:[ \t]+(?P<id>\S+))?[ \t]*")
_END = re.compile(r"###[ \t]+END[ \t]+SOLUTION(?:[ \t]+(?P<id>\S+))?[ \t]*")
_ASSIGNMENT_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


class StarterError(KitError):
    """The starter cannot be generated (bad markers, unparsable source, missing package)."""


class MarkerError(StarterError, ValueError):
    """A problem in one source file, located by file name and 1-based line number."""

    def __init__(self, filename: str, lineno: int, message: str) -> None:
        super().__init__(f"{filename}:{lineno}: {message}")
        self.filename = filename
        self.lineno = lineno
        self.message = message


@dataclass(frozen=True)
class _Block:
    assignment: str
    begin: int  # 1-based line of the BEGIN marker
    end: int  # 1-based line of the END marker
    indent: str


@dataclass(frozen=True)
class Difference:
    """One way in which the starter on disk differs from what the generator produces."""

    path: str  # relative to the parent of the package, e.g. "tapegrad/ops.py"
    kind: str  # "missing", "extra" or "changed"
    diff: str = ""  # unified diff (expected -> on disk) for changed text files

    def __str__(self) -> str:
        return f"{self.kind}: {self.path}"


# --------------------------------------------------------------------------- single source


def strip_solutions(
    source: str,
    *,
    module: str,
    assignments: set[str] | None = None,
    filename: str = "<string>",
) -> str:
    """Return ``source`` with its solution blocks replaced by ``raise NotImplementedError``.

    ``assignments=None`` strips every block; a set strips only blocks whose id is in it, and the
    other blocks keep their code but lose their two marker lines. ``module`` (``tapegrad.ops``)
    names blocks outside any function; ``filename`` is used in error messages. Raises
    :class:`MarkerError` for malformed markers or when the source or the result does not parse.
    """
    lines = _split_lines(source)
    tree = _parse(source, filename, "solution source does not parse")
    blocks = _find_blocks(source, filename)
    scopes = _function_scopes(tree, lines)
    out: list[str] = []
    origin: list[int] = []  # 1-based source line that each output line comes from
    replaced: list[int] = []  # BEGIN lines of the blocks replaced by a raise
    cursor = 0
    for block in blocks:
        out += lines[cursor : block.begin - 1]
        origin += range(cursor + 1, block.begin)
        if assignments is None or block.assignment in assignments:
            name = _qualified_name(scopes, block.begin) or module
            newline = _line_ending(lines[block.begin - 1])
            out.append(f'{block.indent}raise NotImplementedError("{block.assignment}: {name}")')
            out[-1] += newline
            origin.append(block.begin)
            replaced.append(block.begin)
        else:
            out += lines[block.begin : block.end - 1]
            origin += range(block.begin + 1, block.end)
        cursor = block.end
    out += lines[cursor:]
    origin += range(cursor + 1, len(lines) + 1)
    result = "".join(out)
    _check_result(result, origin, replaced, filename)
    return result


def solution_blocks(source: str, filename: str = "<string>") -> list[tuple[str, int, int]]:
    """The solution blocks of ``source`` as (assignment id, BEGIN line, END line), 1-based;
    raises :class:`MarkerError` for malformed markers."""
    return [(b.assignment, b.begin, b.end) for b in _find_blocks(source, filename)]


def _split_lines(source: str) -> list[str]:
    """Split into lines keeping their endings, breaking only where Python's tokenizer does."""
    return io.StringIO(source, newline="").readlines()


def _line_ending(line: str) -> str:
    stripped = line.rstrip("\r\n")
    return line[len(stripped) :] or "\n"


def _parse(source: str, filename: str, what: str) -> ast.Module:
    try:
        return ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise MarkerError(filename, exc.lineno or 1, f"{what}: {exc.msg}") from None


def _check_result(result: str, origin: list[int], replaced: list[int], filename: str) -> None:
    """Fail when the stripped result is not valid Python, naming the block that likely broke it.

    ``origin`` maps each output line to its source line; ``replaced`` lists the BEGIN lines of
    the blocks replaced by a ``raise``. The error points at the last such block at or before
    the failing line (or at the failing line itself when there is none).
    """
    try:
        ast.parse(result, filename=filename)
    except SyntaxError as exc:
        out_line = min(max(exc.lineno or 1, 1), max(len(origin), 1))
        src_line = origin[out_line - 1] if origin else 1
        culprit = max((b for b in replaced if b <= src_line), default=src_line)
        raise MarkerError(
            filename,
            culprit,
            f"the starter generated from this block does not parse ({exc.msg} at source "
            f"line {src_line}); is the BEGIN SOLUTION marker at the indentation of the code "
            "it replaces?",
        ) from None


def _comment_lines(source: str, filename: str) -> Iterator[tuple[int, str, str]]:
    """Yield (line number, text before the comment, comment text) for each comment token."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source, newline="").readline):
            if tok.type == tokenize.COMMENT:
                yield tok.start[0], tok.line[: tok.start[1]], tok.string
    except (tokenize.TokenError, SyntaxError) as exc:
        raise MarkerError(filename, 1, f"cannot tokenize the source: {exc}") from None


def _find_blocks(source: str, filename: str) -> list[_Block]:
    """Pair the BEGIN/END markers of a source, validating them."""
    blocks: list[_Block] = []
    open_: tuple[int, str, str] | None = None  # (line, indent, assignment id)
    for lineno, indent, comment in _comment_lines(source, filename):
        if not _MARKER_LIKE.match(comment):
            continue
        if indent.strip():
            raise MarkerError(filename, lineno, "a solution marker must be on a line of its own")
        kind, assignment = _parse_marker(comment, filename, lineno)
        if kind == "BEGIN":
            if open_ is not None:
                raise MarkerError(
                    filename,
                    lineno,
                    f"nested BEGIN SOLUTION: the block opened at line {open_[0]} is not closed",
                )
            open_ = (lineno, indent, assignment or "")
            continue
        if open_ is None:
            raise MarkerError(filename, lineno, "END SOLUTION without a matching BEGIN SOLUTION")
        if assignment is not None and assignment != open_[2]:
            raise MarkerError(
                filename,
                lineno,
                f"END SOLUTION {assignment} closes the block BEGIN SOLUTION {open_[2]} "
                f"opened at line {open_[0]}",
            )
        blocks.append(_Block(open_[2], open_[0], lineno, open_[1]))
        open_ = None
    if open_ is not None:
        raise MarkerError(
            filename, open_[0], f"BEGIN SOLUTION {open_[2]} without a matching END SOLUTION"
        )
    return blocks


def _parse_marker(comment: str, filename: str, lineno: int) -> tuple[str, str | None]:
    """Return ("BEGIN" | "END", assignment id or None) or raise for a malformed marker."""
    text = comment.rstrip()
    for kind, pattern in (("BEGIN", _BEGIN), ("END", _END)):
        match = pattern.fullmatch(text)
        if match is None:
            continue
        assignment = match.group("id")
        if kind == "BEGIN" and assignment is None:
            raise MarkerError(
                filename,
                lineno,
                "BEGIN SOLUTION without an assignment id (e.g. '### BEGIN SOLUTION hw1')",
            )
        if assignment is not None and not _ASSIGNMENT_ID.fullmatch(assignment):
            raise MarkerError(filename, lineno, f"invalid assignment id {assignment!r}")
        return kind, assignment
    raise MarkerError(
        filename,
        lineno,
        f"malformed solution marker {text!r}; expected '### BEGIN SOLUTION <id>' "
        "or '### END SOLUTION'",
    )


# --------------------------------------------------------------------------- qualified names


@dataclass(frozen=True)
class _Scope:
    qualname: str
    first: int  # first line of the body's extent (the def line)
    last: int  # last line, trailing comment lines indented deeper than the def included


def _function_scopes(tree: ast.Module, lines: list[str]) -> list[_Scope]:
    """Every function in the tree with its dotted name and line extent, outermost first."""
    scopes: list[_Scope] = []

    def visit(node: ast.AST, prefix: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                path = (*prefix, child.name)
                if not isinstance(child, ast.ClassDef):
                    last = _extend_over_comments(child, lines)
                    scopes.append(_Scope(".".join(path), child.lineno, last))
                visit(child, path)
            else:
                visit(child, prefix)

    visit(tree, ())
    return scopes


def _extend_over_comments(node: ast.stmt, lines: list[str]) -> int:
    """The function's last line, extended over following blank or deeper-indented comment lines.

    An (empty) block at the very end of a function sits after ``end_lineno``; it still belongs
    to the function when its marker is indented deeper than the ``def``.
    """
    last = node.end_lineno or node.lineno
    cursor = last
    while cursor < len(lines):
        text = lines[cursor]
        stripped = text.strip()
        if stripped and not stripped.startswith("#"):
            break
        if stripped:
            if len(text) - len(text.lstrip()) <= node.col_offset:
                break
            last = cursor + 1
        cursor += 1
    return last


def _qualified_name(scopes: list[_Scope], lineno: int) -> str | None:
    """Dotted name of the innermost function whose extent contains ``lineno``, if any."""
    inside = [s for s in scopes if s.first < lineno <= s.last]
    if not inside:
        return None
    return max(inside, key=lambda s: s.first).qualname


# --------------------------------------------------------------------------- whole package


def render_package(
    solution_pkg: Path, assignments: set[str] | None = None
) -> dict[PurePosixPath, bytes]:
    """What the starter package should contain: relative path (``tapegrad/ops.py``) -> bytes.

    All files are processed before failing, and every problem found is reported together.
    """
    solution_pkg = Path(solution_pkg)
    if not solution_pkg.is_dir():
        raise StarterError(f"solution package not found: {solution_pkg}")
    result: dict[PurePosixPath, bytes] = {}
    problems: list[str] = []
    for path in _package_files(solution_pkg):
        rel = PurePosixPath(solution_pkg.name, *path.relative_to(solution_pkg).parts)
        data = path.read_bytes()
        if path.suffix == ".py":
            try:
                data = _render_module(data, rel, _display_path(path), assignments)
            except StarterError as exc:
                problems.append(str(exc))
                continue
        result[rel] = data
    if problems:
        raise StarterError("\n".join(problems))
    return result


def _render_module(
    data: bytes, rel: PurePosixPath, filename: str, assignments: set[str] | None
) -> bytes:
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MarkerError(filename, 1, f"not UTF-8: {exc}") from None
    stripped = strip_solutions(
        source, module=_module_name(rel), assignments=assignments, filename=filename
    )
    return stripped.encode("utf-8")


def _display_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it, for error messages."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _module_name(rel: PurePosixPath) -> str:
    """``tapegrad/nn/init.py`` -> ``tapegrad.nn.init``; ``tapegrad/__init__.py`` -> ``tapegrad``."""
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` in a stable order, without caches and compiled files."""
    for path in sorted(root.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if any(part in SKIPPED_DIRS for part in rel_parts):
            continue
        if path.is_file() and path.suffix not in SKIPPED_SUFFIXES:
            yield path


def _disk_package(out_pkg: Path) -> dict[PurePosixPath, Path]:
    if not out_pkg.is_dir():
        return {}
    return {
        PurePosixPath(out_pkg.name, *p.relative_to(out_pkg).parts): p
        for p in _package_files(out_pkg)
    }


def _check_layout(solution_pkg: Path, out_pkg: Path) -> None:
    src, dst = Path(solution_pkg).resolve(), Path(out_pkg).resolve()
    if src == dst or src in dst.parents or dst in src.parents:
        raise StarterError(f"refusing to write {out_pkg} inside or around {solution_pkg}")
    if src.name != dst.name:
        raise StarterError(f"package names differ: {src.name} vs {dst.name}")


def generate_starter(
    solution_pkg: Path, out_pkg: Path, assignments: set[str] | None = None
) -> list[Difference]:
    """Make ``out_pkg`` exactly what the generator produces; return the changes made.

    Unchanged files are not rewritten; files the solution no longer has are deleted, and so
    are directories left empty. Nothing is written when any source file has an error.
    """
    solution_pkg, out_pkg = Path(solution_pkg), Path(out_pkg)
    _check_layout(solution_pkg, out_pkg)
    expected = render_package(solution_pkg, assignments)
    changes = _compare(expected, _disk_package(out_pkg))
    base = out_pkg.parent
    for change in changes:
        target = base / change.path
        if change.kind == "extra":
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(expected[PurePosixPath(change.path)])
    _remove_empty_dirs(out_pkg)
    return changes


def _remove_empty_dirs(root: Path) -> None:
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and path.name not in SKIPPED_DIRS and not any(path.iterdir()):
            path.rmdir()


def check_starter(
    solution_pkg: Path, out_pkg: Path, assignments: set[str] | None = None
) -> list[Difference]:
    """The differences between ``out_pkg`` on disk and what the generator produces.

    An empty list means the starter is up to date. Caches on either side are ignored.
    """
    expected = render_package(Path(solution_pkg), assignments)
    return _compare(expected, _disk_package(Path(out_pkg)))


def _compare(
    expected: dict[PurePosixPath, bytes], actual: dict[PurePosixPath, Path]
) -> list[Difference]:
    diffs: list[Difference] = []
    for rel in sorted(expected.keys() | actual.keys()):
        if rel not in actual:
            diffs.append(Difference(str(rel), "missing"))
        elif rel not in expected:
            diffs.append(Difference(str(rel), "extra"))
        else:
            on_disk = actual[rel].read_bytes()
            if on_disk != expected[rel]:
                diffs.append(Difference(str(rel), "changed", _unified(rel, expected[rel], on_disk)))
    return diffs


def _unified(rel: PurePosixPath, expected: bytes, on_disk: bytes) -> str:
    try:
        want, have = expected.decode("utf-8"), on_disk.decode("utf-8")
    except UnicodeDecodeError:
        return "Binary files differ\n"
    lines = difflib.unified_diff(
        _split_lines(want),
        _split_lines(have),
        fromfile=f"generated/{rel}",
        tofile=f"starter/{rel}",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# --------------------------------------------------------------------------- command line

DIFF_LINES_PER_FILE = 40
DIFF_LINES_TOTAL = 200


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add the ``starter`` subcommand to the ``kit`` command line."""
    parser = subparsers.add_parser(
        "starter",
        parents=parents,
        help="generate starter/tapegrad/ from solution/tapegrad/ (or --check it)",
        description="Regenerate starter/tapegrad/ from solution/tapegrad/, stripping solutions.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if starter/ differs from what would be generated",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace, root: Path) -> int:
    """Run ``kit starter [--check]`` for the repository at ``root``; return the exit code."""
    solution_pkg = root / "solution" / PACKAGE
    out_pkg = root / "starter" / PACKAGE
    if args.check:
        diffs = check_starter(solution_pkg, out_pkg)
        if not diffs:
            print(f"starter OK: {_display(out_pkg, root)} matches {_display(solution_pkg, root)}")
            return 0
        print(f"starter out of date: {len(diffs)} file(s) differ (run `kit starter` to regenerate)")
        for line in _report(diffs):
            print(line)
        return 1
    changes = generate_starter(solution_pkg, out_pkg)
    print(f"starter {_display(out_pkg, root)}: {len(changes)} file(s) updated")
    for change in changes:
        print(f"  {'removed' if change.kind == 'extra' else 'wrote'} {change.path}")
    return 0


def _display(path: Path, root: Path) -> str:
    return f"{path.relative_to(root).as_posix()}/"


def _report(diffs: Iterable[Difference]) -> Iterator[str]:
    """One line per difference, each followed by its diff, capped per file and in total."""
    budget = DIFF_LINES_TOTAL
    for diff in diffs:
        yield f"  {diff}"
        lines = diff.diff.splitlines()
        shown = lines[: min(DIFF_LINES_PER_FILE, budget)]
        budget -= len(shown)
        yield from (f"    {line}" for line in shown)
        if len(shown) < len(lines):
            yield f"    ... ({len(lines) - len(shown)} more diff lines)"

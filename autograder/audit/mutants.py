"""Mutants of the reference: small, plausible student mistakes planted inside an assignment's
solution blocks, one at a time.

Each operator mirrors a mistake students make (the names are what reports show):

=================  ============================================================
``arithmetic``     ``+`` and ``-`` swapped, ``*`` and ``/`` swapped, ``**`` as ``*``
``operand-order``  ``a - b`` as ``b - a``, ``a / b`` as ``b / a``, ``a @ b`` as ``b @ a``
``comparison``     ``<`` and ``<=``, ``>`` and ``>=``, ``==`` and ``!=`` swapped
``constant``       an integer ``n`` as ``n + 1``, a float ``x`` as ``2x`` (``0.0`` as ``1.0``)
``negation``       a unary minus or ``not`` dropped
``keepdims``       ``keepdims=True`` and ``False`` swapped
``transpose``      ``.T``, ``.transpose(...)``, ``.swapaxes(...)`` dropped
``reduction``      ``.sum(...)``/``.mean(...)``/``.max(...)`` or ``sum_to(g, shape)`` dropped
``return-order``   the first two values of a returned tuple swapped (gradients of a, b)
``catalogue``      an entry of the assignment's classic-bug catalogue (``bugs.toml``)
``stub``           one whole solution block left as the starter's ``raise
                   NotImplementedError`` (``kit audit --stubs``: every stub must
                   cost points somewhere)
=================  ============================================================

Mutants are made on the source text (the mutated expression is replaced in place, the rest of
the file untouched), so each has a readable one-hunk diff; mutants that do not parse, or that
give a file identical to another mutant's, are dropped. A mutation inside a ``raise``, an
``assert`` or an f-string changes only a message: it is marked *likely equivalent* with that
reason.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autograder.authoring.bugs import Bug
from autograder.authoring.starter import PACKAGE, solution_blocks

__all__ = ["Mutant", "catalogue_mutants", "generate_mutants", "stub_mutants"]

_SWAP_BINOP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
}  # fmt: skip
_SWAP_COMPARE: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
}  # fmt: skip
_REDUCTIONS = {"sum", "mean", "max", "min"}
_TRANSPOSES = {"transpose", "swapaxes"}
_MODULES = {"np", "xp", "ops", "tg", "math", "cupy"}
_MESSAGE_CONTEXTS = (ast.Raise, ast.Assert, ast.JoinedStr)


@dataclass(frozen=True)
class Mutant:
    """One mutant: the files it changes (path under ``tapegrad/`` -> whole new text)."""

    id: str  # stable: "ops.py:Mul.backward:arithmetic:gy * b" (or "catalogue:<bug id>")
    operator: str
    file: str
    line: int
    description: str  # "`gy * b` -> `(gy / b)`"
    files: tuple[tuple[str, str], ...]
    diff: str
    equivalent: str | None = None  # why it likely changes nothing the suite can see

    @property
    def key(self) -> str:
        """A folder name for it."""
        return "m" + hashlib.sha256(self.id.encode()).hexdigest()[:12]


def _offset(lines: list[str], lineno: int, col: int) -> int:
    """The character index of an AST position (1-based line, UTF-8 byte column)."""
    before = sum(len(line) for line in lines[: lineno - 1])
    return before + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))


def _mutations(node: ast.AST) -> Iterator[tuple[str, ast.expr]]:
    """(operator, replacement expression) for each mutation of ``node``."""
    if isinstance(node, ast.BinOp):
        swapped = _SWAP_BINOP.get(type(node.op))
        if swapped is not None:
            yield "arithmetic", ast.BinOp(node.left, swapped(), node.right)
        if isinstance(node.op, (ast.Sub, ast.Div, ast.MatMult)):
            yield "operand-order", ast.BinOp(node.right, node.op, node.left)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        yield "negation", node.operand
    elif isinstance(node, ast.Compare) and len(node.ops) == 1:
        swapped_cmp = _SWAP_COMPARE.get(type(node.ops[0]))
        if swapped_cmp is not None:
            yield "comparison", ast.Compare(node.left, [swapped_cmp()], node.comparators)
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value: Any = node.value
        yield "constant", ast.Constant(value + 1 if isinstance(value, int) else value * 2 or 1.0)
    elif isinstance(node, ast.Attribute) and node.attr == "T":
        yield "transpose", node.value
    elif isinstance(node, ast.Call):
        func = node.func
        for i, kw in enumerate(node.keywords):
            if kw.arg == "keepdims" and isinstance(kw.value, ast.Constant):
                flipped = ast.keyword("keepdims", ast.Constant(not kw.value.value))
                keywords = [*node.keywords[:i], flipped, *node.keywords[i + 1 :]]
                yield "keepdims", ast.Call(func, node.args, keywords)
        if isinstance(func, ast.Attribute) and func.attr in _TRANSPOSES | _REDUCTIONS:
            operator = "transpose" if func.attr in _TRANSPOSES else "reduction"
            if _is_module(func.value):  # ops.sum(x), np.transpose(x): x
                if node.args:
                    yield operator, node.args[0]
            else:  # x.sum(...), x.transpose(...): x
                yield operator, func.value
        elif isinstance(func, ast.Name) and func.id == "sum_to" and node.args:
            yield "reduction", node.args[0]


def _is_module(node: ast.expr) -> bool:
    """``np``, ``xp``, ``ops``, ``self.xp``: a namespace of functions, not a tensor."""
    if isinstance(node, ast.Attribute):
        return node.attr in _MODULES
    return isinstance(node, ast.Name) and node.id in _MODULES


def _return_swaps(node: ast.AST) -> Iterator[tuple[ast.expr, ast.expr]]:
    if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
        elts = node.value.elts
        if len(elts) >= 2:
            yield node.value, ast.Tuple([elts[1], elts[0], *elts[2:]], ast.Load())


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}


def _qualname(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> str:
    """``Mul.backward`` for a node inside that method (``<module>`` outside any)."""
    names = []
    while node in parents:
        node = parents[node]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
    return ".".join(reversed(names)) or "<module>"


def _message_context(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, _MESSAGE_CONTEXTS):
            return True
    return False


def _diff(rel: str, old: str, new: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True), new.splitlines(keepends=True),
            f"a/{PACKAGE}/{rel}", f"b/{PACKAGE}/{rel}", n=2,
        )
    )  # fmt: skip


def _file_mutants(text: str, rel: str, assignment: str) -> Iterator[Mutant]:
    ranges = [(b, e) for a, b, e in solution_blocks(text, rel) if a == assignment]
    if not ranges:
        return
    tree = ast.parse(text)
    parents = _parents(tree)
    lines = text.splitlines(keepends=True)
    seen: dict[str, int] = {}
    for node in ast.walk(tree):
        line, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if line is None or end is None or not any(b < line and end < e for b, e in ranges):
            continue
        found: list[tuple[str, Any, ast.expr]] = [(op, node, new) for op, new in _mutations(node)]
        found += [("return-order", old, new) for old, new in _return_swaps(node)]
        for operator, target, replacement in found:
            start = _offset(lines, target.lineno, target.col_offset)
            stop = _offset(lines, target.end_lineno or target.lineno, target.end_col_offset or 0)
            before = text[start:stop]
            after = ast.unparse(replacement)
            if isinstance(replacement, (ast.BinOp, ast.Compare)):
                after = f"({after})"
            mutated = text[:start] + after + text[stop:]
            try:
                ast.parse(mutated)
            except SyntaxError:
                continue
            equivalent = (
                "inside a raise, an assert or an f-string: it changes a message"
                if _message_context(target, parents)
                else None
            )
            # stable across edits elsewhere in the file: where, what, and which occurrence
            where = f"{rel}:{_qualname(target, parents)}:{operator}:{' '.join(before.split())}"
            seen[where] = seen.get(where, 0) + 1
            yield Mutant(
                id=where if seen[where] == 1 else f"{where}#{seen[where]}",
                operator=operator,
                file=rel,
                line=target.lineno,
                description=f"`{' '.join(before.split())}` -> `{after}`",
                files=((rel, mutated),),
                diff=_diff(rel, text, mutated),
                equivalent=equivalent,
            )


def generate_mutants(package: Path, assignment: str) -> list[Mutant]:
    """Every mutant of ``assignment``'s solution blocks in the package folder ``package``
    (``solution/tapegrad``), in file and line order, duplicates dropped."""
    mutants: list[Mutant] = []
    seen: set[tuple[tuple[str, str], ...]] = set()
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package).as_posix()
        for mutant in _file_mutants(path.read_text(encoding="utf-8"), rel, assignment):
            if mutant.files not in seen:
                seen.add(mutant.files)
                mutants.append(mutant)
    return sorted(mutants, key=lambda m: (m.file, m.line, m.id))


def catalogue_mutants(package: Path, bugs: tuple[Bug, ...]) -> list[Mutant]:
    """The classic-bug catalogue's entries as mutants (each may patch several places)."""
    mutants = []
    for bug in bugs:
        texts: dict[str, str] = {}
        for rel, old, new in bug.patches:
            text = texts.get(rel) or (package / rel).read_text(encoding="utf-8")
            if text.count(old) != 1:
                raise ValueError(f"bug {bug.id}: {old!r} must occur once in {rel}")
            texts[rel] = text.replace(old, new, 1)
        first = bug.patches[0][0]
        original = (package / first).read_text(encoding="utf-8")
        line = next(
            (i + 1 for i, (a, b) in enumerate(zip(original.splitlines(), texts[first].splitlines()))
             if a != b), 0,
        )  # fmt: skip
        mutants.append(
            Mutant(
                id=f"catalogue:{bug.id}",
                operator="catalogue",
                file=first,
                line=line,
                description=bug.description,
                files=tuple(sorted(texts.items())),
                diff="".join(
                    _diff(rel, (package / rel).read_text(encoding="utf-8"), text)
                    for rel, text in sorted(texts.items())
                ),
            )
        )
    return mutants


def stub_mutants(package: Path, assignment: str) -> list[Mutant]:
    """One mutant per solution block of ``assignment``: that block alone replaced by the
    starter's ``raise NotImplementedError``, as a student who skipped it would hand in."""
    mutants = []
    for path in sorted(package.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package).as_posix()
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        parents: dict[ast.AST, ast.AST] | None = None
        for block_assignment, begin, end in solution_blocks(text, rel):
            if block_assignment != assignment:
                continue
            if parents is None:
                parents = _parents(ast.parse(text))
            indent = lines[begin - 1][: len(lines[begin - 1]) - len(lines[begin - 1].lstrip())]
            name = _enclosing(parents, begin)
            stub = f'{indent}raise NotImplementedError("{assignment}: {name}")\n'
            mutated = "".join([*lines[: begin - 1], stub, *lines[end:]])
            mutants.append(
                Mutant(
                    id=f"{rel}:{name}:stub",
                    operator="stub",
                    file=rel,
                    line=begin,
                    description=f"{name} left as a stub",
                    files=((rel, mutated),),
                    diff=_diff(rel, text, mutated),
                )
            )
    return mutants


def _enclosing(parents: dict[ast.AST, ast.AST], line: int) -> str:
    """The qualified name of the innermost function around ``line`` (or ``<module>``)."""
    best: ast.AST | None = None
    for node in parents:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.lineno <= line <= (
            node.end_lineno or node.lineno
        ):
            if best is None or node.lineno > getattr(best, "lineno", 0):
                best = node
    if best is None:
        return "<module>"
    inner = _qualname(best, parents)
    return (
        f"{inner}.{getattr(best, 'name', '')}" if inner != "<module>" else getattr(best, "name", "")
    )

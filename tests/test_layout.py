"""The grader's layout is its trust boundary, checked: three zones, and the rules between them.

* ``autograder.worker`` runs next to student code (it is all that a sandbox exposes): it
  imports the standard library, NumPy and ``autograder.worker`` only;
* ``autograder.grading`` (the trusted parent) and ``autograder.authoring`` (instructor tools)
  never import each other;
* no import cycles inside ``autograder``.

The imports are read from the source (every ``import`` statement, function-level ones
included), so a rule broken anywhere fails here; and a worker started as the sandbox starts it
is asked what it loaded and what else of the grader it could import.
"""

from __future__ import annotations

import ast
import sys
import time
from pathlib import Path

import pytest

from autograder.grading.channel import Limits
from autograder.grading.sandbox import make_sandbox

PACKAGE = Path(__file__).resolve().parents[1] / "autograder"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "submissions"
ZONES = ("worker", "grading", "authoring")
# Beside the standard library: NumPy; CuPy (only to report its version on cuda); and the
# submission's own tapegrad, which the worker exists to import.
WORKER_THIRD_PARTY = {"numpy", "cupy", "tapegrad"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    """Every module of the package (the release templates are not the grader's code)."""
    return {
        _module_name(p): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "templates" not in p.relative_to(PACKAGE).parts
    }


def _imports(name: str, path: Path) -> set[str]:
    """The absolute names of every module ``name`` imports, at any level of the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            # `from autograder.worker import protocol` imports a submodule
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """module -> the autograder modules it imports (package names resolved to what exists)."""
    sources = _sources()
    return {
        name: {m for m in _imports(name, path) if m in sources and m != name}
        for name, path in sources.items()
    }


def _zone(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ZONES else "top"


def test_every_zone_exists_and_says_what_runs_there() -> None:
    for zone in ZONES:
        doc = ast.get_docstring(ast.parse((PACKAGE / zone / "__init__.py").read_text()))
        assert doc and "import" in doc, f"autograder/{zone}/__init__.py must say what it imports"


def test_the_worker_imports_only_the_worker_numpy_and_the_standard_library() -> None:
    problems = []
    for name, path in _sources().items():
        if _zone(name) != "worker":
            continue
        for module in _imports(name, path):
            top = module.split(".")[0]
            if top == "autograder":
                if module != "autograder.worker" and not module.startswith("autograder.worker."):
                    problems.append(f"{name} imports {module}")
            elif top not in sys.stdlib_module_names and top not in WORKER_THIRD_PARTY and top:
                problems.append(f"{name} imports {module} (not NumPy or the standard library)")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("a, b", [("grading", "authoring"), ("authoring", "grading")])
def test_grading_and_authoring_never_import_each_other(
    graph: dict[str, set[str]], a: str, b: str
) -> None:
    bad = [
        f"{m} imports {i}"
        for m, deps in graph.items()
        if _zone(m) == a
        for i in deps
        if _zone(i) == b
    ]
    assert not bad, "\n".join(bad)


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    """Tarjan's strongly connected components over the import graph: every one is a single
    module (an ``__init__`` importing its own submodules is not a cycle)."""
    edges = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The reader of imports sees a relative import out of the worker zone."""
    path = tmp_path / "autograder" / "worker" / "bad.py"
    path.parent.mkdir(parents=True)
    path.write_text("from ..grading.diagnose import Verdict\nimport autograder.config\n")
    found = _imports("autograder.worker.bad", path)
    assert {"autograder.grading.diagnose", "autograder.config"} <= found


def test_a_sandboxed_worker_loads_and_reaches_only_the_worker_zone() -> None:
    """Started exactly as grading starts it, the worker has loaded no grader module outside
    ``autograder.worker``, and cannot import the judges, the authoring tools, the config or
    the reference solution."""
    limits = Limits(request_timeout=30.0, start_timeout=30.0, total_timeout=60.0)
    submission = FIXTURES / "loaded_modules"
    with make_sandbox("none", limits).start(submission, deadline=time.monotonic() + 60) as w:
        assert w.hello["ok"], w.hello
        reply, _ = w.request({"type": "test.modules"})
    outside = [
        m for m in reply["loaded"] if m != "autograder" and not m.startswith("autograder.worker")
    ]
    assert not outside, outside
    assert "autograder.worker.loop" in reply["loaded"]
    assert reply["importable"] == {
        "autograder.grading": False,
        "autograder.authoring": False,
        "autograder.config": False,
        "solution": False,
    }

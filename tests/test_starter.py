"""Tests of the starter generator (autograder.authoring.starter) and the ``kit starter`` command."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autograder.authoring.starter import (
    MarkerError,
    StarterError,
    check_starter,
    generate_starter,
    strip_solutions,
)
from autograder.kit import main
from autograder.paths import find_kit_root

REPO_ROOT = Path(__file__).resolve().parents[1]


def strip(source: str, **kwargs: object) -> str:
    """strip_solutions on a dedented source, with a default module name."""
    kwargs.setdefault("module", "tapegrad.ops")
    return strip_solutions(textwrap.dedent(source), **kwargs)  # type: ignore[arg-type]


def dedent(text: str) -> str:
    return textwrap.dedent(text)


# --------------------------------------------------------------------------- strip_solutions


def test_method_gets_class_qualified_name_and_keeps_the_rest() -> None:
    source = '''\
        """Ops."""
        import numpy as np


        class Mul:
            @staticmethod
            def backward(ctx, grad):
                """Gradient of a * b."""
                a, b = ctx.saved  # given to students
                ### BEGIN SOLUTION hw1
                return grad * b, grad * a
                ### END SOLUTION
    '''
    assert strip(source) == dedent('''\
        """Ops."""
        import numpy as np


        class Mul:
            @staticmethod
            def backward(ctx, grad):
                """Gradient of a * b."""
                a, b = ctx.saved  # given to students
                raise NotImplementedError("hw1: Mul.backward")
    ''')


def test_block_as_only_content_of_a_function() -> None:
    source = """\
        def topological_order(root):
            ### BEGIN SOLUTION hw1
            seen = set()
            return [root]
            ### END SOLUTION
    """
    assert strip(source) == dedent("""\
        def topological_order(root):
            raise NotImplementedError("hw1: topological_order")
    """)


def test_nested_functions_and_classes_are_joined_with_dots() -> None:
    source = """\
        class Outer:
            class Inner:
                def method(self):
                    def helper(x):
                        ### BEGIN SOLUTION hw2
                        yield x
                        ### END SOLUTION
                    return helper

        async def fetch():
            ### BEGIN SOLUTION hw3
            return 1
            ### END SOLUTION
    """
    result = strip(source)
    assert '                raise NotImplementedError("hw2: Outer.Inner.method.helper")\n' in result
    assert '    raise NotImplementedError("hw3: fetch")\n' in result
    assert "yield" not in result and "return 1" not in result


def test_raise_uses_the_indentation_of_the_begin_marker() -> None:
    source = """\
        def f(x):
            if x:
                ### BEGIN SOLUTION hw1
                return 1
                ### END SOLUTION
            return 0
    """
    assert strip(source) == dedent("""\
        def f(x):
            if x:
                raise NotImplementedError("hw1: f")
            return 0
    """)


def test_several_blocks_in_one_function_and_later_code_kept() -> None:
    source = """\
        class Tensor:
            def backward(self, grad=None):
                ### BEGIN SOLUTION hw1
                order = []
                ### END SOLUTION
                print("given")
                ### BEGIN SOLUTION hw1
                return order
                ### END SOLUTION

            def shape(self):
                return self.data.shape
    """
    assert strip(source) == dedent("""\
        class Tensor:
            def backward(self, grad=None):
                raise NotImplementedError("hw1: Tensor.backward")
                print("given")
                raise NotImplementedError("hw1: Tensor.backward")

            def shape(self):
                return self.data.shape
    """)


def test_module_level_block_gets_the_module_name() -> None:
    source = """\
        X = 1
        ### BEGIN SOLUTION hw2
        TABLE = {"relu": None}
        ### END SOLUTION
        Y = 2
    """
    assert strip(source, module="tapegrad.nn.functional") == dedent("""\
        X = 1
        raise NotImplementedError("hw2: tapegrad.nn.functional")
        Y = 2
    """)


def test_empty_block_at_the_end_of_a_function_belongs_to_it() -> None:
    source = """\
        def f():
            pass
            ### BEGIN SOLUTION hw1
            ### END SOLUTION
        ### BEGIN SOLUTION hw1
        ### END SOLUTION
    """
    assert strip(source, module="tapegrad") == dedent("""\
        def f():
            pass
            raise NotImplementedError("hw1: f")
        raise NotImplementedError("hw1: tapegrad")
    """)


def test_selective_assignments_strip_only_those_and_drop_other_markers() -> None:
    source = """\
        def one():
            ### BEGIN SOLUTION hw1
            return 1
            ### END SOLUTION

        def two():
            ### BEGIN SOLUTION hw2
            return 2
            ### END SOLUTION
    """
    assert strip(source, assignments={"hw2"}) == dedent("""\
        def one():
            return 1

        def two():
            raise NotImplementedError("hw2: two")
    """)
    assert "SOLUTION" not in strip(source, assignments=set())
    assert strip(source, assignments={"hw1", "hw2"}) == strip(source)


def test_marker_text_inside_strings_is_not_a_marker() -> None:
    source = '''\
        def doc():
            """Example:

            ### BEGIN SOLUTION hw1
            """
            return "### END SOLUTION"
    '''
    assert strip(source) == dedent(source)


def test_ordinary_comments_mentioning_solutions_are_kept() -> None:
    source = """\
        def f():
            # The BEGIN SOLUTION markers are stripped; see the kit docs.
            return 1  # not a solution
    """
    assert strip(source) == dedent(source)


def test_source_without_blocks_is_unchanged_including_crlf() -> None:
    source = "def f():\r\n    return 1\r\n"
    assert strip_solutions(source, module="m") == source
    block = "def f():\r\n    ### BEGIN SOLUTION hw1\r\n    return 1\r\n    ### END SOLUTION\r\n"
    assert strip_solutions(block, module="m") == (
        'def f():\r\n    raise NotImplementedError("hw1: f")\r\n'
    )


# --------------------------------------------------------------------------- marker errors


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        (
            "def f():\n    ### BEGIN SOLUTION hw1\n    return 1\n",
            2,
            "without a matching END",
        ),
        (
            "def f():\n    return 1\n    ### END SOLUTION\n",
            3,
            "END SOLUTION without a matching BEGIN",
        ),
        (
            "def f():\n    ### BEGIN SOLUTION hw1\n    x = 1\n    ### BEGIN SOLUTION hw1\n"
            "    return x\n    ### END SOLUTION\n    ### END SOLUTION\n",
            4,
            "nested BEGIN SOLUTION",
        ),
        (
            "def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION\n",
            2,
            "without an assignment id",
        ),
        (
            "def f():\n    # BEGIN SOLUTION hw1\n    return 1\n    ### END SOLUTION\n",
            2,
            "malformed solution marker",
        ),
        (
            "def f():\n    ### begin solution hw1\n    return 1\n    ### END SOLUTION\n",
            2,
            "malformed solution marker",
        ),
        (
            "def f():\n    x = 1  ### BEGIN SOLUTION hw1\n    return x\n    ### END SOLUTION\n",
            2,
            "on a line of its own",
        ),
        (
            "def f():\n    ### BEGIN SOLUTION hw1\n    return 1\n    ### END SOLUTION hw2\n",
            4,
            "closes the block",
        ),
        (
            # The marker is less indented than the function body: the raise lands outside it.
            "def f():\n    x = 1\n### BEGIN SOLUTION hw1\n    return x\n### END SOLUTION\n"
            "    return 0\n",
            3,
            "does not parse",
        ),
        (
            "def f(:\n    return 1\n",
            1,
            "solution source does not parse",
        ),
    ],
    ids=[
        "begin-without-end",
        "end-without-begin",
        "nested-begin",
        "missing-id",
        "malformed-marker",
        "lowercase-marker",
        "trailing-marker",
        "mismatched-end-id",
        "result-does-not-parse",
        "source-does-not-parse",
    ],
)
def test_marker_errors_name_file_and_line(source: str, line: int, fragment: str) -> None:
    with pytest.raises(MarkerError) as info:
        strip_solutions(source, module="tapegrad.ops", filename="tapegrad/ops.py")
    assert info.value.filename == "tapegrad/ops.py"
    assert info.value.lineno == line
    assert str(info.value).startswith(f"tapegrad/ops.py:{line}: ")
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- whole package

OPS = """\
class Mul:
    def backward(self, grad):
        ### BEGIN SOLUTION hw1
        return grad
        ### END SOLUTION
"""


def make_solution(root: Path) -> Path:
    """A small solution package under ``root/solution/tapegrad`` with caches to be skipped."""
    pkg = root / "solution" / "tapegrad"
    (pkg / "nn").mkdir(parents=True)
    (pkg / "__pycache__").mkdir()
    (pkg / "__init__.py").write_text('"""tapegrad."""\nfrom .ops import Mul\n')
    (pkg / "ops.py").write_text(OPS)
    (pkg / "nn" / "__init__.py").write_text(
        "def relu(x):\n    ### BEGIN SOLUTION hw2\n    return x\n    ### END SOLUTION\n"
        "### BEGIN SOLUTION hw2\nLAYERS = []\n### END SOLUTION\n"
    )
    (pkg / "nn" / "weights.bin").write_bytes(b"\x00\xffdata")
    (pkg / "__pycache__" / "ops.cpython-311.pyc").write_bytes(b"junk")
    (pkg / "stale.pyc").write_bytes(b"junk")
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    return pkg


def test_generate_then_check_round_trip(tmp_path: Path) -> None:
    solution = make_solution(tmp_path)
    out = tmp_path / "starter" / "tapegrad"

    changes = generate_starter(solution, out)
    assert {(c.kind, c.path) for c in changes} == {
        ("missing", "tapegrad/__init__.py"),
        ("missing", "tapegrad/ops.py"),
        ("missing", "tapegrad/nn/__init__.py"),
        ("missing", "tapegrad/nn/weights.bin"),
    }
    assert check_starter(solution, out) == []
    assert generate_starter(solution, out) == []
    assert not (out / "__pycache__").exists() and not (out / "stale.pyc").exists()
    assert (out / "nn" / "weights.bin").read_bytes() == b"\x00\xffdata"
    assert (out / "ops.py").read_text() == dedent("""\
        class Mul:
            def backward(self, grad):
                raise NotImplementedError("hw1: Mul.backward")
    """)
    assert (out / "nn" / "__init__.py").read_text() == (
        'def relu(x):\n    raise NotImplementedError("hw2: relu")\n'
        'raise NotImplementedError("hw2: tapegrad.nn")\n'
    )


def test_check_detects_changed_missing_and_extra_files(tmp_path: Path) -> None:
    solution = make_solution(tmp_path)
    out = tmp_path / "starter" / "tapegrad"
    generate_starter(solution, out)

    (out / "ops.py").write_text(OPS)  # a solution leaked into the starter
    (out / "nn" / "weights.bin").unlink()
    (out / "nn" / "extra.py").write_text("x = 1\n")
    (out / "__pycache__").mkdir()
    (out / "__pycache__" / "ops.cpython-311.pyc").write_bytes(b"ignored")

    diffs = check_starter(solution, out)
    assert [(d.kind, d.path) for d in diffs] == [
        ("extra", "tapegrad/nn/extra.py"),
        ("missing", "tapegrad/nn/weights.bin"),
        ("changed", "tapegrad/ops.py"),
    ]
    changed = diffs[-1].diff
    assert "+        return grad" in changed
    assert '-        raise NotImplementedError("hw1: Mul.backward")' in changed

    generate_starter(solution, out)
    assert check_starter(solution, out) == []
    assert not (out / "nn" / "extra.py").exists()


def test_selective_generation_keeps_other_assignments(tmp_path: Path) -> None:
    solution = make_solution(tmp_path)
    out = tmp_path / "starter" / "tapegrad"
    generate_starter(solution, out, assignments={"hw1"})
    assert "return x" in (out / "nn" / "__init__.py").read_text()
    assert "SOLUTION" not in (out / "nn" / "__init__.py").read_text()
    assert check_starter(solution, out, assignments={"hw1"}) == []
    assert [d.path for d in check_starter(solution, out)] == ["tapegrad/nn/__init__.py"]


def test_errors_in_several_files_are_reported_together_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    solution = make_solution(tmp_path)
    (solution / "bad.py").write_text("def f():\n    ### BEGIN SOLUTION hw1\n")
    (solution / "nn" / "worse.py").write_text("### END SOLUTION\n")
    out = tmp_path / "starter" / "tapegrad"
    with pytest.raises(StarterError) as info:
        generate_starter(solution, out)
    assert "tapegrad/bad.py:2:" in str(info.value)
    assert "tapegrad/nn/worse.py:1:" in str(info.value)
    assert not out.exists()


def test_refuses_to_write_into_the_solution(tmp_path: Path) -> None:
    solution = make_solution(tmp_path)
    with pytest.raises(StarterError):
        generate_starter(solution, solution / "nn" / "tapegrad")


# --------------------------------------------------------------------------- command line


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_solution(tmp_path)
    root = ["--root", str(tmp_path)]

    assert main(["starter", "--check", *root]) == 1
    out = capsys.readouterr().out
    assert "missing: tapegrad/ops.py" in out

    assert main(["starter", *root]) == 0
    assert main(["starter", "--check", *root]) == 0
    assert "OK" in capsys.readouterr().out

    (tmp_path / "starter" / "tapegrad" / "ops.py").write_text(OPS)
    assert main(["starter", "--check", *root]) == 1
    out = capsys.readouterr().out
    assert "changed: tapegrad/ops.py" in out and "+        return grad" in out

    (tmp_path / "solution" / "tapegrad" / "ops.py").write_text("### END SOLUTION\n")
    assert main(["starter", "--check", *root]) == 2
    assert "tapegrad/ops.py:1:" in capsys.readouterr().err


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["no-such-command"]) == 2
    assert main(["starter", "--bogus"]) == 2
    assert main(["starter", "--check", "--root", str(tmp_path)]) == 2
    assert "not a repository root" in capsys.readouterr().err
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "solution").mkdir()
    assert main(["starter", "--check", "--root", str(tmp_path)]) == 2
    assert "solution package not found" in capsys.readouterr().err


def test_root_is_found_by_walking_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_solution(tmp_path)
    nested = tmp_path / "solution" / "tapegrad" / "nn"
    assert find_kit_root(nested) == tmp_path.resolve()
    monkeypatch.chdir(nested)
    assert main(["starter"]) == 0
    assert main(["starter", "--check"]) == 0


# --------------------------------------------------------------------------- the real repository


def test_repository_starter_is_up_to_date() -> None:
    if not (REPO_ROOT / "solution" / "tapegrad" / "__init__.py").exists():
        pytest.skip("solution/tapegrad/__init__.py does not exist yet (being written)")
    assert main(["starter", "--check", "--root", str(REPO_ROOT)]) == 0, (
        "starter/ is out of date: run `kit starter` and commit starter/"
    )

"""Tests of assignment.toml loading and validation (autograder.config), on the real
assignments and on broken copies written to a temporary directory."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autograder.config import (
    DATASETS,
    ConfigError,
    assignment_ids,
    assignment_path,
    load_assignment,
)
from autograder.worker.opspecs import SPECS

REPO_ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------- the real files


def test_assignment_ids_lists_the_real_assignments() -> None:
    assert assignment_ids(REPO_ROOT) == ["hw1", "hw2", "hw3", "hw4"]


@pytest.mark.parametrize("assignment_id", ["hw1", "hw2", "hw3", "hw4"])
def test_real_assignments_load_and_total_100(assignment_id: str) -> None:
    a = load_assignment(assignment_id, REPO_ROOT)
    assert a.id == assignment_id
    assert a.path == REPO_ROOT / "assignments" / assignment_id / "assignment.toml"
    assert a.total_points == 100
    assert a.public_checks, "students need public checks to run"
    assert all(c.timeout > 0 for c in a.checks)
    for name in a.notebooks:
        assert (a.directory / name).is_file()


def test_every_hw1_op_spec_has_a_forward_and_vjp_check() -> None:
    a = load_assignment("hw1", REPO_ROOT)
    covered = {op for c in a.checks if c.kind == "op" and c.forward and c.vjp for op in c.ops}
    hw1_specs = {s.name for s in SPECS if s.assignment == "hw1"}
    assert hw1_specs - covered == set(), "op specs of hw1 without a check"
    assert a.op_names <= {s.name for s in SPECS}


def test_hw1_has_hidden_second_order_and_jvp_extras_and_notebook_checks() -> None:
    a = load_assignment("hw1", REPO_ROOT)
    assert any(c.second_order and c.hidden for c in a.checks)
    assert any(c.jvp and c.hidden for c in a.checks)
    notebook_checks = [c for c in a.checks if c.kind == "notebook"]
    assert {c.function for c in notebook_checks} == {
        "numerical_derivative",
        "forward_trace",
        "derivative",
        "Var",
    }
    assert all(c.notebook == "hw1.ipynb" for c in notebook_checks)
    assert a.check("ops.mul").ops == ("mul",)


def test_hw2_declares_the_module_checks_and_the_mnist_threshold() -> None:
    a = load_assignment("hw2", REPO_ROOT)
    ids = {c.id for c in a.checks}
    expected = {
        "nn.linear", "nn.batchnorm1d", "nn.dropout", "nn.layernorm", "loss.cross_entropy",
        "loss.mse", "optim.sgd", "optim.adam", "optim.clip_grad_norm", "init.xavier",
        "init.kaiming", "mnist.mlp",
    }  # fmt: skip
    assert expected <= ids
    assert all(c.probe for c in a.checks if c.kind == "module")
    mlp = a.check("mnist.mlp")
    assert (mlp.kind, mlp.recipe, mlp.batch_size, mlp.lr) == ("train", "mlp", 64, 0.1)
    assert dict(mlp.thresholds) == {"mnist-sample": 0.88, "mnist": 0.96, "fashion-mnist": 0.82}
    assert set(mlp.thresholds) <= set(DATASETS)


def test_hw3_has_conv_pool_and_cnn_but_no_gpu_checks() -> None:
    a = load_assignment("hw3", REPO_ROOT)
    ids = {c.id for c in a.checks}
    assert {"nn.conv2d", "nn.maxpool2d", "mnist.cnn"} <= ids
    assert not any(i.startswith("gpu.") for i in ids)
    assert a.check("mnist.cnn").recipe == "cnn"


def test_load_by_folder_and_by_file(tmp_path: Path) -> None:
    folder = REPO_ROOT / "assignments" / "hw2"
    assert load_assignment(folder).id == "hw2"
    assert load_assignment(folder / "assignment.toml").id == "hw2"


def test_unknown_id_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"no assignment 'hw9'.*known: hw1, hw2, hw3"):
        assignment_path("hw9", REPO_ROOT)


# ---------------------------------------------------------------------------- broken files

VALID = """
[assignment]
id = "hwx"
title = "A test assignment"
notebooks = ["nb.ipynb"]
time_limit = 600
timeout = 20
public_seed = 7
total_points = 10

[[checks]]
id = "ops.mul"
name = "mul"
kind = "op"
op = "mul"
points = 2
visibility = "public"

[[checks]]
id = "nn.linear"
name = "Linear"
kind = "module"
probe = "linear"
points = 2
visibility = "hidden"
timeout = 5

[[checks]]
id = "mnist.mlp"
name = "MLP"
kind = "train"
recipe = "mlp"
epochs = 2
seed = 0
points = 3
visibility = "public"

[checks.thresholds]
mnist-sample = 0.8

[[checks]]
id = "notebook.f"
name = "f"
kind = "notebook"
notebook = "nb.ipynb"
grade_id = "f-cell"
function = "accuracy"
points = 3
visibility = "public"
"""

FILE = "assignments/hwx/assignment.toml"


def write(root: Path, text: str, folder: str = "hwx") -> Path:
    path = root / "assignments" / folder / "assignment.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (path.parent / "nb.ipynb").write_text("{}", encoding="utf-8")
    return path


def errors_of(root: Path, text: str) -> str:
    write(root, text)
    with pytest.raises(ConfigError) as info:
        load_assignment("hwx", root)
    for problem in info.value.problems:
        assert problem.startswith(f"{FILE}: "), problem
    return str(info.value)


def test_the_valid_base_loads_with_defaults(tmp_path: Path) -> None:
    write(tmp_path, VALID)
    a = load_assignment("hwx", tmp_path)
    assert [c.id for c in a.checks] == ["ops.mul", "nn.linear", "mnist.mlp", "notebook.f"]
    mul = a.check("ops.mul")
    assert (mul.ops, mul.cases, mul.forward, mul.vjp, mul.jvp, mul.second_order) == (
        ("mul",), 1, True, True, False, False,
    )  # fmt: skip
    assert mul.timeout == 20 and a.check("nn.linear").timeout == 5  # default and override
    assert a.check("mnist.mlp").thresholds["mnist-sample"] == 0.8
    assert a.check("notebook.f").tests is None
    assert a.public_seed == 7 and a.notebooks == ("nb.ipynb",)
    assert [c.id for c in a.hidden_checks] == ["nn.linear"]
    with pytest.raises(KeyError, match="no check 'ops.div'"):
        a.check("ops.div")


@pytest.mark.parametrize(
    "old, new, message",
    [
        ("points = 2\nvisibility = \"public\"\n\n[[checks]]\nid = \"nn.linear\"",
         "points = \"two\"\nvisibility = \"public\"\n\n[[checks]]\nid = \"nn.linear\"",
         "checks[0].points: must be a positive number, got 'two' (check 'ops.mul')"),
        ('points = 3\nvisibility = "public"\n\n[checks.thresholds]',
         'points = -1\nvisibility = "public"\n\n[checks.thresholds]',
         "checks[2].points: must be a positive number, got -1"),
        ('probe = "linear"\npoints = 2\nvisibility = "hidden"',
         'probe = "linear"\npoints = 2\nvisibility = "secret"',
         "checks[1].visibility: must be one of 'public', 'hidden', got 'secret'"),
        ('kind = "op"\nop = "mul"\npoints = 2', 'kind = "op"\nop = "mul"\npoinst = 2',
         "checks[0].poinst: unknown field; did you mean 'points'?"),
        ('op = "mul"', 'op = "mull"', "checks[0].op: no op spec named 'mull' in "
         "autograder/worker/opspecs.py; did you mean 'mul'?"),
        ('probe = "linear"', 'probe = "linaer"', "checks[1].probe: no module probe named "
         "'linaer' (known: module, linear,"),
        ('probe = "linear"', 'probe = "linaer"', "did you mean 'linear'? (check 'nn.linear')"),
        ('recipe = "mlp"', 'recipe = "mpl"', "checks[2].recipe: no training recipe named 'mpl' "
         "(known: mlp, cnn); did you mean 'mlp'?"),
        ('function = "accuracy"', 'function = "accuracyy"',
         "checks[3].function: no notebook function the grader can call named 'accuracyy'"),
        ('op = "mul"', 'op = "relu"\nsecond_order = true',
         "checks[0].second_order: op 'relu' is not smooth"),
        ('op = "mul"', 'op = "mul"\nforward = false\nvjp = false',
         "checks[0]: forward, vjp, jvp and second_order are all false"),
        ('op = "mul"', 'op = "mul"\ncases = 0', "checks[0].cases: must be an integer >= 1, got 0"),
        ('op = "mul"', 'op = "mul"\nrecipe = "mlp"',
         "checks[0].recipe: not a field of 'op' checks (it belongs to 'train' checks)"),
        ('kind = "module"', 'kind = "gpu"',
         "checks[1].kind: must be one of 'op', 'module', 'train', 'notebook', got 'gpu'"),
        ("mnist-sample = 0.8", "mnist_sample = 0.8",
         "checks[2].thresholds.mnist_sample: unknown dataset (known: mnist-sample, mnist, "
         "fashion-mnist); did you mean 'mnist-sample'?"),
        ("mnist-sample = 0.8", "mnist-sample = 1.5",
         "checks[2].thresholds.mnist-sample: must be an accuracy in (0, 1], got 1.5"),
        ("epochs = 2\n", "", "checks[2].epochs: missing (an integer >= 1 is required)"),
        ('notebook = "nb.ipynb"', 'notebook = "other.ipynb"',
         "checks[3].notebook: 'other.ipynb' is not one of assignment.notebooks (nb.ipynb)"),
        ('function = "accuracy"', 'function = "f(x)"',
         "checks[3].function: 'f(x)' is not a valid name"),
        ('id = "nn.linear"', 'id = "ops.mul"',
         "checks[1].id: duplicate check id 'ops.mul' (also checks[0])"),
        ("time_limit = 600\n", "",
         "assignment.time_limit: missing (a positive number is required)"),
        ("public_seed = 7", "public_seed = 7.5",
         "assignment.public_seed: must be an integer >= 0, got 7.5"),
        ('notebooks = ["nb.ipynb"]', 'notebooks = ["nb.ipynb", "missing.ipynb"]',
         "assignment.notebooks[1]: 'missing.ipynb' not found in"),
        ("total_points = 10", "total_points = 100",
         "assignment.total_points: the checks' points add up to 10, not 100"),
        ('title = "A test assignment"', 'title = "A test assignment"\nauthor = "me"',
         "assignment.author: unknown field"),
        ('id = "hwx"', 'id = "hw1"', "assignment.id: 'hw1' does not match its folder 'hwx'"),
        ("[assignment]", "[assignment\n", "invalid TOML"),
    ],
)  # fmt: skip
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    assert old in VALID, old
    assert message in errors_of(tmp_path, VALID.replace(old, new, 1))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace("points = 2", 'points = "two"', 1).replace('op = "mul"', 'op = "mull"')
    problems = errors_of(tmp_path, text).splitlines()
    assert any("checks[0].points" in p for p in problems)
    assert any("checks[0].op" in p for p in problems)


def test_missing_checks_and_assignment_tables(tmp_path: Path) -> None:
    message = errors_of(tmp_path, "[other]\nx = 1\n")
    assert f"{FILE}: assignment: missing [assignment] table" in message
    assert f"{FILE}: checks: at least one [[checks]] table is required" in message
    assert f"{FILE}: other: unknown field" in message


def test_jvp_is_refused_for_ops_whose_spec_has_no_forward_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from autograder import config

    no_jvp = dataclasses.replace(config._OP_NAMES["mul"], jvp=False)
    monkeypatch.setitem(config._OP_NAMES, "mul", no_jvp)
    message = errors_of(tmp_path, VALID.replace('op = "mul"', 'op = "mul"\njvp = true'))
    assert "checks[0].jvp: op 'mul' has no forward mode in its spec" in message


def test_assignment_ids_sort_naturally(tmp_path: Path) -> None:
    for folder in ("hw10", "hw2", "hw1"):
        write(tmp_path, VALID.replace('"hwx"', f'"{folder}"'), folder)
    (tmp_path / "assignments" / "notes").mkdir()  # no assignment.toml: not an assignment
    assert assignment_ids(tmp_path) == ["hw1", "hw2", "hw10"]


def test_a_file_outside_assignments_needs_no_matching_folder(tmp_path: Path) -> None:
    path = tmp_path / "assignment.toml"
    path.write_text(VALID, encoding="utf-8")
    (tmp_path / "nb.ipynb").write_text("{}", encoding="utf-8")
    assert load_assignment(path).id == "hwx"

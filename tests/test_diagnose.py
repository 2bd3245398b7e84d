"""The diagnosis on its own (``autograder/grading/diagnose.py``): each bug class is named for
the shape of mismatch it describes, and not for a right answer nor for another shape; the
backward-cost case tells a backward rule from a numerical gradient on every op spec.

The catalogue of classic bugs (``tests/test_grader_bugs.py``) checks the same classes end to
end on patched submissions; these tests pin the rules down on plain arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import tapegrad as tg

from autograder.grading.cases import RequestFailed
from autograder.grading.diagnose import BUG_CLASSES, GATES, classify_gradient, compare_values
from autograder.grading.ops import (
    COST_ELEMENTS,
    COST_LABEL,
    cost_case,
    judge_backward_cost,
    run_op_check,
)
from autograder.worker.handlers import HANDLERS
from autograder.worker.opspecs import SPECS, spec

RNG = np.random.default_rng(0)
X = RNG.uniform(0.5, 2.0, (4, 5))
U = RNG.standard_normal((4, 5))


def judge(got: np.ndarray, expected: np.ndarray, **kw: Any) -> str | None:
    v = classify_gradient(
        "g", got, expected, input_shape=expected.shape, output_shape=U.shape, **kw
    )
    return None if v.ok else v.bug_class


def test_every_class_has_advice_and_gates_are_classes() -> None:
    assert all(text.strip() for text in BUG_CLASSES.values())
    assert GATES <= set(BUG_CLASSES)


def test_factor_of_two_against_other_constant_factors() -> None:
    expected = U / (2 * np.sqrt(X))  # d sqrt
    assert judge(U / np.sqrt(X), expected) == "factor_of_two"  # the 1/2 forgotten
    assert judge(expected / 2, expected) == "factor_of_two"
    assert judge(3 * expected, expected) == "constant_factor"
    assert judge(-expected, expected) == "sign_flipped"
    assert judge(expected * (1 + 1e-9), expected) is None


def test_wrong_local_derivative_of_an_elementwise_op_shows_f_prime_at_a_point() -> None:
    y = np.tanh(X)
    expected = U * (1 - y * y)
    v = classify_gradient(
        "g", U * (1 - y), expected, input_shape=X.shape, output_shape=U.shape, elementwise=(X, U)
    )
    assert v.bug_class == "wrong_local_derivative"
    assert "your f'(x) is" in v.message and "the right one is" in v.message
    # the same mismatch on an op that is not elementwise says only that the gradient is wrong
    assert judge(U * (1 - y), expected) == "wrong_gradient"
    # a shape the diagnosis knows comes first: a flipped sign is a sign, elementwise or not
    assert judge(-expected, expected, elementwise=(X, U)) == "sign_flipped"


def test_alternatives_are_computed_only_for_a_wrong_answer_and_name_their_class() -> None:
    calls = []

    def swapped() -> list[tuple[str, np.ndarray]]:
        calls.append(1)
        return [("swapped_operands", U * 2.0 + 1.0)]

    assert judge(U * X, U * X, alternatives=swapped) is None
    assert calls == []
    assert judge(U * 2.0 + 1.0, U * X, alternatives=swapped) == "swapped_operands"
    assert judge(U * 5.0 - 1.0, U * X, alternatives=swapped) == "wrong_gradient"


def test_an_all_zero_answer_is_named_by_if_zero_only_where_the_truth_is_not_zero() -> None:
    expected = U * np.cos(X)
    assert judge(np.zeros_like(X), expected, if_zero="detached_backward") == "detached_backward"
    assert judge(np.zeros_like(X), expected) != "detached_backward"
    assert judge(np.zeros_like(X), np.zeros_like(X), if_zero="detached_backward") is None


def test_a_forward_equal_to_a_known_wrong_forward_is_named() -> None:
    a = X
    wrong = [("swapped_operands", a - 3.0)]
    v = compare_values("forward", a - 3.0, 3.0 - a, alternatives=lambda: wrong)
    assert (v.ok, v.bug_class) == (False, "swapped_operands")
    v = compare_values("forward", a + 7.0, 3.0 - a, alternatives=lambda: wrong)
    assert v.bug_class == "wrong_forward"


def in_process(header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict, list]:
    try:
        return HANDLERS[header["type"]](tg, header, [a.copy() for a in arrays])
    except Exception as exc:
        raise RequestFailed(f"{type(exc).__name__}: {exc}", "crash") from None


@pytest.mark.parametrize("name", [s.name for s in SPECS])
def test_the_reference_backward_is_a_rule_on_every_op_spec(name: str) -> None:
    """The backward-cost case fits every op spec but broadcast_to (fixed target shapes), and
    the reference's backward rules pass it: no false 'numerical gradient'."""
    s = spec(name)
    cost = cost_case(s)
    if cost is None:
        assert name == "broadcast_to"
        return
    index, shapes = cost
    assert max(int(np.prod(shape)) for shape in shapes) >= COST_ELEMENTS
    verdict, about = judge_backward_cost(
        in_process, s=s, index=index, shapes=shapes, rng=np.random.default_rng(1)
    )
    assert verdict.ok, verdict.message
    assert about.startswith(COST_LABEL)


def test_a_numerical_backward_is_caught_and_gates_the_check() -> None:
    """A handler that answers backward by central differences of the op's forward: the cost
    case fails with class numerical_gradient, the gradient cases themselves pass."""

    class Numerical(tg.Function):
        def forward(self, a: Any) -> Any:
            return np.exp(a)

        def backward(self, gy: Any) -> Any:
            a = self.inputs[0].data.copy()
            g = np.zeros_like(a)
            for k in range(a.size):
                old = a.flat[k]
                a.flat[k] = old + 1e-6
                plus = self.forward(a)
                a.flat[k] = old - 1e-6
                minus = self.forward(a)
                a.flat[k] = old
                g.flat[k] = np.sum(gy.data * (plus - minus)) / 2e-6
            return (tg.Tensor(g),)

    class Student:  # tapegrad with exp replaced by the numerical one
        def __getattr__(self, name: str) -> Any:
            return getattr(tg, name)

        @staticmethod
        def exp(a: Any) -> Any:
            return Numerical()(a)

    def request(header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict, list]:
        return HANDLERS[header["type"]](Student(), header, [a.copy() for a in arrays])  # type: ignore[arg-type]

    outcomes = run_op_check(request, "exp", np.random.default_rng(2))
    (cost,) = [o for o in outcomes if o.label == COST_LABEL]
    assert cost.bug_class == "numerical_gradient" and cost.bug_class in GATES
    assert "finite differences" in cost.message
    assert all(o.passed for o in outcomes if o.label != COST_LABEL)
    # the reference: the gate passes, and a passing gate is not a case (no share of points)
    outcomes = run_op_check(in_process, "exp", np.random.default_rng(2))
    assert all(o.passed for o in outcomes) and COST_LABEL not in {o.label for o in outcomes}

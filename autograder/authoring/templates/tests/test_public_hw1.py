"""Public tests for homework 1: a few cases per op, checked like the autograder checks them.

Each op's forward value is compared with NumPy, and its gradient with central differences
of the NumPy function, in float64, for a random (never all-ones) cotangent. The autograder
runs the same kind of checks on many more, hidden, random cases: passing these is necessary,
not sufficient. Run them with `pytest -m hw1`; `pytest -m hw1 -k matmul` runs one op.
"""

import math

import numpy as np
import pytest
import tapegrad as tg

pytestmark = pytest.mark.hw1


def finite_difference_vjp(f, arrays, index, cotangent, eps=1e-6):
    """d/dx <cotangent, f(*arrays)> with respect to arrays[index], by central differences."""
    x = arrays[index]
    grad = np.zeros_like(x)
    for position in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[position] = eps
        before = list(arrays)
        after = list(arrays)
        before[index] = x - step
        after[index] = x + step
        grad[position] = np.sum(cotangent * (f(*after) - f(*before))) / (2 * eps)
    return grad


def check(op, reference, *arrays, seed=0):
    """Forward against ``reference`` (a NumPy function), then each input's gradient against
    finite differences of it."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    inputs = [tg.Tensor(a, requires_grad=True) for a in arrays]
    out = op(*inputs)
    expected = reference(*arrays)
    assert out.shape == np.shape(expected), (
        f"forward shape {out.shape}, expected {np.shape(expected)}"
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-7, atol=1e-9, err_msg="forward")
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(cotangent)
    for i, (t, a) in enumerate(zip(inputs, arrays, strict=True)):
        assert t.grad is not None, f"input {i} received no gradient"
        assert t.grad.shape == a.shape, (
            f"input {i}: gradient of shape {t.grad.shape} for an input of shape {a.shape} "
            "(a broadcast not summed back?)"
        )
        want = finite_difference_vjp(reference, arrays, i, cotangent)
        np.testing.assert_allclose(
            t.grad.numpy(), want, rtol=1e-5, atol=1e-6, err_msg=f"gradient of input {i}"
        )
    for a, t in zip(arrays, inputs, strict=True):
        np.testing.assert_array_equal(t.numpy(), a, err_msg="an input was modified")


rng = np.random.default_rng(2026)
A = rng.standard_normal((3, 4))
B = rng.standard_normal((3, 4))
ROW = rng.standard_normal(4)
COLUMN = rng.standard_normal((3, 1))
POSITIVE = rng.uniform(0.5, 2.0, (3, 4))
AWAY_FROM_ZERO = rng.choice([-1.0, 1.0], (3, 4)) * rng.uniform(0.3, 2.0, (3, 4))


@pytest.mark.parametrize(
    "name, op, reference, arrays",
    [
        ("add", lambda a, b: a + b, np.add, (A, B)),
        ("add broadcast row", lambda a, b: a + b, np.add, (A, ROW)),
        ("sub outer broadcast", lambda a, b: a - b, np.subtract, (COLUMN, ROW)),
        ("mul broadcast", lambda a, b: a * b, np.multiply, (A, COLUMN)),
        ("div", lambda a, b: a / b, np.divide, (A, AWAY_FROM_ZERO)),
        ("pow", lambda a, b: a**b, np.power, (POSITIVE, B)),
        ("matmul", lambda a, b: a @ b, np.matmul, (A, rng.standard_normal((4, 5)))),
        (
            "batched matmul",
            lambda a, b: a @ b,
            np.matmul,
            (rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_binary_ops(name, op, reference, arrays):
    check(op, reference, *arrays)


def test_python_scalars_on_either_side():
    check(
        lambda a: 2.0 * a - 1.5 / a + a / 4.0 - (3.0 - a) + 2.0**a,
        lambda a: 2.0 * a - 1.5 / a + a / 4.0 - (3.0 - a) + 2.0**a,
        AWAY_FROM_ZERO,
    )


@pytest.mark.parametrize(
    "name, op, reference, x",
    [
        ("exp", tg.exp, np.exp, A),
        ("log", tg.log, np.log, POSITIVE),
        ("sqrt", tg.sqrt, np.sqrt, POSITIVE),
        ("sin", tg.sin, np.sin, A),
        ("cos", tg.cos, np.cos, A),
        ("tanh", tg.tanh, np.tanh, A),
        ("sigmoid", tg.sigmoid, lambda x: 1 / (1 + np.exp(-x)), A),
        ("relu", tg.relu, lambda x: np.where(x > 0, x, 0.0), AWAY_FROM_ZERO),
        ("abs", tg.abs, np.abs, AWAY_FROM_ZERO),
        ("neg", lambda x: -x, np.negative, A),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_elementwise(name, op, reference, x):
    check(op, reference, x)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"axis": 0}, {"axis": -1, "keepdims": True}, {"axis": (0, 1)}],
    ids=["all", "axis0", "keepdims", "tuple"],
)
def test_sum_and_mean(kwargs):
    check(lambda x: x.sum(**kwargs), lambda x: np.sum(x, **kwargs), A)
    check(lambda x: x.mean(**kwargs), lambda x: np.mean(x, **kwargs), A)


def test_max_sends_the_gradient_to_the_argmax():
    distinct = rng.permutation(np.arange(12.0)).reshape(3, 4)
    check(lambda x: x.max(axis=1), lambda x: np.max(x, axis=1), distinct)


def test_softmax_family():
    logits = 3.0 * rng.standard_normal((4, 5))
    shifted = lambda x: x - np.max(x, axis=1, keepdims=True)  # noqa: E731
    check(
        lambda x: tg.logsumexp(x, axis=1),
        lambda x: np.log(np.sum(np.exp(shifted(x)), axis=1)) + np.max(x, axis=1),
        logits,
    )
    check(
        lambda x: tg.softmax(x, axis=1),
        lambda x: np.exp(shifted(x)) / np.sum(np.exp(shifted(x)), axis=1, keepdims=True),
        logits,
    )
    check(
        lambda x: tg.log_softmax(x, axis=1),
        lambda x: shifted(x) - np.log(np.sum(np.exp(shifted(x)), axis=1, keepdims=True)),
        logits,
    )


def test_softmax_is_stable_at_extreme_logits():
    logits = tg.Tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0]], requires_grad=True)
    out = tg.log_softmax(logits, axis=1)
    assert np.all(np.isfinite(out.numpy())), "log_softmax overflowed: subtract the max first"
    np.testing.assert_allclose(tg.softmax(logits, axis=1).numpy().sum(axis=1), 1.0)
    out.sum().backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


def test_shapes():
    check(lambda x: x.reshape(2, -1), lambda x: x.reshape(2, -1), A)
    check(lambda x: x.T, lambda x: x.T, A)
    check(
        lambda x: x.transpose(2, 0, 1),
        lambda x: np.transpose(x, (2, 0, 1)),
        rng.standard_normal((2, 3, 4)),
    )
    check(lambda x: x.broadcast_to((2, 3, 4)), lambda x: np.broadcast_to(x, (2, 3, 4)), ROW)
    check(lambda a, b: tg.concatenate([a, b], 0), lambda a, b: np.concatenate([a, b], 0), A, B)
    check(lambda a, b: tg.stack([a, b], 1), lambda a, b: np.stack([a, b], 1), A, B)
    check(lambda a, b: tg.where(a > 0, a, b), lambda a, b: np.where(a > 0, a, b), AWAY_FROM_ZERO, B)


def test_indexing_adds_gradients_of_repeated_indices():
    check(lambda x: x[1:3, ::2], lambda x: x[1:3, ::2], A)
    check(lambda x: x[np.array([0, 2, 2, 1])], lambda x: x[np.array([0, 2, 2, 1])], A)


def test_reused_node_accumulates():
    check(lambda x: x * x + tg.sin(x) * x, lambda x: x * x + np.sin(x) * x, A)
    check(lambda x: (lambda y: y * y + y)(tg.exp(x)), lambda x: np.exp(2 * x) + np.exp(x), A)


def test_the_course_example():
    x1 = tg.Tensor(2.0, requires_grad=True)
    x2 = tg.Tensor(5.0, requires_grad=True)
    y = tg.log(x1) + x1 * x2 - tg.sin(x2)
    y.backward()
    assert math.isclose(y.item(), math.log(2.0) + 10.0 - math.sin(5.0), rel_tol=1e-6)
    assert math.isclose(x1.grad.item(), 5.5, rel_tol=1e-6)
    assert math.isclose(x2.grad.item(), 2.0 - math.cos(5.0), rel_tol=1e-6)


def test_second_derivative_and_forward_mode():
    assert math.isclose(tg.grad(tg.grad(tg.sin))(1.0).item(), -math.sin(1.0), rel_tol=1e-5)
    value, tangent = tg.jvp(lambda x: x * tg.exp(x), (1.0,), (2.0,))
    assert math.isclose(value.item(), math.e, rel_tol=1e-6)
    assert math.isclose(tangent.item(), 2.0 * 2.0 * math.e, rel_tol=1e-6)


def test_check_grad_catches_a_wrong_gradient():
    class WrongSin(tg.Function):
        def forward(self, x):
            return np.sin(x)

        def backward(self, grad):
            return (grad * tg.sin(self.inputs[0]),)  # should be cos

    assert tg.check_grad(tg.sin, A)
    assert not tg.check_grad(lambda x: WrongSin()(x), A)

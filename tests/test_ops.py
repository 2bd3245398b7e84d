"""Every op of the op-spec table, checked the way the grader checks students: forward values
against the float64 NumPy reference, VJPs against finite differences of that reference
(full for small inputs, random directions for large ones), forward mode against reverse mode,
second derivatives, backward twice, inputs untouched. The ops come from
``autograder.worker.opspecs.SPECS``; nothing here lists them again."""

from __future__ import annotations

import numpy as np
import pytest
import tapegrad as tg

from autograder.grading.numeric import close, directional_derivative, gradient_of_projection
from autograder.worker.opspecs import SPECS, Case, OpSpec, make_inputs

pytestmark = pytest.mark.hw1

CASES = [pytest.param(s, c, id=f"{s.name}[{c.label}]") for s in SPECS for c in s.cases]
SMALL = 400  # elements: up to this, compare the full gradient entry by entry


def _rng(s: OpSpec, c: Case, salt: int = 0) -> np.random.Generator:
    return np.random.default_rng([sum(map(ord, s.name + c.label)), salt])


def _run(s: OpSpec, c: Case, xs: list[np.ndarray], requires_grad: bool = True):
    ts = [tg.Tensor(x, requires_grad=requires_grad) for x in xs]
    return ts, s.call(tg, *ts, **c.kwargs)


def _reference(s: OpSpec, c: Case):
    return lambda *xs: s.reference(*xs, **c.kwargs)


@pytest.mark.parametrize("s,c", CASES)
def test_forward_matches_reference(s: OpSpec, c: Case) -> None:
    xs = make_inputs(s, c, _rng(s, c))
    expected = np.asarray(s.reference(*xs, **c.kwargs))
    _, y = _run(s, c, xs, requires_grad=False)
    assert y.dtype == np.float64
    assert y.shape == expected.shape
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-10)

    y32 = s.call(tg, *[tg.Tensor(x.astype(np.float32)) for x in xs], **c.kwargs)
    assert y32.dtype == np.float32, "float32 inputs must give a float32 result"
    np.testing.assert_allclose(y32.numpy(), expected, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("s,c", CASES)
def test_vjp_matches_finite_differences_of_reference(s: OpSpec, c: Case) -> None:
    rng = _rng(s, c, 1)
    xs = make_inputs(s, c, rng)
    ts, y = _run(s, c, xs)
    u = rng.standard_normal(y.shape)  # a random cotangent, never all ones
    y.backward(u)
    f = _reference(s, c)
    for i, (x, t) in enumerate(zip(xs, ts)):
        assert t.grad is not None, f"no gradient reached input {i}"
        assert t.grad.shape == x.shape and t.grad.dtype == np.float64
        g = t.grad.numpy()
        if x.size <= SMALL:
            expected = gradient_of_projection(f, xs, i, u)
            np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6, err_msg=f"input {i}")
        else:
            for _ in range(3):
                v = rng.standard_normal(x.shape)
                expected = np.sum(u * directional_derivative(f, xs, i, v))
                assert close(np.sum(g * v), expected, atol=1e-6, rtol=1e-6), f"input {i}"


@pytest.mark.parametrize(
    "s,c", [p for p in CASES if p.values[1].label != "large (directional check)"]
)
def test_check_grad_accepts_the_reference(s: OpSpec, c: Case) -> None:
    xs = make_inputs(s, c, _rng(s, c, 2))
    report = tg.check_grad(lambda *ts: s.call(tg, *ts, **c.kwargs), *xs)
    assert report.ok, str(report)


@pytest.mark.parametrize("s,c", [p for p in CASES if p.values[0].jvp])
def test_jvp_agrees_with_reverse_mode(s: OpSpec, c: Case) -> None:
    """<u, J v> from forward mode equals <J^T u, v> from reverse mode."""
    rng = _rng(s, c, 3)
    xs = make_inputs(s, c, rng)
    vs = [rng.standard_normal(x.shape) for x in xs]
    y, ty = tg.jvp(lambda *ts: s.call(tg, *ts, **c.kwargs), tuple(xs), tuple(vs))
    np.testing.assert_allclose(y.numpy(), s.reference(*xs, **c.kwargs), rtol=1e-10, atol=1e-12)
    assert ty.shape == y.shape
    u = rng.standard_normal(y.shape)
    ts, y2 = _run(s, c, xs)
    y2.backward(u)
    reverse = sum(float(np.sum(t.grad.numpy() * v)) for t, v in zip(ts, vs))
    assert close(np.sum(u * ty.numpy()), reverse, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize(
    "s,c", [p for p in CASES if p.values[0].smooth and p.values[1] is p.values[0].cases[0]]
)
def test_second_derivatives(s: OpSpec, c: Case) -> None:
    """The gradient (recorded with create_graph) has correct gradients itself."""
    rng = _rng(s, c, 4)
    xs = make_inputs(s, c, rng)
    out_shape = np.shape(s.reference(*xs, **c.kwargs))
    u = tg.Tensor(rng.standard_normal(out_shape), dtype=np.float64)

    def gradient(x0: tg.Tensor) -> tg.Tensor:
        rest = [tg.Tensor(x) for x in xs[1:]]
        return tg.grad(lambda z: (s.call(tg, z, *rest, **c.kwargs) * u).sum())(x0)

    report = tg.check_grad(gradient, xs[0])
    assert report.ok, str(report)


@pytest.mark.parametrize("s,c", [p for p in CASES if p.values[1] is p.values[0].cases[0]])
def test_backward_twice_accumulates_and_inputs_are_untouched(s: OpSpec, c: Case) -> None:
    rng = _rng(s, c, 5)
    xs = make_inputs(s, c, rng)
    copies = [x.copy() for x in xs]
    ts, y = _run(s, c, xs)
    u = rng.standard_normal(y.shape)
    y.backward(u)
    first = [t.grad.numpy().copy() for t in ts]
    y.backward(u)
    for g1, t in zip(first, ts):
        np.testing.assert_allclose(t.grad.numpy(), 2 * g1, rtol=1e-12, atol=1e-12)
    for x, x0, t in zip(xs, copies, ts):
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(t.numpy(), x0)


@pytest.mark.parametrize("name", ["softmax_extreme", "log_softmax_extreme", "logsumexp_extreme"])
def test_extreme_logits_stay_finite(name: str) -> None:
    s = next(s for s in SPECS if s.name == name)
    c = s.cases[0]
    for dtype in (np.float32, np.float64):
        xs = [x.astype(dtype) for x in make_inputs(s, c, _rng(s, c, 6))]
        ts, y = _run(s, c, xs)
        y.backward(np.ones(y.shape))
        assert np.all(np.isfinite(y.numpy())), f"{name} overflowed in {np.dtype(dtype)}"
        assert np.all(np.isfinite(ts[0].grad.numpy()))

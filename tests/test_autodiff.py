"""The tape and the API around it: the course's worked examples, deep graphs, accumulation
semantics, higher-order derivatives, forward mode, check_grad's own behaviour, dtypes and
errors. (Per-op gradient checks live in test_ops.py, driven by the op-spec table.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import tapegrad as tg
from tapegrad.tensor import Function, topological_order

pytestmark = pytest.mark.hw1


# ---- the course's worked examples -------------------------------------------------------------


def test_worked_example_reverse_mode() -> None:
    """f(x1, x2) = ln(x1) + x1*x2 - sin(x2) at (2, 5): gradient (1/x1 + x2, x1 - cos(x2))."""
    x1 = tg.Tensor(2.0, requires_grad=True, dtype="float64")
    x2 = tg.Tensor(5.0, requires_grad=True, dtype="float64")
    f = tg.log(x1) + x1 * x2 - tg.sin(x2)
    f.backward()
    assert f.item() == pytest.approx(math.log(2) + 10 - math.sin(5))
    assert x1.grad.item() == pytest.approx(5.5)
    assert x2.grad.item() == pytest.approx(1.716, abs=5e-4)
    assert x2.grad.item() == pytest.approx(2 - math.cos(5), rel=1e-12)


def test_worked_example_forward_mode_matches_the_primal_tangent_table() -> None:
    """y = x1*x2 + sin(x1) at (2, 3): dy/dx1 = x2 + cos(x1), dy/dx2 = x1, one jvp each."""

    def f(x1: tg.Tensor, x2: tg.Tensor) -> tg.Tensor:
        return x1 * x2 + tg.sin(x1)

    primals = (np.float64(2.0), np.float64(3.0))
    y, dy1 = tg.jvp(f, primals, (1.0, 0.0))
    _, dy2 = tg.jvp(f, primals, (0.0, 1.0))
    assert y.item() == pytest.approx(6 + math.sin(2))
    assert dy1.item() == pytest.approx(3 + math.cos(2))
    assert dy2.item() == pytest.approx(2.0)
    g1, g2 = tg.grad(f, argnums=(0, 1))(*primals)
    assert (g1.item(), g2.item()) == pytest.approx((dy1.item(), dy2.item()))


# ---- the tape ---------------------------------------------------------------------------------


def test_ten_thousand_deep_chain() -> None:
    x = tg.Tensor(np.full(3, 0.5), requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 1.0001**10_000, rtol=1e-3)


def test_deep_tanh_chain_matches_closed_form() -> None:
    x0 = 0.3
    x = tg.Tensor(x0, requires_grad=True, dtype="float64")
    y, expected_grad, v = x, 1.0, x0
    for _ in range(5_000):
        y = tg.tanh(y)
        expected_grad *= 1 - math.tanh(v) ** 2
        v = math.tanh(v)
    y.backward()
    assert x.grad.item() == pytest.approx(expected_grad, rel=1e-9)


def test_topological_order_puts_inputs_first_and_lists_each_node_once() -> None:
    a = tg.Tensor(1.0, requires_grad=True)
    b = a * 2.0
    c = b + b * a
    order = topological_order(c)
    assert len(order) == len({id(t) for t in order})
    pos = {id(t): i for i, t in enumerate(order)}
    for t in order:
        if t._ctx is not None:
            for x in t._ctx.inputs:
                if x.requires_grad:
                    assert pos[id(x)] < pos[id(t)]
    assert order[-1] is c and order[0] is a


def test_reused_node_accumulates_every_path() -> None:
    x = tg.Tensor(3.0, requires_grad=True, dtype="float64")
    y = x * x  # 2 paths to x
    z = y * y + y  # y used twice
    z.backward()
    # z = x^4 + x^2, dz/dx = 4x^3 + 2x
    assert x.grad.item() == pytest.approx(4 * 27 + 6)


def test_grad_accumulates_across_calls_like_pytorch_and_zero_grad_resets() -> None:
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 + 3, 4 + 3])
    x.zero_grad()
    assert x.grad is None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2, 4])


def test_backward_on_a_fresh_graph_after_another() -> None:
    w = tg.Tensor([0.5, -1.0], requires_grad=True, dtype="float64")
    for step in range(3):
        w.zero_grad()
        loss = ((w * (step + 1.0)) ** 2).sum()
        loss.backward()
        np.testing.assert_allclose(w.grad.numpy(), 2 * (step + 1.0) ** 2 * w.numpy())


def test_only_leaves_get_grad_and_grads_do_not_require_grad() -> None:
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.sum().backward()
    assert h.grad is None and not h.is_leaf
    assert x.grad is not None and not x.grad.requires_grad


def test_detach_and_no_grad_record_nothing() -> None:
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    assert not d.requires_grad and d._ctx is None
    assert np.shares_memory(d.data, x.data)
    with tg.no_grad():
        y = x * 2.0
        assert not tg.is_grad_enabled()
        with tg.enable_grad():
            z = x * 2.0
    assert tg.is_grad_enabled()
    assert not y.requires_grad and y._ctx is None
    assert z.requires_grad
    # a detached branch contributes nothing
    (x * x.detach()).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])


def test_grad_of_an_input_used_only_through_a_constant_is_none() -> None:
    x = tg.Tensor([1.0], requires_grad=True)
    y = tg.Tensor([2.0], requires_grad=True)
    (x * 2.0).sum().backward()
    assert y.grad is None


# ---- higher order -----------------------------------------------------------------------------


def test_grad_of_grad_against_closed_forms() -> None:
    x = 0.7
    d2 = tg.grad(tg.grad(lambda t: t**3))(x)
    assert d2.item() == pytest.approx(6 * x, rel=1e-6)
    d2 = tg.grad(tg.grad(tg.sin))(x)
    assert d2.item() == pytest.approx(-math.sin(x), rel=1e-6)
    d3 = tg.grad(tg.grad(tg.grad(tg.exp)))(x)
    assert d3.item() == pytest.approx(math.exp(x), rel=1e-6)
    d2 = tg.grad(tg.grad(tg.tanh))(np.float64(x))
    t = math.tanh(x)
    assert d2.item() == pytest.approx(-2 * t * (1 - t * t), rel=1e-10)


def test_backward_create_graph_gives_hessian_vector_products() -> None:
    a = np.array([[2.0, 1.0], [1.0, 3.0]])
    x = tg.Tensor([0.5, -0.2], requires_grad=True, dtype="float64")
    f = (x * (tg.Tensor(a) @ x)).sum() * 0.5 + tg.sin(x).sum()  # Hessian: A - diag(sin x)
    f.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    v = np.array([1.0, -2.0])
    x.grad = None
    (g * tg.Tensor(v)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), (a - np.diag(np.sin(x.numpy()))) @ v, rtol=1e-10)


def test_grad_with_several_argnums_and_unused_argument() -> None:
    def f(a: tg.Tensor, b: tg.Tensor, c: tg.Tensor) -> tg.Tensor:
        return (a * b).sum()

    ga, gc = tg.grad(f, argnums=(0, 2))(np.ones(3), np.arange(3.0), np.ones(2))
    np.testing.assert_allclose(ga.numpy(), [0, 1, 2])
    np.testing.assert_allclose(gc.numpy(), [0, 0])


def test_grad_needs_a_scalar_output() -> None:
    with pytest.raises(TypeError, match="one-element"):
        tg.grad(lambda t: t * 2.0)(np.ones(3))


def test_jvp_of_a_tuple_output_and_shape_errors() -> None:
    (y1, y2), (t1, t2) = tg.jvp(lambda x: (x * x, tg.exp(x)), (np.ones(2),), (np.full(2, 2.0),))
    np.testing.assert_allclose(t1.numpy(), [4.0, 4.0])
    np.testing.assert_allclose(t2.numpy(), 2 * np.e * np.ones(2), rtol=1e-6)
    with pytest.raises(ValueError, match="tangent shape"):
        tg.jvp(tg.exp, (np.ones(2),), (np.ones(3),))
    _, t = tg.jvp(lambda x: tg.Tensor(np.ones(2)) * 3.0, (np.ones(2),), (np.ones(2),))
    np.testing.assert_array_equal(t.numpy(), 0)


# ---- check_grad -------------------------------------------------------------------------------


class _WrongSquare(Function):
    """x**2 with the classic bug of forgetting the factor 2 in backward."""

    def forward(self, a):  # type: ignore[no-untyped-def]
        return a * a

    def backward(self, gy):  # type: ignore[no-untyped-def]
        return (gy * self.inputs[0],)


def test_check_grad_reports_a_wrong_backward_with_its_location() -> None:
    report = tg.check_grad(lambda x: _WrongSquare()(x), np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert not report.ok and not report
    text = str(report)
    assert "FAIL" in text and "full Jacobian" in text and "gradients WRONG" in text
    assert "d out[" in report.inputs[0].where


def test_check_grad_directional_for_large_inputs_and_missing_gradients() -> None:
    big = np.random.default_rng(0).standard_normal((80, 80))
    report = tg.check_grad(lambda x: _WrongSquare()(x).sum(axis=0), big)
    assert report.inputs[0].method == "directional" and not report.ok
    # an input that affects the output but receives no gradient
    report = tg.check_grad(lambda x, y: x * y.detach(), np.ones(3), np.ones(3))
    assert report.inputs[0].ok and not report.inputs[1].ok
    assert "no gradient" in report.inputs[1].where


def test_check_grad_passes_a_correct_function_in_float64() -> None:
    rng = np.random.default_rng(1)
    report = tg.check_grad(
        lambda a, b: tg.tanh(a @ b).sum(axis=1),
        rng.standard_normal((3, 4)),
        tg.Tensor(rng.standard_normal((4, 2))),
    )
    assert report.ok, str(report)
    assert "gradients OK" in str(report)


# ---- tensors: dtypes, attributes, errors ------------------------------------------------------


def test_dtype_rules() -> None:
    assert tg.Tensor(1.5).dtype == np.float32
    assert tg.Tensor([1.0, 2.0]).dtype == np.float32
    assert tg.Tensor(np.ones(2)).dtype == np.float64
    assert tg.Tensor(np.ones(2, np.float16)).dtype == np.float32
    assert tg.Tensor([1, 2]).dtype.kind == "i"
    assert tg.Tensor(np.array([True])).dtype == np.bool_
    assert tg.Tensor([1, 2], dtype="float64").dtype == np.float64
    assert tg.Tensor(np.ones(2, np.float32), dtype=np.float64).dtype == np.float64
    x = tg.Tensor([1.0, 2.0])
    assert (x * 2).dtype == np.float32 and (2.5 * x).dtype == np.float32
    assert (x / 3).dtype == np.float32 and (x**2).dtype == np.float32


def test_attributes_and_conversions() -> None:
    t = tg.Tensor(np.arange(6.0).reshape(2, 3))
    assert t.shape == (2, 3) and t.ndim == 2 and t.size == 6 and t.device == "cpu"
    assert isinstance(t.numpy(), np.ndarray)
    assert t.sum().item() == 15.0 and float(t[1, 2]) == 5.0
    assert t.reshape(-1).shape == (6,) and t.reshape(3, -1).shape == (3, 2)
    assert t.reshape((1, 6)).shape == (1, 6) and t.T.shape == (3, 2)
    assert len(t) == 2
    assert "Tensor(" in repr(t) and "requires_grad=True" in repr(tg.Tensor(1.0, requires_grad=True))
    assert tg.Tensor(t).shape == (2, 3)


def test_comparisons_have_no_gradient() -> None:
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    for m in (x > 1.5, x >= 2, x < 2, x <= 2, x == 2, x != 2):
        assert m.dtype == np.bool_ and not m.requires_grad
    np.testing.assert_array_equal((x > 1.5).numpy(), [False, True, True])
    assert {x: 1}[x] == 1  # tensors hash by identity


def test_integer_tensors_cannot_require_grad() -> None:
    with pytest.raises(TypeError, match="floating-point"):
        tg.Tensor([1, 2], requires_grad=True)
    t = tg.Tensor([1, 2])
    with pytest.raises(TypeError, match="int"):
        t.requires_grad = True


def test_backward_errors_are_clear() -> None:
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element.*\(2, 3\)"):
        (x * 2.0).backward()
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.Tensor(1.0).backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 3\)"):
        (x * 2.0).backward(np.ones(3))


def test_shape_errors_name_both_shapes() -> None:
    a, b = tg.Tensor(np.ones((3, 4))), tg.Tensor(np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 2\)"):
        a + b
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 5\)"):
        a.reshape(5, 5)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 4\)"):
        a.broadcast_to((2, 4))
    with pytest.raises(ValueError, match="axis 2"):
        a.sum(axis=2)


def test_unknown_device_and_missing_cuda_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="unknown device"):
        tg.Tensor(1.0, device="tpu")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="CuPy"):
            tg.Tensor(1.0, device="cuda")


def test_ndarray_on_the_left_of_an_operator_gives_a_tensor() -> None:
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, tg.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])


def test_mean_max_min_and_indexing_with_tensor_indices() -> None:
    x = tg.Tensor(np.array([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]]), requires_grad=True)
    np.testing.assert_allclose(x.max(axis=1).numpy(), [5.0, 6.0])
    np.testing.assert_allclose(x.min(axis=0).numpy(), [1.0, 2.0, 3.0])
    picked = x[tg.Tensor([0, 1]), tg.Tensor([2, 2])]
    picked.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0, 1], [0, 0, 1]])


def test_max_shares_the_gradient_between_ties() -> None:
    x = tg.Tensor([2.0, 2.0, 1.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.5, 0.0])


def test_each_leaf_gets_its_own_writable_gradient() -> None:
    a = tg.Tensor(np.ones(3), requires_grad=True)
    b = tg.Tensor(np.ones(3), requires_grad=True)
    c = tg.Tensor(2.0, requires_grad=True)
    (a + b + c).backward(np.arange(3.0))
    assert a.grad is not b.grad and not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data *= 10  # in place, as an optimizer might
    np.testing.assert_array_equal(b.grad.numpy(), [0.0, 1.0, 2.0])
    assert c.grad.item() == 3.0
    u = np.ones(3)
    x = tg.Tensor(np.zeros(3), requires_grad=True)
    x.backward(u)  # the leaf itself: its gradient must not be the caller's array
    x.grad.data += 1
    np.testing.assert_array_equal(u, 1.0)


# -- nested structures, value_and_grad, forward over reverse ------------------------------------


def test_grad_of_nested_dicts_lists_and_tuples_keeps_the_structure() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    params = {"layers": [{"w": rng.standard_normal((3, 4)), "b": np.zeros(4)}], "scale": (2.0,)}

    def loss(p: dict) -> tg.Tensor:
        layer = p["layers"][0]
        return ((x @ layer["w"] + layer["b"]).tanh() * p["scale"][0]).sum()

    g = tg.grad(loss)(params)
    assert set(g) == {"layers", "scale"} and isinstance(g["layers"], list)
    assert isinstance(g["scale"], tuple) and len(g["scale"]) == 1
    h = np.tanh(x @ params["layers"][0]["w"])
    np.testing.assert_allclose(g["layers"][0]["w"].numpy(), 2.0 * x.T @ (1 - h**2), rtol=1e-10)
    np.testing.assert_allclose(g["layers"][0]["b"].numpy(), 2.0 * (1 - h**2).sum(0), rtol=1e-10)
    np.testing.assert_allclose(g["scale"][0].item(), h.sum(), rtol=1e-6)  # 2.0: a float32 leaf
    # value_and_grad: the same gradient, and the value of one forward pass
    value, again = tg.value_and_grad(loss)(params)
    assert math.isclose(value.item(), 2.0 * h.sum(), rel_tol=1e-12)
    np.testing.assert_array_equal(again["layers"][0]["w"].numpy(), g["layers"][0]["w"].numpy())


def test_a_modules_parameters_as_a_dict() -> None:
    model = tg.nn.Sequential(tg.nn.Linear(3, 4), tg.nn.Tanh(), tg.nn.Linear(4, 1))
    x = tg.Tensor(np.random.default_rng(0).standard_normal((6, 3)))
    params = dict(model.named_parameters())
    g = tg.grad(lambda p: (model(x) ** 2).sum())(params)
    assert set(g) == set(params)
    (model(x) ** 2).sum().backward()  # the same gradients, from the tape
    for name, p in params.items():
        np.testing.assert_allclose(g[name].numpy(), p.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize(
    "leaf, said",
    [(2, "int 2"), ("two", "str 'two'"), (None, "NoneType"), (True, "bool"),
     (np.arange(3), "an array of dtype int64")],
)  # fmt: skip
def test_what_cannot_be_differentiated_is_refused_with_its_path(leaf: object, said: str) -> None:
    f = tg.grad(lambda p: p["w"].sum() * 2.0)
    with pytest.raises(TypeError, match=r"argument 0\['x'\]\[1\] is " + said):
        f({"w": np.ones(2), "x": [1.0, leaf]})
    with pytest.raises(TypeError, match="cannot be differentiated"):
        tg.jvp(lambda p: p, ({"x": leaf},), ({"x": leaf},))


def test_jvp_of_nested_primals_and_outputs() -> None:
    a, b = np.array([1.0, 2.0]), np.array([3.0, -1.0])
    out, tangent = tg.jvp(
        lambda d: {"prod": d["a"] * d["b"], "sums": [d["a"].sum(), d["b"].exp().sum()]},
        ({"a": a, "b": b},),
        ({"a": np.ones(2), "b": np.array([0.5, 0.0])},),
    )
    np.testing.assert_allclose(out["prod"].numpy(), a * b)
    np.testing.assert_allclose(tangent["prod"].numpy(), 1.0 * b + a * np.array([0.5, 0.0]))
    assert isinstance(tangent["sums"], list)
    np.testing.assert_allclose(tangent["sums"][0].item(), 2.0)
    np.testing.assert_allclose(tangent["sums"][1].item(), np.exp(3.0) * 0.5)
    with pytest.raises(ValueError, match="structure"):
        tg.jvp(lambda d: d["a"], ({"a": a},), ({"b": a},))


@pytest.mark.parametrize(
    "f",
    [
        lambda z: (z**3).sum(),
        lambda z: tg.log_softmax(z.reshape(2, 3), axis=1).sum() * z.sum(),
        lambda z: (tg.sin(z) * tg.exp(z)).sum(),
        lambda z: (z[np.array([0, 0, 2])] ** 2).sum(),
        lambda z: tg.logsumexp(z * z, axis=0),
    ],
    ids=["cube", "log_softmax", "sin_exp", "repeated_index", "logsumexp"],
)
def test_forward_over_reverse_gives_hessian_vector_products(f) -> None:  # type: ignore[no-untyped-def]
    """jvp(grad(f)): the tangent of the gradient along v is H v, here checked against central
    differences of the gradient (it used to come out as 0: the tangent was dropped)."""
    rng = np.random.default_rng(4)
    x, v = rng.standard_normal(6), rng.standard_normal(6)
    _, hv = tg.jvp(tg.grad(f), (x,), (v,))
    eps = 1e-5
    expected = (tg.grad(f)(x + eps * v).numpy() - tg.grad(f)(x - eps * v).numpy()) / (2 * eps)
    np.testing.assert_allclose(hv.numpy(), expected, rtol=1e-5, atol=1e-7)

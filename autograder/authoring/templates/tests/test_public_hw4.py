"""Public tests for homework 4: the tracer, the derivative code it generates, and dead-value
elimination in tg.compile. Run them with `pytest -m hw4` (`-k trace`, `-k derivative`,
`-k dead` for one part at a time).
"""

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn
from tapegrad.nn import functional as F

pytestmark = pytest.mark.hw4

rng = np.random.default_rng(2026)


def course_example(x1, x2):
    return tg.log(x1) + x1 * x2 - tg.sin(x2)


def test_trace_of_the_course_example_is_the_wengert_list():
    graph = tg.trace(course_example, 2.0, 5.0)
    lines = [f"{n.name} = {n.expression()}" for n in graph.nodes]
    assert lines[:2] == ["v-1 = x1", "v0 = x2"], "inputs first, named v-1, v0"
    assert sorted(n.op for n in graph.ops()) == ["add", "log", "mul", "sin", "sub"]
    seen = set()
    for node in graph.nodes:
        assert all(i.name in seen for i in node.inputs), f"{node.name} comes before its inputs"
        seen.add(node.name)
    assert graph.output.value.item() == pytest.approx(np.log(2) + 10 - np.sin(5), rel=1e-6)


def test_a_value_used_twice_is_one_node():
    graph = tg.trace(lambda x: (x * x + x) * x, np.ones(3))
    assert len(graph.ops()) == 3


@pytest.mark.parametrize(
    "f, shapes",
    [
        (course_example, [(3,), (3,)]),
        (lambda x, w: tg.tanh(x @ w).sum(), [(4, 3), (3, 2)]),
        (lambda x: ((x * x + x) * (x * x)).sum(), [(2, 3)]),
        (lambda z: tg.log_softmax(z, axis=1).sum(), [(3, 4)]),
    ],
)
def test_derivative_function_matches_the_tape(f, shapes):
    xs = [rng.uniform(0.5, 2.0, s) for s in shapes]
    graph = tg.trace(lambda *ts: f(*ts).sum(), *xs)
    source = graph.derivative_source()
    assert source.startswith("def ") and "return" in source
    value, grads = graph.derivative_function()(*xs)
    expected = tg.grad(lambda *ts: f(*ts).sum(), argnums=tuple(range(len(xs))))(*xs)
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(np.asarray(g.numpy()), e.numpy(), rtol=1e-10, atol=1e-12)


def test_a_reused_value_accumulates_in_the_derivative_code():
    source = tg.trace(lambda x: (x * x).sum(), np.ones(2)).derivative_source()
    assert "+=" in source, "x is used twice: its adjoint gets two contributions"


def test_dead_value_elimination_keeps_results_and_drops_work():
    def f(x, w):
        _ = tg.exp(x) * 3.0  # computed, never used
        return (tg.tanh(x @ w) ** 2.0).sum()

    x, w = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    counts, values = [], []
    for passes in (("fold",), ("fold", "dce")):
        fn = tg.compile(passes=passes)(f)
        fn(tg.Tensor(x), tg.Tensor(w, requires_grad=True))  # runs eagerly and traces
        wt = tg.Tensor(w, requires_grad=True)
        y = fn(tg.Tensor(x), wt)
        y.backward()
        assert fn.stats.compiled_calls == 1, fn.stats.fallbacks
        counts.append(fn.op_counts()["compiled"])
        values.append((y.item(), wt.grad.numpy()))
    assert counts[1] <= counts[0] - 2, f"operations per call: {counts}"
    assert values[1][0] == pytest.approx(values[0][0], rel=1e-12)
    np.testing.assert_allclose(values[1][1], values[0][1], rtol=1e-12)


def test_the_compiled_mlp_trains_as_eager():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    loss_fn = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    x = tg.Tensor(rng.standard_normal((8, 12)).astype(np.float32))
    y = tg.Tensor(rng.integers(0, 3, 8))
    for _ in range(2):
        model.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
    got = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for g, p in zip(got, model.parameters()):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=1e-5, atol=1e-7)
    assert loss_fn.stats.compiled_calls == 1, loss_fn.stats.fallbacks

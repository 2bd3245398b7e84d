"""tg.trace: one run recorded as the lectures' Wengert list, printable and drawable, over
the course example and every op spec."""

from __future__ import annotations

import numpy as np
import pytest
import tapegrad as tg

from autograder.worker.opspecs import SPECS, make_inputs


def test_the_course_example_is_the_lectures_wengert_list() -> None:
    graph = tg.trace(lambda x1, x2: tg.log(x1) + x1 * x2 - tg.sin(x2), 2.0, 5.0)
    lines = [f"{n.name} = {n.expression()}" for n in graph.nodes]
    assert lines == [
        "v-1 = x1",
        "v0 = x2",
        "v1 = log(v-1)",
        "v2 = mul(v-1, v0)",
        "v3 = add(v1, v2)",  # Python evaluates (ln x1 + x1 x2) before sin x2
        "v4 = sin(v0)",
        "v5 = sub(v3, v4)",
    ]
    assert graph.output.name == "v5" and [n.name for n in graph.inputs] == ["v-1", "v0"]
    assert np.isclose(graph.output.value.item(), np.log(2) + 10 - np.sin(5), rtol=1e-6)
    text = str(graph)
    assert "v2 = mul(v-1, v0)" in text and "float32" in text and text.endswith("output: v5")


def test_constants_settings_shapes_and_graphviz() -> None:
    graph = tg.trace(lambda x: (tg.softmax(x * 2.0, axis=1) ** 2).sum(), np.ones((2, 3)))
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["c0"].kind == "constant" and by_name["c0"].expression() == "2.0"
    assert by_name["v2"].expression() == "softmax(v1, axis=1)"
    assert by_name["v2"].shape == (2, 3) and by_name["v2"].dtype == "float64"
    dot = graph.to_dot()
    assert dot.startswith("digraph trace {") and dot.rstrip().endswith("}")
    edges = [line for line in dot.splitlines() if "->" in line]
    assert len(edges) == sum(len(n.inputs) for n in graph.nodes)
    assert '"v1" -> "v2";' in dot


@pytest.mark.parametrize("s", SPECS, ids=lambda s: s.name)
def test_every_op_spec_traces_in_a_valid_order(s) -> None:  # type: ignore[no-untyped-def]
    case = max(s.cases, key=lambda c: sum(np.prod(shape) for shape in c.shapes))
    xs = make_inputs(s, case, np.random.default_rng(0))
    graph = tg.trace(lambda *ts: s.call(tg, *ts, **case.kwargs), *xs)
    assert len(graph.inputs) == s.arity and graph.ops()
    seen: set[str] = set()
    for node in graph.nodes:
        assert all(i.name in seen for i in node.inputs), f"{node.name} before its inputs"
        seen.add(node.name)
    np.testing.assert_allclose(
        graph.output.value.numpy(), s.reference(*xs, **case.kwargs), rtol=1e-6, atol=1e-9
    )


def test_what_cannot_be_traced_is_refused() -> None:
    with pytest.raises(TypeError, match="floating point"):
        tg.trace(lambda n: n * 2.0, np.arange(3))
    with pytest.raises(TypeError, match="must return a Tensor"):
        tg.trace(lambda x: x.numpy(), np.ones(3))


# -- derivative code -----------------------------------------------------------------------------


def test_the_course_example_derivative_source_reads_like_the_lecture() -> None:
    graph = tg.trace(lambda x1, x2: tg.log(x1) + x1 * x2 - tg.sin(x2), 2.0, 5.0)
    source = graph.derivative_source()
    assert source.startswith("def f_and_grad(x1, x2):")
    for line in (
        "v2 = x1 * x2",
        "dv5 = ones_like(v5)",
        "dx2 = dv4 * cos(x2)",  # the first contribution assigns ...
        "dx2 += dv2 * x1",  # ... the next ones accumulate: x2 is used twice
        "dx1 += dv1 / x1",
        "return v5, (dx1, dx2)",
    ):
        assert f"    {line}\n" in source, line
    value, (dx1, dx2) = graph.derivative_function()(2.0, 5.0)
    assert np.isclose(dx1.item(), 5.5) and np.isclose(dx2.item(), 2.0 - np.cos(5.0), rtol=1e-6)
    assert np.isclose(value.item(), graph.output.value.item())


@pytest.mark.parametrize("s", SPECS, ids=lambda s: s.name)
def test_generated_derivative_code_matches_the_tape_on_every_op_spec(s) -> None:  # type: ignore[no-untyped-def]
    for case in s.cases:
        xs = make_inputs(s, case, np.random.default_rng(1))
        graph = tg.trace(lambda *ts, kw=case.kwargs: s.call(tg, *ts, **kw), *xs)
        value, grads = graph.derivative_function()(*xs)
        ts = [tg.Tensor(x, requires_grad=True) for x in xs]
        y = s.call(tg, *ts, **case.kwargs)
        y.backward(tg.Tensor(np.ones(y.shape)))
        np.testing.assert_allclose(value.numpy(), y.numpy(), rtol=1e-12, err_msg=case.label)
        for t, g in zip(ts, grads):
            np.testing.assert_allclose(g.numpy(), t.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_an_op_without_a_derivative_rule_is_named_before_any_code_runs() -> None:
    class Floor(tg.Function):
        def forward(self, a):  # type: ignore[no-untyped-def]
            return np.floor(a)

    graph = tg.trace(lambda x: Floor()(x * 2.0).sum(), np.ones(3))
    with pytest.raises(TypeError, match=r"v2 = floor\(v1\): the op Floor has no derivative rule"):
        graph.derivative_source()

"""Random shapes: hypothesis draws broadcast-compatible shape pairs, and every binary op's
gradient must match finite differences and come back in each input's own shape."""

from __future__ import annotations

import numpy as np
import pytest
import tapegrad as tg
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import mutually_broadcastable_shapes

pytestmark = pytest.mark.hw1

BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),  # a denominator kept away from 0
    "where": lambda a, b: tg.where(a > 0, a * b, b - a),
}


@settings(max_examples=40, deadline=None)
@given(
    shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=4),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**16),
)
def test_binary_op_gradients_on_random_broadcast_shapes(shapes, op, seed) -> None:
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.3, 2.0, shapes.input_shapes[0]) * rng.choice(
        [-1.0, 1.0], shapes.input_shapes[0]
    )
    b = rng.standard_normal(shapes.input_shapes[1])
    report = tg.check_grad(BINARY[op], a, b)
    assert report.ok, str(report)
    ta, tb = tg.Tensor(a, requires_grad=True), tg.Tensor(b, requires_grad=True)
    y = BINARY[op](ta, tb)
    assert y.shape == shapes.result_shape
    y.backward(rng.standard_normal(y.shape))
    assert ta.grad.shape == a.shape and tb.grad.shape == b.shape


@settings(max_examples=30, deadline=None)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
    data=st.data(),
)
def test_reductions_on_random_shapes_and_axes(shape, data) -> None:
    axis = data.draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1)))
    keepdims = data.draw(st.booleans())
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    for reduce in (tg.sum, tg.mean, tg.logsumexp):
        report = tg.check_grad(lambda t, f=reduce: f(t, axis=axis, keepdims=keepdims), x)
        assert report.ok, f"{reduce.__name__}(axis={axis}, keepdims={keepdims})\n{report}"

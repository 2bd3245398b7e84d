"""Public tests for homework 3: convolution by im2col, and max pooling.

The convolution is compared with its definition computed by loops, and its gradients with
finite differences. Run them with `pytest -m hw3` (GPU runs of the same code: `pytest -m gpu`
where CuPy and a GPU are available).
"""

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn

pytestmark = pytest.mark.hw3

rng = np.random.default_rng(2026)


def convolve_by_definition(x, weight, bias, stride, padding):
    """out[n, o, i, j] = bias[o] + sum over c, di, dj of weight[o, c, di, dj] * x_pad[...]."""
    n, _, h, w = x.shape
    o, _, k, _ = weight.shape
    x_pad = np.pad(x, [(0, 0), (0, 0), (padding, padding), (padding, padding)])
    out_h, out_w = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = np.zeros((n, o, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x_pad[:, :, i * stride : i * stride + k, j * stride : j * stride + k]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", window, weight) + bias
    return out


@pytest.mark.parametrize("stride, padding", [(1, 0), (1, 1), (2, 1)])
def test_conv2d_matches_the_definition(stride, padding):
    conv = nn.Conv2d(3, 4, kernel_size=3, stride=stride, padding=padding)
    assert conv.weight.shape == (4, 3, 3, 3) and conv.bias.shape == (4,)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    expected = convolve_by_definition(x, conv.weight.numpy(), conv.bias.numpy(), stride, padding)
    got = conv(tg.Tensor(x))
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_conv2d_gradients():
    def f(x, w, b):
        return nn.functional.conv2d(x, w, b, stride=2, padding=1)

    report = tg.check_grad(
        f,
        rng.standard_normal((2, 2, 5, 5)),
        rng.standard_normal((3, 2, 3, 3)),
        rng.standard_normal(3),
    )
    assert report.ok, str(report)


def test_maxpool2d():
    x = rng.permutation(np.arange(2 * 3 * 4 * 6, dtype=np.float64)).reshape(2, 3, 4, 6)
    pooled = nn.MaxPool2d(2)(tg.Tensor(x))
    expected = x.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5))
    np.testing.assert_array_equal(pooled.numpy(), expected)
    report = tg.check_grad(lambda t: nn.MaxPool2d(2)(t), x / 10.0)
    assert report.ok, str(report)


def test_a_cnn_runs_end_to_end():
    tg.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 14 * 14, 10),
    )
    images = tg.Tensor(rng.random((8, 1, 28, 28)).astype(np.float32))
    loss = nn.functional.cross_entropy(cnn(images), np.arange(8) % 10)
    loss.backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in cnn.parameters())

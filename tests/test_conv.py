"""Tests of convolution by im2col and of max pooling (hw3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn
from tapegrad.backend import get_backend
from tapegrad.nn import functional as F
from tapegrad.nn.conv import col2im, im2col

pytestmark = pytest.mark.hw3

# (N, C, H, W), (O, kh, kw), stride, padding: non-square kernels and inputs, strides, padding
GEOMETRIES = [
    ((2, 3, 5, 6), (4, 3, 2), 1, 0),
    ((1, 2, 7, 5), (3, 3, 3), 2, 1),
    ((2, 1, 6, 6), (2, 1, 1), 1, 0),
    ((2, 3, 8, 7), (2, 3, 2), (2, 1), (1, 0)),
    ((1, 2, 4, 4), (3, 2, 2), 2, 0),
    ((1, 1, 3, 3), (1, 3, 3), 1, 2),
]


def pair(v):
    return (v, v) if isinstance(v, int) else v


def conv_reference(x, w, b, stride, padding):
    """Direct loops over every output pixel: the definition of the layer."""
    (sh, sw), (ph, pw) = pair(stride), pair(padding)
    n, _, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    out = np.zeros((n, o, oh, ow))
    for i in range(n):
        for k in range(o):
            for r in range(oh):
                for c in range(ow):
                    patch = xp[i, :, r * sh : r * sh + kh, c * sw : c * sw + kw]
                    out[i, k, r, c] = np.sum(patch * w[k]) + (b[k] if b is not None else 0)
    return out


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def case(geometry, seed=0):
    (n, c, h, w), (o, kh, kw), stride, padding = geometry
    return randn(n, c, h, w, seed=seed), randn(o, c, kh, kw, seed=seed + 1), randn(o, seed=seed + 2)


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_conv2d_matches_the_direct_loop(geometry):
    x, w, b = case(geometry)
    stride, padding = geometry[2], geometry[3]
    got = F.conv2d(tg.Tensor(x), tg.Tensor(w), tg.Tensor(b), stride, padding)
    expected = conv_reference(x, w, b, stride, padding)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
    no_bias = F.conv2d(tg.Tensor(x), tg.Tensor(w), None, stride, padding)
    np.testing.assert_allclose(no_bias.numpy(), conv_reference(x, w, None, stride, padding))


def test_im2col_rows_are_patches_and_col2im_is_its_adjoint():
    x = randn(2, 3, 5, 4)
    cols = im2col(tg.Tensor(x), (3, 2), stride=(2, 1), padding=1)
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    oh, ow = (5 + 2 - 3) // 2 + 1, (4 + 2 - 2) // 1 + 1
    assert cols.shape == (2 * oh * ow, 3 * 3 * 2)
    row = (1 * oh + 2) * ow + 3  # image 1, output pixel (2, 3)
    np.testing.assert_array_equal(cols.numpy()[row], xp[1, :, 4:7, 3:5].reshape(-1))
    c = randn(*cols.shape, seed=1)
    back = col2im(tg.Tensor(c), x.shape, (3, 2), stride=(2, 1), padding=1)
    # <im2col(x), c> == <x, col2im(c)>: the two linear maps are transposes of each other
    assert np.sum(cols.numpy() * c) == pytest.approx(np.sum(x * back.numpy()), rel=1e-12)


@pytest.mark.parametrize("geometry", [GEOMETRIES[1], GEOMETRIES[3], GEOMETRIES[4]])
def test_conv2d_gradients(geometry):
    x, w, b = case(geometry, seed=3)
    stride, padding = geometry[2], geometry[3]
    report = tg.check_grad(lambda x, w, b: F.conv2d(x, w, b, stride, padding), x, w, b)
    assert report, report


def test_im2col_second_order():
    """The gradient of a conv-based loss, itself differentiated: Col2Im's backward is Im2Col."""
    x, w = randn(1, 2, 4, 4), randn(3, 2, 2, 2, seed=1)

    def grad_x(x, w):
        return tg.grad(lambda x: (F.conv2d(x, w, stride=1, padding=1) ** 2).sum())(x)

    report = tg.check_grad(grad_x, x, w)
    assert report, report
    hessian_free = tg.grad(lambda x: (grad_x(x, tg.Tensor(w)) ** 2).sum())(tg.Tensor(x))
    assert hessian_free.shape == x.shape and np.all(np.isfinite(hessian_free.numpy()))


def test_conv2d_forward_mode():
    x, w, v = randn(2, 2, 5, 5), randn(3, 2, 3, 3, seed=1), randn(2, 2, 5, 5, seed=2)
    _, tangent = tg.jvp(lambda x: F.conv2d(x, tg.Tensor(w), padding=1), (tg.Tensor(x),), (v,))
    np.testing.assert_allclose(tangent.numpy(), conv_reference(v, w, None, 1, 1), atol=1e-12)


def test_conv2d_layer():
    tg.manual_seed(0)
    layer = nn.Conv2d(3, 8, (3, 2), stride=2, padding=1)
    assert layer.weight.shape == (8, 3, 3, 2) and layer.bias.shape == (8,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(3 * 3 * 2)
    assert np.abs(layer.weight.numpy()).max() <= bound
    assert np.abs(layer.bias.numpy()).max() <= bound
    x = randn(2, 3, 6, 5).astype(np.float32)
    y = layer(tg.Tensor(x))
    expected = conv_reference(x, layer.weight.numpy(), layer.bias.numpy(), 2, 1)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert len(list(nn.Conv2d(1, 1, 3, bias=False).parameters())) == 1
    assert "kernel_size=(3, 2)" in repr(layer)


def test_conv2d_errors():
    with pytest.raises(ValueError, match="3 channels but the weight expects 2"):
        F.conv2d(tg.Tensor(randn(1, 3, 5, 5)), tg.Tensor(randn(4, 2, 3, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        F.conv2d(tg.Tensor(randn(1, 1, 2, 2)), tg.Tensor(randn(1, 1, 3, 3)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        F.conv2d(tg.Tensor(randn(3, 5, 5)), tg.Tensor(randn(1, 3, 3, 3)))
    with pytest.raises(ValueError, match="stride must be at least 1"):
        nn.Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match="bias must have shape"):
        F.conv2d(tg.Tensor(randn(1, 1, 3, 3)), tg.Tensor(randn(2, 1, 2, 2)), tg.Tensor(randn(3)))


# ---------------------------------------------------------------------------- max pooling


def distinct(*shape, seed=0):
    """Values without ties (a permutation), so the arg-max of every window is unique."""
    return np.random.default_rng(seed).permutation(math.prod(shape)).reshape(shape) / 10.0


def pool_reference(x, kh, kw):
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * kh : (i + 1) * kh, j * kw : (j + 1) * kw].max(axis=(2, 3))
    return out


@pytest.mark.parametrize(
    "shape,kernel", [((2, 3, 4, 6), 2), ((1, 2, 7, 7), 2), ((2, 1, 6, 7), (3, 2))]
)
def test_max_pool2d_forward_and_gradient(shape, kernel):
    x = distinct(*shape)
    kh, kw = pair(kernel)
    y = nn.MaxPool2d(kernel)(tg.Tensor(x))
    np.testing.assert_array_equal(y.numpy(), pool_reference(x, kh, kw))
    assert tg.check_grad(lambda x: F.max_pool2d(x, kernel), x)


def test_max_pool2d_gradient_goes_to_the_argmax_and_cropped_cells_get_none():
    x = tg.Tensor(distinct(1, 1, 5, 5), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    grad = x.grad.numpy()[0, 0]
    assert grad[4].sum() == 0 and grad[:, 4].sum() == 0  # floor mode: last row/col dropped
    assert grad.sum() == 4
    for i in range(2):
        for j in range(2):
            window = x.numpy()[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            assert grad[2 * i : 2 * i + 2, 2 * j : 2 * j + 2][window == window.max()] == 1
    with pytest.raises(ValueError, match="larger than the input"):
        F.max_pool2d(tg.Tensor(randn(1, 1, 2, 2)), 3)


# ---------------------------------------------------------------------------- a small CNN


def small_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 10),
    )  # fmt: skip


def test_small_cnn_overfits_a_few_images():
    tg.manual_seed(0)
    data = np.random.default_rng(0)
    images = data.random((20, 1, 12, 12)).astype(np.float32)  # MNIST-like: one channel
    labels = np.arange(20) % 10
    model = small_cnn()
    opt = tg.optim.Adam(model.parameters(), lr=0.02)
    x = tg.Tensor(images)
    for _ in range(60):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    assert np.all(model(x).numpy().argmax(axis=1) == labels)


def test_cnn_runs_on_another_device(cuda_standin):
    model = small_cnn().to("cuda")
    out = model(tg.Tensor(randn(2, 1, 12, 12).astype(np.float32), device="cuda"))
    F.cross_entropy(out, np.array([1, 2])).backward()
    assert out.device == "cuda" and all(p.grad.device == "cuda" for p in model.parameters())


# ---------------------------------------------------------------------------- PyTorch and GPU


def test_conv_and_pool_match_pytorch():
    torch = pytest.importorskip("torch")
    for geometry in GEOMETRIES:
        x, w, b = case(geometry)
        stride, padding = geometry[2], geometry[3]
        xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
        yt = torch.nn.functional.conv2d(xt, wt, torch.tensor(b), stride, padding)
        u = randn(*yt.shape, seed=9)
        yt.backward(torch.tensor(u))
        xg, wg = tg.Tensor(x, requires_grad=True), tg.Tensor(w, requires_grad=True)
        y = F.conv2d(xg, wg, tg.Tensor(b), stride, padding)
        y.backward(u)
        np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=1e-10)
        np.testing.assert_allclose(xg.grad.numpy(), xt.grad.numpy(), atol=1e-10)
        np.testing.assert_allclose(wg.grad.numpy(), wt.grad.numpy(), atol=1e-10)
    x = distinct(2, 3, 7, 9)
    expected = torch.nn.functional.max_pool2d(torch.tensor(x), (3, 2)).numpy()
    np.testing.assert_array_equal(F.max_pool2d(tg.Tensor(x), (3, 2)).numpy(), expected)


@pytest.mark.gpu
def test_conv_on_gpu_matches_cpu():
    try:
        get_backend("cuda")
    except RuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    for geometry in GEOMETRIES:
        x, w, b = case(geometry)
        stride, padding = geometry[2], geometry[3]
        cpu = [tg.Tensor(a, requires_grad=True) for a in (x, w, b)]
        gpu = [tg.Tensor(a, device="cuda", requires_grad=True) for a in (x, w, b)]
        for inputs in (cpu, gpu):
            (F.max_pool2d(F.conv2d(*inputs, stride, padding), 1) ** 2).sum().backward()
        assert type(gpu[0].grad.data).__module__.startswith("cupy")
        for c, g in zip(cpu, gpu, strict=True):
            np.testing.assert_allclose(g.grad.numpy(), c.grad.numpy(), rtol=1e-10, atol=1e-10)

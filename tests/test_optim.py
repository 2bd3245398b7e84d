"""Tests of tapegrad.optim: SGD and Adam against hand-written NumPy reference math,
clip_grad_norm_, EarlyStopping, and a small end-to-end training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn, optim
from tapegrad.backend import get_backend
from tapegrad.nn import functional as F

pytestmark = pytest.mark.hw2

# A quadratic loss with a known gradient: L(w) = sum(c * w**2 + d * w), dL/dw = 2 c w + d.
C = np.array([[0.5, 2.0, 1.0], [3.0, 0.1, 1.5]])
D = np.array([[1.0, -1.0, 0.5], [0.0, 2.0, -0.3]])
W0 = np.array([[0.3, -0.7, 1.2], [-2.0, 0.4, 0.9]])


def loss_fn(w: tg.Tensor) -> tg.Tensor:
    return (w * w * C + w * D).sum()


def grad_np(w: np.ndarray) -> np.ndarray:
    return 2 * C * w + D


def run(optimizer_cls, steps: int = 6, **kwargs) -> tuple[nn.Parameter, list[np.ndarray]]:
    w = nn.Parameter(W0.copy())
    opt = optimizer_cls([w], **kwargs)
    trajectory = []
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(w).backward()
        opt.step()
        trajectory.append(w.numpy().copy())
    return w, trajectory


def sgd_reference(lr, momentum=0.0, weight_decay=0.0, steps=6):
    w, buf, out = W0.copy(), None, []
    for _ in range(steps):
        g = grad_np(w) + weight_decay * w
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + g
            g = buf
        w = w - lr * g
        out.append(w)
    return out


def adam_reference(lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, steps=6):
    w, m, v, out = W0.copy(), np.zeros_like(W0), np.zeros_like(W0), []
    for t in range(1, steps + 1):
        g = grad_np(w) + weight_decay * w
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        w = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        out.append(w)
    return out


# ---------------------------------------------------------------------------- SGD


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.1, momentum=0.5, weight_decay=0.1),
     dict(lr=0.1, weight_decay=0.01)],
)  # fmt: skip
def test_sgd_trajectory_matches_reference(kwargs):
    _, trajectory = run(optim.SGD, **kwargs)
    for got, expected in zip(trajectory, sgd_reference(**kwargs), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs",
    [dict(lr=0.1), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
     dict(lr=0.05, weight_decay=0.1)],
)  # fmt: skip
def test_adam_trajectory_matches_reference(kwargs):
    _, trajectory = run(optim.Adam, **kwargs)
    for got, expected in zip(trajectory, adam_reference(**kwargs), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls", [optim.SGD, optim.Adam])
def test_step_updates_data_in_place_and_leaves_the_gradient_alone(cls):
    w = nn.Parameter(W0.copy())
    array = w.data
    opt = cls([w], lr=0.1, **({"momentum": 0.9} if cls is optim.SGD else {}))
    loss_fn(w).backward()
    grad = w.grad.numpy().copy()
    opt.step()
    opt.step()  # the second step changes the momentum buffer: it must not alias the grad
    assert w.data is array and w.dtype == np.float64
    np.testing.assert_array_equal(w.grad.numpy(), grad)


def test_float32_parameters_stay_float32():
    w = nn.Parameter(W0.astype(np.float32))
    for opt in (optim.SGD([w], lr=0.1, momentum=0.9, weight_decay=0.1), optim.Adam([w])):
        loss_fn(w).backward()
        opt.step()
        assert w.dtype == np.float32


def test_parameters_without_gradient_are_skipped():
    a, b = nn.Parameter(W0.copy()), nn.Parameter(W0.copy())
    opt = optim.Adam([a, b], lr=0.1)
    loss_fn(a).backward()
    opt.step()
    np.testing.assert_array_equal(b.numpy(), W0)
    assert opt.steps == [1, 0]
    opt.zero_grad()
    assert a.grad is None and b.grad is None
    loss_fn(b).backward()
    opt.step()  # b's first step: bias correction with t = 1, as if a were not there
    _, expected = run(optim.Adam, steps=1, lr=0.1)
    np.testing.assert_allclose(b.numpy(), expected[0])


def test_params_may_be_a_generator_and_duplicates_count_once():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert len(opt.params) == 2
    w = nn.Parameter(W0.copy())
    opt = optim.SGD([w, w], lr=0.1)
    loss_fn(w).backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), sgd_reference(lr=0.1, steps=1)[0])


def test_optimizer_argument_errors():
    w = nn.Parameter(W0.copy())
    with pytest.raises(ValueError, match="learning rate"):
        optim.SGD([w], lr=-0.1)
    with pytest.raises(TypeError, match="learning rate"):
        optim.SGD([w], lr="fast")
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([w], lr=0.1, momentum=-0.5)
    with pytest.raises(ValueError, match="weight_decay"):
        optim.Adam([w], weight_decay=-1)
    with pytest.raises(ValueError, match="beta2"):
        optim.Adam([w], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="wrap the single tensor"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match="parameter 1 is a ndarray"):
        optim.SGD([w, np.zeros(3)], lr=0.1)
    with pytest.raises(ValueError, match="does not require grad"):
        optim.SGD([tg.Tensor([1.0])], lr=0.1)
    with pytest.raises(TypeError, match="model.parameters"):
        optim.SGD(nn.Linear(2, 2), lr=0.1)


def test_step_on_a_device_stays_on_it(cuda_standin):
    model = nn.Linear(3, 2).to("cuda")
    params = list(model.parameters())
    for opt in (optim.SGD(params, lr=0.1, momentum=0.9), optim.Adam(params)):
        model(tg.Tensor(np.ones((4, 3), np.float32), device="cuda")).sum().backward()
        opt.step()
        assert all(p.device == "cuda" for p in model.parameters())


# ---------------------------------------------------------------------------- clipping


def test_clip_grad_norm_scales_above_the_threshold():
    a, b = nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros(2))
    c = nn.Parameter(np.zeros(1))  # no gradient: skipped
    a.grad, b.grad = tg.Tensor(np.array([3.0, 0.0, 4.0])), tg.Tensor(np.array([0.0, 12.0]))
    total = optim.clip_grad_norm_([a, b, c], max_norm=6.5)
    assert isinstance(total, float) and total == pytest.approx(13.0)
    np.testing.assert_allclose(a.grad.numpy(), np.array([3.0, 0.0, 4.0]) * 6.5 / (13 + 1e-6))
    norm = math.sqrt(np.sum(a.grad.numpy() ** 2) + np.sum(b.grad.numpy() ** 2))
    assert norm == pytest.approx(6.5, rel=1e-6)
    assert c.grad is None


def test_clip_grad_norm_below_the_threshold_changes_nothing():
    a = nn.Parameter(np.zeros(2))
    a.grad = tg.Tensor(np.array([0.3, 0.4]))
    grad = a.grad
    assert optim.clip_grad_norm_(iter([a]), 1.0) == pytest.approx(0.5)
    assert a.grad is grad
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm_([a], -1.0)


def test_clip_grad_norm_with_gradients_shared_by_backward():
    # d(a + b)/da and d(a + b)/db are the same (read-only, broadcast) array after backward
    a, b = nn.Parameter(np.zeros(4)), nn.Parameter(np.zeros(4))
    (a + b).sum().backward()
    total = optim.clip_grad_norm_([a, b], 1.0)
    assert total == pytest.approx(math.sqrt(8))
    np.testing.assert_allclose(a.grad.numpy(), 1 / math.sqrt(8), rtol=1e-6)
    np.testing.assert_allclose(b.grad.numpy(), 1 / math.sqrt(8), rtol=1e-6)


# ---------------------------------------------------------------------------- early stopping


def test_early_stopping_min_mode():
    stopper = optim.EarlyStopping(patience=2)
    assert stopper.best == math.inf
    decisions = [stopper.step(v) for v in [1.0, 0.8, 0.85, 0.7, 0.75, 0.9]]
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best == 0.7


def test_early_stopping_max_mode_min_delta_and_nan():
    stopper = optim.EarlyStopping(patience=1, min_delta=0.01, mode="max")
    assert not stopper.step(tg.Tensor(0.5))
    assert not stopper.step(0.6)
    assert stopper.step(0.605)  # not better by more than min_delta
    assert stopper.best == 0.6
    nan_stopper = optim.EarlyStopping(patience=1)
    assert nan_stopper.step(float("nan"))
    with pytest.raises(ValueError, match="mode"):
        optim.EarlyStopping(3, mode="lowest")
    with pytest.raises(ValueError, match="patience"):
        optim.EarlyStopping(-1)


# ---------------------------------------------------------------------------- end to end


def test_mlp_learns_a_nonlinear_classification_with_every_trick():
    """Two interleaved spirals-like classes: Linear-BatchNorm-ReLU-Dropout-Linear trained with
    SGD + momentum, weight decay and gradient clipping, stopped early on the training loss."""
    tg.manual_seed(0)
    data = np.random.default_rng(0)
    x = data.uniform(-1, 1, size=(256, 2)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.int64)  # XOR of the signs: not linearly separable
    model = nn.Sequential(
        nn.Linear(2, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2)
    )
    opt = optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4)
    stopper = optim.EarlyStopping(patience=20, min_delta=1e-4)
    inputs = tg.Tensor(x)
    for _ in range(300):
        opt.zero_grad()
        loss = F.cross_entropy(model(inputs), y)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if stopper.step(loss):
            break
    assert loss.item() < 0.2
    model.eval()
    accuracy = np.mean(model(inputs).numpy().argmax(1) == y)
    assert accuracy > 0.95


# ---------------------------------------------------------------------------- against PyTorch


def test_optimizers_match_pytorch():
    torch = pytest.importorskip("torch")
    for cls, tcls, kwargs in [
        (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.1)),
        (optim.Adam, torch.optim.Adam, dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.1)),
    ]:
        _, trajectory = run(cls, **kwargs)
        tw = torch.tensor(W0.copy(), requires_grad=True)
        topt = tcls([tw], **kwargs)
        c, d = torch.tensor(C), torch.tensor(D)
        for got in trajectory:
            topt.zero_grad()
            (tw * tw * c + tw * d).sum().backward()
            topt.step()
            np.testing.assert_allclose(got, tw.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.gpu
def test_optimizers_on_gpu():
    try:
        get_backend("cuda")
    except RuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    for cls, kwargs in [(optim.SGD, dict(lr=0.05, momentum=0.9)), (optim.Adam, dict(lr=0.05))]:
        _, cpu = run(cls, **kwargs)
        w = nn.Parameter(tg.Tensor(W0.copy(), device="cuda"))
        opt = cls([w], **kwargs)
        for expected in cpu:
            opt.zero_grad()
            loss_fn(w).backward()
            opt.step()
            assert type(w.data).__module__.startswith("cupy")
            np.testing.assert_allclose(w.numpy(), expected, rtol=1e-10, atol=1e-12)
        assert optim.clip_grad_norm_([w], 1e-3) > 0

"""Public tests for homework 2: modules, losses, initialization, optimizers.

Each test states the behaviour in a small case computed by hand with NumPy. The autograder
probes the same behaviours on hidden, random cases and trains an MLP on MNIST with your
framework. Run them with `pytest -m hw2`.
"""

import math

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn

pytestmark = pytest.mark.hw2

rng = np.random.default_rng(2026)


def test_linear_is_x_times_w_transposed_plus_b():
    layer = nn.Linear(4, 3)
    assert layer.weight.shape == (3, 4) and layer.bias.shape == (3,)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(layer(tg.Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert len(list(layer.parameters())) == 2
    assert tg.check_grad(
        nn.functional.linear, x, rng.standard_normal((3, 4)), rng.standard_normal(3)
    )


def test_state_dict_round_trip():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    copy = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    copy.load_state_dict(model.state_dict())
    x = tg.Tensor(rng.standard_normal((3, 4)))
    np.testing.assert_array_equal(copy(x).numpy(), model(x).numpy())
    assert sum(p.size for p in model.parameters()) == 4 * 8 + 8 + 8 * 2 + 2


def test_cross_entropy_is_the_mean_negative_log_likelihood():
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 3, 1, 1, 2, 0])
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    expected = -log_probabilities[np.arange(6), labels].mean()
    got = nn.functional.cross_entropy(tg.Tensor(logits), labels)
    assert math.isclose(got.item(), expected, rel_tol=1e-7)
    assert tg.check_grad(lambda z: nn.functional.cross_entropy(z, labels), logits)


def test_cross_entropy_is_stable():
    logits = tg.Tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], requires_grad=True)
    loss = nn.functional.cross_entropy(logits, np.array([1, 1]))
    assert math.isclose(loss.item(), 1000.0, rel_tol=1e-6)  # (2000 + 0) / 2
    loss.backward()
    assert np.all(np.isfinite(logits.grad.numpy()))


def test_mse_loss():
    a, b = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert math.isclose(
        nn.functional.mse_loss(tg.Tensor(a), tg.Tensor(b)).item(),
        np.mean((a - b) ** 2),
        rel_tol=1e-7,
    )


def _one_parameter(value, grad):
    p = nn.Parameter(np.array(value, dtype=np.float64))
    p.grad = tg.Tensor(np.array(grad, dtype=np.float64))
    return p


def test_sgd_with_momentum_and_weight_decay():
    p = _one_parameter([1.0, -2.0], [0.5, 0.5])
    opt = tg.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    opt.step()  # g = 0.5 + 0.01 p; velocity = g
    first = np.array([1.0, -2.0]) - 0.1 * (0.5 + 0.01 * np.array([1.0, -2.0]))
    np.testing.assert_allclose(p.numpy(), first)
    opt.step()  # velocity = 0.9 velocity + g(new p)
    velocity = 0.9 * (0.5 + 0.01 * np.array([1.0, -2.0])) + (0.5 + 0.01 * first)
    np.testing.assert_allclose(p.numpy(), first - 0.1 * velocity)


def test_adam_first_step_moves_by_lr_in_the_gradient_sign():
    p = _one_parameter([1.0, -2.0, 3.0], [0.3, -40.0, 1e-3])
    tg.optim.Adam([p], lr=0.01).step()  # bias correction makes m_hat / sqrt(v_hat) = sign(g)
    np.testing.assert_allclose(p.numpy(), [0.99, -1.99, 2.99], rtol=1e-5)


def test_zero_grad_clears_gradients():
    layer = nn.Linear(2, 2)
    layer(tg.Tensor(np.ones((1, 2)))).sum().backward()
    opt = tg.optim.SGD(layer.parameters(), lr=0.1)
    opt.zero_grad()
    assert all(p.grad is None or not np.any(p.grad.numpy()) for p in layer.parameters())


def test_clip_grad_norm_uses_the_norm_over_all_parameters():
    a, b = _one_parameter([0.0], [3.0]), _one_parameter([0.0, 0.0], [0.0, 4.0])
    total = tg.optim.clip_grad_norm_([a, b], max_norm=1.0)
    assert math.isclose(total, 5.0, rel_tol=1e-6)
    np.testing.assert_allclose(a.grad.numpy(), [0.6], rtol=1e-5)
    np.testing.assert_allclose(b.grad.numpy(), [0.0, 0.8], rtol=1e-5)


def test_dropout_scales_in_training_and_is_the_identity_in_eval():
    drop = nn.Dropout(0.25)
    x = tg.Tensor(np.ones((200, 50)))
    tg.manual_seed(0)
    y = drop(x).numpy()
    assert set(np.unique(y)) <= {0.0, 1.0 / 0.75}
    assert abs((y == 0).mean() - 0.25) < 0.02
    drop.eval()
    np.testing.assert_array_equal(drop(x).numpy(), x.numpy())


def test_batchnorm_normalizes_the_batch_then_uses_running_statistics():
    bn = nn.BatchNorm1d(3)
    x = rng.standard_normal((64, 3)) * [1.0, 5.0, 0.1] + [0.0, 2.0, -3.0]
    y = bn(tg.Tensor(x)).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-3)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * x.mean(axis=0), rtol=1e-4, atol=1e-6)
    bn.eval()
    z = bn(tg.Tensor(x)).numpy()
    expected = (x - bn.running_mean.numpy()) / np.sqrt(bn.running_var.numpy() + bn.eps)
    np.testing.assert_allclose(z, expected, rtol=1e-4, atol=1e-5)


def test_layernorm_normalizes_each_sample():
    ln = nn.LayerNorm(6)
    y = ln(tg.Tensor(rng.standard_normal((4, 6)) * 3 + 1)).numpy()
    np.testing.assert_allclose(y.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=1), 1.0, rtol=1e-3)


def test_initializers_respect_their_bounds():
    w = tg.Tensor(np.zeros((200, 300)))
    nn.init.xavier_uniform_(w)
    bound = math.sqrt(6 / (200 + 300))
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.9 * bound
    nn.init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3 / 300)
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.9 * bound


def test_a_small_network_learns():
    tg.manual_seed(0)
    x = rng.standard_normal((128, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(np.int64)  # XOR of the signs: not linearly separable
    model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))
    opt = tg.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(tg.Tensor(x)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    accuracy = (model(tg.Tensor(x)).numpy().argmax(axis=1) == labels).mean()
    assert accuracy > 0.9, f"training accuracy {accuracy:.2f} on a small XOR problem"

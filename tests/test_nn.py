"""Tests of tapegrad.nn: Module and Parameter, the layers, the losses, init and random."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn
from tapegrad.backend import get_backend, install_cuda_backend
from tapegrad.nn import functional as F
from tapegrad.nn import init

pytestmark = pytest.mark.hw2


def real_cuda() -> str:
    try:
        get_backend("cuda")
    except RuntimeError as exc:
        pytest.skip(f"no CUDA device: {exc}")
    return "cuda"


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def f64(*shape: int, seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape)


def softmax_np(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- Parameter


def test_parameter_is_a_tensor_that_requires_grad():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, tg.Tensor) and p.requires_grad and p.is_leaf
    assert p.dtype == np.float32
    assert nn.Parameter(np.zeros(3)).dtype == np.float64  # float64 arrays stay float64
    q = nn.Parameter(tg.Tensor([[1.0]]))
    assert isinstance(q, nn.Parameter) and q.shape == (1, 1)
    assert type(p * 2) is tg.Tensor  # results of ops are plain tensors
    assert type(p.detach()) is tg.Tensor
    assert "Parameter containing" in repr(p)


def test_parameter_rejects_integer_data():
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(np.arange(3))


def test_parameter_data_can_be_replaced():
    p = nn.Parameter(np.zeros(3, np.float32))
    p.data = np.ones(3, np.float32)
    (p * p).sum().backward()
    np.testing.assert_allclose(p.grad.numpy(), 2.0)


# ---------------------------------------------------------------------------- discovery


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(np.ones(4, np.float32))

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = nn.Parameter(np.zeros(2, np.float32))
        self.blocks = [Block(), Block()]
        self.heads = {"a": nn.Linear(4, 1), "b": nn.Linear(4, 2, bias=False)}
        self.pair = (nn.Parameter(np.zeros(1, np.float32)), "not a parameter", 3)
        self.plain = tg.Tensor([1.0], requires_grad=True)  # a plain tensor is not a parameter
        self.last = nn.Parameter(np.zeros(1, np.float32))


def test_named_parameters_in_registration_order_with_containers():
    names = [name for name, _ in Net().named_parameters()]
    assert names == [
        "first",
        "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.scale",
        "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.scale",
        "heads.a.weight", "heads.a.bias", "heads.b.weight",
        "pair.0", "last",
    ]  # fmt: skip
    net = Net()
    assert [id(p) for p in net.parameters()] == [id(p) for _, p in net.named_parameters()]


def test_shared_parameters_and_modules_are_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Linear(3, 3)
            self.dec = nn.Linear(3, 3)
            self.dec.weight = self.enc.weight  # tied weights
            self.again = self.enc  # the same module twice
            self.stack = nn.Sequential(self.enc, nn.ReLU())

    model = Tied()
    names = [n for n, _ in model.named_parameters()]
    assert names == ["enc.weight", "enc.bias", "dec.bias"]
    assert len(list(model.parameters())) == 3
    assert len(list(model.modules())) == 5  # Tied, enc, dec, stack, ReLU
    assert len(model.state_dict()) == 3


def test_a_module_that_refers_to_its_parent_does_not_loop():
    parent = Block()
    child = Block()
    parent.child = child
    child.parent = parent
    assert len(list(parent.parameters())) == 6


def test_modules_children_and_repr():
    net = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 1)))
    assert [n for n, _ in net.named_children()] == ["0", "1"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "1", "1.0", "1.1"]
    assert [type(m).__name__ for m in net.children()] == ["Linear", "Sequential"]
    text = repr(net)
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in text
    assert "    (0): ReLU()" in text


def test_train_and_eval_propagate_and_return_self():
    net = Net()
    assert net.training and all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.blocks[0].eval()
    assert net.training and not net.blocks[0].fc.training


def test_module_without_super_init_still_works():
    class Lazy(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    model = Lazy()
    assert len(list(model.parameters())) == 2 and model.training
    assert model.eval() is model and not model.fc.training


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(1)


def test_zero_grad_clears_every_parameter():
    net = Block()
    net(tg.Tensor(f64(2, 3))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------------------- state dict


def small_model() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))


def test_state_dict_holds_host_copies_of_parameters_and_buffers():
    model = small_model()
    state = model.state_dict()
    assert list(state) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "3.weight", "3.bias",
    ]  # fmt: skip
    assert all(type(v) is np.ndarray for v in state.values())
    state["0.weight"][...] = 123.0
    assert not np.any(model[0].weight.numpy() == 123.0)
    names = [n for n, _ in model.named_parameters()]
    assert "1.running_mean" not in names  # buffers are not parameters
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]


def test_state_dict_round_trip_through_npz(tmp_path):
    tg.manual_seed(1)
    model = small_model()
    x = tg.Tensor(f64(8, 4).astype(np.float32))
    model(x)  # one training-mode forward changes the BatchNorm running statistics
    path = tmp_path / "model.npz"
    np.savez(path, **model.state_dict())

    tg.manual_seed(2)
    other = small_model()
    with np.load(path) as saved:
        result = other.load_state_dict(saved)
    assert result.missing_keys == [] and result.unexpected_keys == []
    loaded = other.state_dict()
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
    model.eval(), other.eval()
    np.testing.assert_array_equal(model(x).numpy(), other(x).numpy())


def test_load_state_dict_keeps_the_modules_dtype_and_tensors():
    model = small_model()
    weight = model[0].weight
    state = {k: v.astype(np.float64) + 1.0 for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].weight is weight and weight.dtype == np.float32
    np.testing.assert_allclose(weight.numpy(), state["0.weight"], rtol=1e-6)


def test_load_state_dict_strict_errors_name_the_keys():
    model = small_model()
    state = model.state_dict()
    before = model[0].weight.numpy().copy()

    missing = dict(state)
    del missing["1.running_var"]
    with pytest.raises(ValueError, match=r"missing keys \['1.running_var'\]"):
        model.load_state_dict(missing)

    extra = dict(state, **{"9.weight": np.zeros(2)})
    with pytest.raises(ValueError, match=r"unexpected keys \['9.weight'\]"):
        model.load_state_dict(extra)

    wrong = {k: v + 1 for k, v in state.items()}
    wrong["3.weight"] = np.zeros((3, 5))
    with pytest.raises(ValueError, match=r"3.weight: shape \(3, 5\) in the state dict, \(3, 6\)"):
        model.load_state_dict(wrong)
    np.testing.assert_array_equal(model[0].weight.numpy(), before)  # nothing was loaded

    partial = {"0.bias": np.full(6, 7.0), "other": np.zeros(1)}
    result = model.load_state_dict(partial, strict=False)
    assert result.unexpected_keys == ["other"] and "0.weight" in result.missing_keys
    np.testing.assert_allclose(model[0].bias.numpy(), 7.0)


def test_to_moves_parameters_and_buffers_in_place(cuda_standin):
    model = small_model()
    params = list(model.parameters())
    model[0].weight.grad = tg.Tensor(np.ones((6, 4), np.float32))
    assert model.to("cuda") is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(isinstance(p, nn.Parameter) and p.device == "cuda" for p in model.parameters())
    assert all(b.device == "cuda" for b in model.buffers())
    assert model[0].weight.grad.device == "cuda"
    out = model(tg.Tensor(f64(5, 4), device="cuda"))
    assert out.device == "cuda"
    with pytest.raises(ValueError, match="same device"):
        model(tg.Tensor(f64(5, 4)))
    model.to("cpu")
    assert all(t.device == "cpu" for _, t in model._named_tensors())


def test_to_converts_dtype():
    model = small_model().to(dtype=np.float64)
    assert all(t.dtype == np.float64 for _, t in model._named_tensors())


def test_to_an_unavailable_device_is_a_clear_error():
    previous = install_cuda_backend(None)
    try:
        import importlib.util

        if importlib.util.find_spec("cupy") is not None:
            pytest.skip("CuPy is installed here")
        with pytest.raises(RuntimeError, match="CuPy"):
            small_model().to("cuda")
    finally:
        install_cuda_backend(previous)


# ---------------------------------------------------------------------------- layers


def test_linear_forward_matches_numpy_and_pytorch_layout():
    layer = nn.Linear(5, 3)
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (3,)
    x = f64(4, 5).astype(np.float32)
    y = layer(tg.Tensor(x))
    expected = x @ layer.weight.numpy().T + layer.bias.numpy()
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert nn.Linear(5, 3, bias=False).bias is None
    assert len(list(nn.Linear(5, 3, bias=False).parameters())) == 1
    batched = layer(tg.Tensor(f64(2, 4, 5)))
    assert batched.shape == (2, 4, 3)


def test_linear_rejects_wrong_input_width():
    with pytest.raises(ValueError, match=r"Linear\(5, 3\) got input of shape \(4, 2\)"):
        nn.Linear(5, 3)(tg.Tensor(f64(4, 2)))


def test_linear_gradients():
    x, w, b = f64(4, 5, seed=1), f64(3, 5, seed=2), f64(3, seed=3)
    assert tg.check_grad(F.linear, x, w, b)
    assert tg.check_grad(lambda x, w: F.linear(x, w), x, w)


def test_linear_default_init_bounds():
    tg.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(b).max() <= bound
    assert abs(w.var() - bound**2 / 3) < 0.05 * bound**2 / 3  # the variance of U(-a, a)


def test_activation_modules():
    x = tg.Tensor(f64(3, 4))
    np.testing.assert_allclose(nn.ReLU()(x).numpy(), np.maximum(x.numpy(), 0))
    np.testing.assert_allclose(nn.Tanh()(x).numpy(), np.tanh(x.numpy()))
    np.testing.assert_allclose(nn.Sigmoid()(x).numpy(), 1 / (1 + np.exp(-x.numpy())))
    np.testing.assert_allclose(F.softmax(x).numpy(), softmax_np(x.numpy()))


def test_sequential_container():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and seq[0] is layers[0] and seq[-1] is layers[2]
    assert list(seq) == layers
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2
    x = tg.Tensor(f64(4, 2))
    np.testing.assert_allclose(seq(x).numpy(), layers[2](layers[1](layers[0](x))).numpy())
    with pytest.raises(TypeError, match="argument 1"):
        nn.Sequential(nn.ReLU(), lambda x: x)


def test_sequential_subclass_attributes_are_found_and_layers_named_by_position():
    class Scaled(nn.Sequential):
        def __init__(self):
            super().__init__(nn.Linear(2, 2), nn.ReLU())
            self.scale = nn.Parameter(np.ones(1, np.float32))

    names = [n for n, _ in Scaled().named_parameters()]
    assert names == ["0.weight", "0.bias", "scale"]
    assert [n for n, _ in Scaled().named_children()] == ["0", "1"]


def test_flatten_keeps_the_batch_dimension():
    x = tg.Tensor(f64(2, 3, 4, 5), requires_grad=True)
    y = nn.Flatten()(x)
    assert y.shape == (2, 60)
    np.testing.assert_array_equal(y.numpy(), x.numpy().reshape(2, 60))
    assert tg.check_grad(lambda x: F.flatten(x), f64(2, 3, 2))


# ---------------------------------------------------------------------------- dropout


def test_dropout_statistics_in_training():
    tg.manual_seed(0)
    x = tg.Tensor(np.ones((400, 500), np.float32))
    y = nn.Dropout(0.3)(x).numpy()
    assert y.dtype == np.float32
    zeroed = np.mean(y == 0)
    assert abs(zeroed - 0.3) < 0.005
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout preserves the mean


def test_dropout_is_the_identity_in_eval_and_at_p_zero():
    x = tg.Tensor(f64(5, 5))
    layer = nn.Dropout(0.5).eval()
    assert layer(x) is x
    assert F.dropout(x, 0.0, training=True) is x


def test_dropout_validates_p():
    for p in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            nn.Dropout(p)


def test_dropout_is_reproducible_with_manual_seed_and_its_gradient_is_the_mask():
    x = tg.Tensor(f64(6, 7), requires_grad=True)
    tg.manual_seed(42)
    a = F.dropout(x, 0.5)
    tg.manual_seed(42)
    b = F.dropout(x, 0.5)
    c = F.dropout(x, 0.5)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert not np.array_equal(b.numpy(), c.numpy())
    a.sum().backward()
    kept = a.numpy() != 0
    np.testing.assert_allclose(x.grad.numpy(), np.where(kept, 2.0, 0.0))


def test_dropout_mask_is_drawn_on_the_inputs_device(cuda_standin):
    tg.manual_seed(0)
    x = tg.Tensor(np.ones((10, 10), np.float32), device="cuda")
    y = nn.Dropout(0.5)(x)
    assert y.device == "cuda"


# ---------------------------------------------------------------------------- BatchNorm / LayerNorm


def bn_reference(x: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    return (x - x.mean(0)) / np.sqrt(x.var(0) + eps)


def test_batchnorm_train_output_and_running_statistics_follow_pytorch():
    bn = nn.BatchNorm1d(3)
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    bn.weight.data[...] = [1.0, 2.0, -1.0]
    bn.bias.data[...] = [0.0, 0.5, 1.0]
    running_mean, running_var = np.zeros(3), np.ones(3)
    for step in range(3):
        x = f64(8, 3, seed=step) * (step + 1) + step
        y = bn(tg.Tensor(x.astype(np.float32)))
        expected = bn_reference(x) * [1.0, 2.0, -1.0] + [0.0, 0.5, 1.0]
        np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)
        running_mean = 0.9 * running_mean + 0.1 * x.mean(0)
        running_var = 0.9 * running_var + 0.1 * x.var(0, ddof=1)  # unbiased
        np.testing.assert_allclose(bn.running_mean.numpy(), running_mean, rtol=1e-5)
        np.testing.assert_allclose(bn.running_var.numpy(), running_var, rtol=1e-5)
    assert bn.running_mean.dtype == np.float32


def test_batchnorm_eval_uses_running_statistics_and_does_not_update_them():
    bn = nn.BatchNorm1d(4)
    bn(tg.Tensor(f64(16, 4) * 3 + 2))
    bn.eval()
    mean, var = bn.running_mean.numpy().copy(), bn.running_var.numpy().copy()
    x = f64(5, 4, seed=9)
    y = bn(tg.Tensor(x))
    np.testing.assert_allclose(y.numpy(), (x - mean) / np.sqrt(var + 1e-5), rtol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), mean)
    np.testing.assert_array_equal(bn.running_var.numpy(), var)
    one = bn(tg.Tensor(f64(1, 4)))  # a single sample is fine in eval
    assert one.shape == (1, 4)


def test_batchnorm_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than one sample"):
        bn(tg.Tensor(f64(1, 3)))
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3\)"):
        bn(tg.Tensor(f64(4, 2)))


def test_batchnorm_gradients_in_training_mode():
    x, w, b = f64(6, 3, seed=1), f64(3, seed=2), f64(3, seed=3)

    def f(x, w, b):
        return F.batch_norm(x, None, None, w, b, training=True)

    assert tg.check_grad(f, x, w, b)
    # second derivatives too (the backward is made of ops)
    assert tg.check_grad(lambda x: tg.grad(lambda x: (f(x, w, b) ** 3).sum())(x), x)


def test_batchnorm_gradient_in_eval_mode():
    mean, var = tg.Tensor(f64(3)), tg.Tensor(np.abs(f64(3)) + 0.5)
    assert tg.check_grad(
        lambda x, w: F.batch_norm(x, mean, var, w, None, training=False), f64(4, 3), f64(3)
    )


def test_layernorm_forward_and_gradients():
    ln = nn.LayerNorm(5)
    x = f64(4, 5) * 3 + 1
    y = ln(tg.Tensor(x))
    expected = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    ln.eval()
    np.testing.assert_allclose(ln(tg.Tensor(x)).numpy(), y.numpy())  # no train/eval difference
    assert tg.check_grad(
        lambda x, w, b: F.layer_norm(x, 5, w, b), f64(2, 3, 5), f64(5, seed=1), f64(5, seed=2)
    )
    with pytest.raises(ValueError, match="layer_norm"):
        ln(tg.Tensor(f64(4, 6)))


# ---------------------------------------------------------------------------- losses


def cross_entropy_np(z: np.ndarray, y: np.ndarray) -> float:
    m = z.max(axis=1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y].mean())


def onehot(y: np.ndarray, c: int) -> np.ndarray:
    return np.eye(c)[y]


def test_cross_entropy_value_and_gradient():
    z, y = f64(6, 4), np.array([0, 3, 1, 1, 2, 0])
    logits = tg.Tensor(z, requires_grad=True)
    loss = F.cross_entropy(logits, y)
    assert loss.shape == () and loss.dtype == np.float64
    np.testing.assert_allclose(loss.item(), cross_entropy_np(z, y), rtol=1e-12)
    loss.backward()
    np.testing.assert_allclose(logits.grad.numpy(), (softmax_np(z) - onehot(y, 4)) / 6, atol=1e-12)
    assert tg.check_grad(lambda z: F.cross_entropy(z, y), z)
    float32 = F.cross_entropy(tg.Tensor(z.astype(np.float32)), y)
    assert float32.dtype == np.float32


def test_cross_entropy_is_stable_at_extreme_logits():
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0], [0.0, 0.0, -1000.0]])
    y = np.array([1, 2, 0])
    for dtype in (np.float32, np.float64):
        logits = tg.Tensor(z.astype(dtype), requires_grad=True)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        assert np.isfinite(loss.item()) and np.all(np.isfinite(logits.grad.numpy()))
        expected = (2000.0 + 1.0 + np.log1p(np.exp(-1.0)) + np.log(2.0)) / 3
        np.testing.assert_allclose(loss.item(), expected, rtol=1e-6)
        np.testing.assert_allclose(
            logits.grad.numpy(), (softmax_np(z) - onehot(y, 3)) / 3, atol=1e-6
        )


def test_cross_entropy_second_order_and_forward_mode():
    z, y = f64(3, 4), np.array([1, 0, 3])
    assert tg.check_grad(lambda z: tg.grad(lambda z: F.cross_entropy(z, y))(z), z)
    v = f64(3, 4, seed=5)
    _, tangent = tg.jvp(lambda z: F.cross_entropy(z, y), (tg.Tensor(z),), (v,))
    np.testing.assert_allclose(tangent.item(), np.sum((softmax_np(z) - onehot(y, 4)) * v) / 3)


def test_cross_entropy_accepts_integer_tensors_and_lists():
    z = f64(3, 4)
    expected = cross_entropy_np(z, np.array([1, 2, 3]))
    for labels in ([1, 2, 3], np.array([1, 2, 3], np.uint8), tg.Tensor(np.array([1, 2, 3]))):
        np.testing.assert_allclose(F.cross_entropy(tg.Tensor(z), labels).item(), expected)


def test_cross_entropy_validates_labels():
    logits = tg.Tensor(f64(3, 4))
    with pytest.raises(TypeError, match="integer class labels"):
        F.cross_entropy(logits, np.array([1.0, 2.0, 0.0]))
    with pytest.raises(TypeError, match="integer class labels"):
        F.cross_entropy(logits, np.eye(4)[:3])
    with pytest.raises(ValueError, match=r"in \[0, 4\).*got 4"):
        F.cross_entropy(logits, np.array([1, 4, 0]))
    with pytest.raises(ValueError, match=r"in \[0, 4\).*got -1"):
        F.cross_entropy(logits, np.array([1, -1, 0]))
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        F.cross_entropy(logits, np.array([1, 2]))
    with pytest.raises(ValueError, match=r"shape \(N, C\)"):
        F.cross_entropy(tg.Tensor(f64(3)), np.array([1, 2, 0]))


def test_mse_loss():
    a, b = f64(4, 3), f64(4, 3, seed=1)
    np.testing.assert_allclose(F.mse_loss(tg.Tensor(a), b).item(), np.mean((a - b) ** 2))
    assert tg.check_grad(F.mse_loss, a, b)
    with pytest.raises(ValueError, match="shape"):
        F.mse_loss(tg.Tensor(a), f64(4, 1))


# ---------------------------------------------------------------------------- init and random


def test_xavier_uniform_bound_and_variance():
    tg.manual_seed(0)
    w = nn.Parameter(np.zeros((200, 300), np.float32))
    assert init.xavier_uniform_(w, gain=2.0) is w
    bound = 2.0 * math.sqrt(6 / (200 + 300))
    data = w.numpy()
    assert w.dtype == np.float32
    assert np.abs(data).max() <= bound and np.abs(data).max() > 0.99 * bound
    assert abs(data.mean()) < 0.01 * bound
    assert abs(data.var() - bound**2 / 3) < 0.03 * bound**2 / 3


def test_kaiming_uniform_follows_pytorch_math():
    tg.manual_seed(0)
    w = tg.Tensor(np.zeros((64, 16, 3, 3)))  # fan_in = 16*9
    init.kaiming_uniform_(w, nonlinearity="relu")
    bound = math.sqrt(2.0) * math.sqrt(3.0 / (16 * 9))
    assert np.abs(w.numpy()).max() <= bound and np.abs(w.numpy()).max() > 0.99 * bound
    init.kaiming_uniform_(w, a=math.sqrt(5))  # PyTorch's default for Linear/Conv2d
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(16 * 9)
    init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")  # fan_out = 64*9
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / (64 * 9))
    assert init.fan_in_and_fan_out(w) == (144, 576)
    assert w.dtype == np.float64


def test_init_helpers_and_errors():
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(1 / 3))
    with pytest.raises(ValueError, match="unknown nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.xavier_uniform_(tg.Tensor(np.zeros(3)))
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform_(tg.Tensor(np.zeros((2, 2))), mode="fan")
    t = tg.Tensor(np.zeros((3, 4), np.float32))
    assert np.all(init.ones_(t).numpy() == 1) and np.all(init.zeros_(t).numpy() == 0)
    assert np.all(init.constant_(t, 2.5).numpy() == 2.5)
    tg.manual_seed(3)
    big = init.normal_(tg.Tensor(np.zeros(100_000)), mean=1.0, std=2.0).numpy()
    assert abs(big.mean() - 1.0) < 0.03 and abs(big.std() - 2.0) < 0.03


def test_manual_seed_makes_initialisation_reproducible():
    tg.manual_seed(7)
    a = nn.Linear(5, 4)
    tg.manual_seed(7)
    b = nn.Linear(5, 4)
    c = nn.Linear(5, 4)
    np.testing.assert_array_equal(a.weight.numpy(), b.weight.numpy())
    assert not np.array_equal(b.weight.numpy(), c.weight.numpy())
    assert tg.random.initial_seed() == 7
    with pytest.raises(ValueError, match="non-negative integer"):
        tg.manual_seed(-1)


def test_generators_are_per_device(cuda_standin):
    tg.manual_seed(0)
    cpu, cuda = tg.random.generator("cpu"), tg.random.generator("cuda")
    assert cpu is not cuda and tg.random.generator("cpu") is cpu
    assert isinstance(cpu, np.random.Generator)
    tg.manual_seed(0)
    assert tg.random.generator("cpu") is not cpu  # reseeding starts afresh
    half = tg.random.rand((3,), np.float16)
    assert half.dtype == np.float16


# ---------------------------------------------------------------------------- worked example


def test_linear_plus_mlp_recovers_the_linear_coefficients():
    """f(x) = b1*x1 + b2*x2 + g(z): trained on data from b = (2, -3) and g(z) = sin(2z), the
    explicit coefficients come out close to the truth, because g cannot see x1, x2."""
    tg.manual_seed(0)
    data = rng(0)
    x = data.uniform(-1, 1, size=(256, 3)).astype(np.float32)
    target = 2.0 * x[:, 0] - 3.0 * x[:, 1] + np.sin(2 * x[:, 2]) + 0.01 * data.normal(size=256)
    model = nn.LinearPlusMLP(n_linear=2, n_other=1, hidden=16)
    opt = tg.optim.Adam(model.parameters(), lr=0.02)
    inputs, targets = tg.Tensor(x), tg.Tensor(target.astype(np.float32))
    for _ in range(400):
        opt.zero_grad()
        loss = F.mse_loss(model(inputs), targets)
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3
    np.testing.assert_allclose(model.b.numpy(), [2.0, -3.0], atol=0.05)


# ---------------------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_model_on_gpu_matches_cpu():
    device = real_cuda()
    tg.manual_seed(0)
    model = small_model()
    x = f64(8, 4).astype(np.float32)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    loss_cpu = F.cross_entropy(model(tg.Tensor(x)), y)
    loss_cpu.backward()
    grads = [p.grad.numpy() for p in model.parameters()]
    state = model.state_dict()
    gpu = small_model().to(device)
    gpu.load_state_dict(state)  # host arrays into parameters on the GPU
    loss_gpu = F.cross_entropy(gpu(tg.Tensor(x, device=device)), tg.Tensor(y, device=device))
    loss_gpu.backward()
    assert loss_gpu.device == "cuda"
    np.testing.assert_allclose(loss_gpu.item(), loss_cpu.item(), rtol=1e-5)
    for g, p in zip(grads, gpu.parameters(), strict=True):
        assert p.grad.device == "cuda"
        np.testing.assert_allclose(p.grad.numpy(), g, rtol=1e-4, atol=1e-6)
    for name, value in gpu.state_dict().items():
        assert type(value) is np.ndarray, name


@pytest.mark.gpu
def test_dropout_mask_is_drawn_on_the_gpu():
    device = real_cuda()
    tg.manual_seed(0)
    x = tg.Tensor(np.ones((1000, 100), np.float32), device=device)
    y = F.dropout(x, 0.25)
    assert type(y.data).__module__.startswith("cupy")
    assert type(tg.random.generator(device)).__module__.startswith("cupy")
    assert abs(float((y.data == 0).mean()) - 0.25) < 0.01
    w = init.xavier_uniform_(tg.Tensor(np.zeros((50, 60), np.float32), device=device))
    assert type(w.data).__module__.startswith("cupy") and w.dtype == np.float32


@pytest.mark.hw2
def test_fused_affine_matches_its_composition_to_second_order():
    """F.linear is one op (Affine): same values, gradients and second derivatives as
    x @ W.T + b written out, first-order fast path and recorded path alike."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    fused = lambda x, w, b: tg.tanh(F.linear(x, w, b))  # noqa: E731
    plain = lambda x, w, b: tg.tanh(x @ w.T + b)  # noqa: E731
    for f in (fused, plain):
        assert tg.check_grad(f, x, w, b).ok
    grads = []
    for f in (fused, plain):
        ts = [tg.Tensor(a, requires_grad=True) for a in (x, w, b)]
        f(*ts).backward(np.ones((2, 3, 5)))
        grads.append([t.grad.numpy() for t in ts])
    for g1, g2 in zip(*grads):
        np.testing.assert_allclose(g1, g2, rtol=1e-12)
    hessian_row = lambda w: tg.grad(lambda v: (fused(tg.Tensor(x), v, tg.Tensor(b)) ** 2).sum())(w)  # noqa: E731
    assert tg.check_grad(hessian_row, w).ok
    _, t = tg.jvp(lambda *a: F.linear(*a), (x, w, b), (x, w, b))  # tangents = primals
    np.testing.assert_allclose(t.numpy(), 2 * (x @ w.T) + b, rtol=1e-12)

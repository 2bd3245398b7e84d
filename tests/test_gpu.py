"""Real-GPU tests: tapegrad on CuPy against tapegrad on NumPy.

Skipped, with the reason, where CuPy is not installed or no GPU is usable (the CUDA code paths
are also covered without a GPU by ``test_backend.py``, with NumPy standing in for CuPy).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

cupy = pytest.importorskip("cupy", reason="CuPy is not installed (the GPU extra)")


def _gpu_problem() -> str | None:
    """Why no GPU is usable here, or None when one is."""
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "no CUDA GPU found"
        if int(cupy.arange(4).sum()) != 6:  # compiles and runs a kernel
            return "a trial kernel gave a wrong result"
    except Exception as exc:  # CuPy raises its own types for a missing driver, runtime, ...
        return f"CUDA is not usable: {type(exc).__name__}: {exc}"
    return None


_problem = _gpu_problem()
if _problem is not None:
    pytest.skip(_problem, allow_module_level=True)

import tapegrad as tg  # noqa: E402
from tapegrad import backend  # noqa: E402


@pytest.fixture(autouse=True)
def real_cuda() -> Iterator[None]:
    """The real CuPy backend as "cuda", whatever an earlier test installed."""
    previous = backend.install_cuda_backend(None)
    assert backend.get_backend("cuda").xp is cupy
    try:
        yield
    finally:
        backend.install_cuda_backend(previous)


RNG = np.random.default_rng(99)


def arr(*shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(np.float32)


def test_tensors_live_on_the_gpu() -> None:
    x = tg.Tensor(arr(3, 4), device="cuda")
    assert x.device == "cuda"
    assert isinstance(x.data, cupy.ndarray)
    assert x.dtype == np.float32
    y = tg.Tensor(cupy.ones((2, 2), dtype=cupy.float32))  # device inferred from the array
    assert y.device == "cuda"
    z = (x * 2).sum(axis=0)
    assert isinstance(z.data, cupy.ndarray) and z.device == "cuda"
    assert isinstance(z.numpy(), np.ndarray)


LABELS = np.array([2, 0, 3])

CASES: list[tuple[str, Callable[..., tg.Tensor], list[np.ndarray]]] = [
    ("add broadcast", lambda a, b: a + b, [arr(3, 4), arr(4)]),
    ("mul broadcast", lambda a, b: a * b, [arr(3, 4), arr(3, 1)]),
    ("div", lambda a, b: a / b, [arr(3, 4), arr(3, 4, low=0.5, high=2.0)]),
    ("pow", lambda a, b: a**b, [arr(3, 4, low=0.5, high=2.0), arr(4)]),
    ("matmul", lambda a, b: a @ b, [arr(16, 32), arr(32, 8)]),
    ("matmul batched", lambda a, b: a @ b, [arr(2, 3, 4), arr(4, 5)]),
    ("exp log", lambda a: tg.log(tg.exp(a) + 1.0), [arr(3, 4)]),
    ("tanh sigmoid", lambda a: tg.tanh(a) * tg.sigmoid(a), [arr(3, 4)]),
    ("relu abs", lambda a: tg.relu(a) + tg.abs(a), [arr(3, 4)]),
    ("sqrt sin cos", lambda a: tg.sqrt(a) * tg.sin(a) + tg.cos(a), [arr(3, 4, low=0.5)]),
    ("getitem int array", lambda a: a[np.array([0, 2, 0, 0])], [arr(3, 4)]),
    ("getitem labels", lambda a: a[np.arange(3), LABELS], [arr(3, 4)]),
    ("getitem slice", lambda a: a[1:, ::2], [arr(3, 4)]),
    ("sum mean", lambda a: a.sum(axis=0) + a.mean(axis=0), [arr(3, 4)]),
    ("max min", lambda a: a.max(axis=1) - a.min(axis=1), [arr(3, 4)]),
    ("logsumexp", lambda a: tg.logsumexp(a, axis=1), [arr(3, 4) * 50]),
    ("softmax", lambda a: tg.softmax(a, axis=1), [arr(3, 4)]),
    ("log_softmax", lambda a: tg.log_softmax(a, axis=1), [arr(3, 4)]),
    ("reshape transpose", lambda a: a.reshape(4, -1).T, [arr(3, 4)]),
    ("where", lambda a, b: tg.where(np.array([True, False, True, False]), a, b),
     [arr(3, 4), arr(4)]),
    ("concatenate stack", lambda a, b: tg.stack([tg.concatenate([a, b], axis=1)] * 2),
     [arr(3, 4), arr(3, 2)]),
]  # fmt: skip


def run_case(fn: Callable[..., tg.Tensor], arrays: list[np.ndarray], device: str):
    inputs = [tg.Tensor(a, requires_grad=True, device=device) for a in arrays]
    out = fn(*inputs)
    g = np.random.default_rng(5).standard_normal(out.shape).astype(out.dtype)
    out.backward(tg.Tensor(g, device=device))
    return out, inputs


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_on_gpu_matches_cpu(case) -> None:
    _, fn, arrays = case
    ref, ref_inputs = run_case(fn, arrays, "cpu")
    out, inputs = run_case(fn, arrays, "cuda")
    assert out.device == "cuda" and isinstance(out.data, cupy.ndarray)
    assert out.dtype == ref.dtype
    np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)
    for x, r in zip(inputs, ref_inputs, strict=True):
        assert x.grad.device == "cuda" and isinstance(x.grad.data, cupy.ndarray)
        np.testing.assert_allclose(x.grad.numpy(), r.grad.numpy(), rtol=1e-5, atol=1e-5)


def test_to_round_trip_and_gradients_across_devices() -> None:
    a = arr(5, 3)
    x = tg.Tensor(a, requires_grad=True)
    y = x.to("cuda")
    assert isinstance(y.data, cupy.ndarray)
    loss = (y * y).sum().to("cpu")
    assert isinstance(loss.data, np.ndarray)
    loss.backward()
    assert x.grad.device == "cpu" and isinstance(x.grad.data, np.ndarray)
    np.testing.assert_allclose(x.grad.numpy(), 2 * a, rtol=1e-6)
    np.testing.assert_array_equal(y.to("cpu").numpy(), a)


def test_mixing_devices_raises() -> None:
    with pytest.raises(ValueError, match=r"\.to\("):
        tg.Tensor(arr(2), device="cuda") + tg.Tensor(arr(2))


def _mlp_data(n: int = 64, d: int = 20, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (x[:, :k].argmax(axis=1)).astype(np.int64)
    return x, y


def test_raw_tensor_mlp_training_on_gpu_matches_cpu() -> None:
    """A few SGD steps of a two-layer MLP written with bare tensors (no tg.nn)."""
    x, y = _mlp_data()
    rng = np.random.default_rng(4)
    init = [
        rng.uniform(-0.2, 0.2, (20, 32)).astype(np.float32),
        np.zeros(32, np.float32),
        rng.uniform(-0.2, 0.2, (32, 5)).astype(np.float32),
        np.zeros(5, np.float32),
    ]

    def train(device: str) -> tuple[list[float], list[np.ndarray]]:
        params = [tg.Tensor(p, requires_grad=True, device=device) for p in init]
        xt = tg.Tensor(x, device=device)
        losses = []
        for _ in range(5):
            w1, b1, w2, b2 = params
            z = tg.relu(xt @ w1 + b1) @ w2 + b2
            loss = (tg.logsumexp(z, axis=1) - z[np.arange(len(y)), y]).mean()
            loss.backward()
            losses.append(loss.item())
            params = [
                tg.Tensor(p.data - 0.5 * p.grad.data, requires_grad=True, device=device)
                for p in params
            ]
        assert all(p.device == device for p in params)
        return losses, [p.numpy() for p in params]

    cpu_losses, cpu_params = train("cpu")
    gpu_losses, gpu_params = train("cuda")
    assert cpu_losses[-1] < cpu_losses[0]  # it learns
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-5)
    for g, c in zip(gpu_params, cpu_params, strict=True):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_nn_mlp_training_on_gpu_matches_cpu() -> None:
    """A few steps of Linear/ReLU/Sequential + cross_entropy + SGD, on cuda and on cpu."""
    nn = pytest.importorskip("tapegrad.nn", reason="tapegrad.nn is not available yet")
    optim = pytest.importorskip("tapegrad.optim", reason="tapegrad.optim is not available yet")
    tg_random = pytest.importorskip("tapegrad.random")
    x, y = _mlp_data()

    def make() -> object:
        tg_random.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))

    def train(device: str) -> tuple[list[float], list[np.ndarray]]:
        model = make()
        if device != "cpu":
            model.to(device)
        params = list(model.parameters())
        assert all(p.device == device for p in params)
        opt = optim.SGD(params, lr=0.5)
        xt, yt = tg.Tensor(x, device=device), tg.Tensor(y, device=device)
        losses = []
        for _ in range(5):
            loss = nn.functional.cross_entropy(model(xt), yt)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses, [p.numpy() for p in model.parameters()]

    cpu_losses, cpu_params = train("cpu")
    gpu_losses, gpu_params = train("cuda")
    assert cpu_losses[-1] < cpu_losses[0]
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-4, atol=1e-5)
    for g, c in zip(gpu_params, cpu_params, strict=True):
        np.testing.assert_allclose(g, c, rtol=1e-4, atol=1e-5)


def test_compiled_mlp_on_gpu_matches_eager_and_runs_fused_kernels() -> None:
    """tg.compile on CuPy: the generated code (with one ElementwiseKernel per fused group)
    gives eager's loss and gradients, and runs compiled from the second call."""
    from tapegrad import nn
    from tapegrad.nn import functional as F

    def make() -> nn.Module:
        tg.manual_seed(0)
        return nn.Sequential(nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 5)).to("cuda")

    eager, model = make(), make()
    loss_fn = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    x = tg.Tensor(arr(16, 20), device="cuda")
    y = tg.Tensor(RNG.integers(0, 5, 16), device="cuda")
    for _ in range(2):
        model.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
    want = F.cross_entropy(eager(x), y)
    want.backward()
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)
    for p, q in zip(model.parameters(), eager.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert loss_fn.stats.compiled_calls == 1, loss_fn.stats.fallbacks
    assert "fused" in loss_fn.source()  # tanh's backward chain became a kernel

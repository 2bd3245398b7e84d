"""The CUDA code paths, run on CPU: NumPy stands in for CuPy at the one switch point
(``tapegrad.backend``), so device tags, transfers, mixing errors and the absence of hidden
host transfers are all tested on machines without a GPU. Real-GPU tests: ``test_gpu.py``.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import backend
from tapegrad.backend import Backend

pytestmark = pytest.mark.hw3

RNG = np.random.default_rng(1234)


def arr(*shape: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """A float64 array of uniform values (float64 so comparisons can be tight)."""
    return RNG.uniform(low, high, shape)


@pytest.fixture
def no_cuda_backend() -> Iterator[None]:
    """No ``"cuda"`` backend loaded (so the next request goes through ``_load_cupy``)."""
    previous = backend.install_cuda_backend(None)
    try:
        yield
    finally:
        backend.install_cuda_backend(previous)


class Counting:
    """A NumPy stand-in backend whose ``to_host`` and ``scatter_add`` count their calls."""

    def __init__(self) -> None:
        self.to_host_calls = 0
        self.scatter_add_calls = 0
        self.backend = Backend("cuda", np, self._to_host, self._scatter_add)

    def _to_host(self, array: Any) -> np.ndarray:
        self.to_host_calls += 1
        return np.asarray(array)

    def _scatter_add(self, target: Any, index: Any, values: Any) -> None:
        self.scatter_add_calls += 1
        np.add.at(target, index, values)


@pytest.fixture
def counting() -> Iterator[Counting]:
    c = Counting()
    previous = backend.install_cuda_backend(c.backend)
    try:
        yield c
    finally:
        backend.install_cuda_backend(previous)


# ------------------------------------------------------------------------------ device tags


def test_tensor_on_cuda_has_cuda_device(cuda_standin: Backend) -> None:
    x = tg.Tensor(arr(2, 3), device="cuda")
    assert x.device == "cuda"
    assert x.backend is cuda_standin
    assert x.dtype == np.float64  # dtype rules are the same on every device
    assert tg.Tensor([1.0, 2.0], device="cuda").dtype == np.float32
    assert tg.Tensor([1, 2], device="cuda").dtype.kind == "i"
    assert tg.Tensor(arr(2), device="cpu").device == "cpu"
    assert tg.Tensor(arr(2)).device == "cpu"  # the default


def test_requires_grad_and_detach_keep_the_device(cuda_standin: Backend) -> None:
    x = tg.Tensor(arr(3), device="cuda", requires_grad=True)
    assert x.requires_grad
    assert x.detach().device == "cuda"
    assert "device='cuda'" in repr(x)


# ------------------------------------------------------------------- ops: values and grads

# (name, function of the input tensors, input arrays); every input requires grad.
Case = tuple[str, Callable[..., tg.Tensor], list[np.ndarray]]
LABELS = np.array([2, 0, 3])

CASES: list[Case] = [
    ("add broadcast", lambda a, b: a + b, [arr(3, 4), arr(4)]),
    ("sub scalar", lambda a: 2.0 - a - 1, [arr(3, 4)]),
    ("mul broadcast", lambda a, b: a * b, [arr(3, 4), arr(3, 1)]),
    ("div", lambda a, b: a / b, [arr(3, 4), arr(3, 4, low=0.5, high=2.0)]),
    ("neg", lambda a: -a, [arr(5)]),
    ("pow scalar", lambda a: a**3, [arr(3, 4)]),
    ("pow tensor", lambda a, b: a**b, [arr(3, 4, low=0.5, high=2.0), arr(4)]),
    ("matmul", lambda a, b: a @ b, [arr(3, 4), arr(4, 5)]),
    ("matmul batched", lambda a, b: a @ b, [arr(2, 3, 4), arr(4, 5)]),
    ("matmul vector", lambda a, b: a @ b, [arr(3, 4), arr(4)]),
    ("exp", tg.exp, [arr(3, 4)]),
    ("log", tg.log, [arr(3, 4, low=0.5, high=2.0)]),
    ("sqrt", tg.sqrt, [arr(3, 4, low=0.5, high=2.0)]),
    ("sin cos", lambda a: tg.sin(a) * tg.cos(a), [arr(3, 4)]),
    ("tanh", tg.tanh, [arr(3, 4)]),
    ("sigmoid", tg.sigmoid, [arr(3, 4)]),
    ("relu", tg.relu, [arr(3, 4)]),
    ("abs", tg.abs, [arr(3, 4)]),
    ("getitem int array", lambda a: a[np.array([0, 2, 0, 0])], [arr(3, 4)]),
    ("getitem two arrays", lambda a: a[np.array([0, 1, 2, 1]), np.array([3, 3, 0, 3])],
     [arr(3, 4)]),
    ("getitem labels", lambda a: a[np.arange(3), LABELS], [arr(3, 4)]),
    ("getitem slice", lambda a: a[1:, ::2], [arr(3, 4)]),
    ("sum all", lambda a: a.sum(), [arr(3, 4)]),
    ("sum axis", lambda a: a.sum(axis=0), [arr(3, 4)]),
    ("sum keepdims", lambda a: a.sum(axis=(0, 2), keepdims=True), [arr(2, 3, 4)]),
    ("mean", lambda a: a.mean(axis=1), [arr(3, 4)]),
    ("max all", lambda a: a.max(), [arr(3, 4)]),
    ("max axis", lambda a: a.max(axis=1), [arr(3, 4)]),
    ("max ties", lambda a: a.max(axis=1), [np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])]),
    ("min", lambda a: a.min(axis=0), [arr(3, 4)]),
    ("logsumexp", lambda a: tg.logsumexp(a, axis=1), [arr(3, 4)]),
    ("logsumexp large", lambda a: tg.logsumexp(a, axis=0), [arr(3, 4) * 500]),
    ("softmax", lambda a: tg.softmax(a, axis=1), [arr(3, 4)]),
    ("log_softmax", lambda a: tg.log_softmax(a, axis=-1), [arr(3, 4)]),
    ("reshape transpose", lambda a: a.reshape(4, -1).T.transpose(1, 0), [arr(3, 4)]),
    ("broadcast_to", lambda a: a.broadcast_to((2, 3, 4)), [arr(3, 1)]),
    ("where", lambda a, b: tg.where(np.array([True, False, True, False]), a, b),
     [arr(3, 4), arr(4)]),
    ("concatenate", lambda a, b: tg.concatenate([a, b], axis=1), [arr(3, 4), arr(3, 2)]),
    ("stack", lambda a, b: tg.stack([a, b], axis=0), [arr(3, 4), arr(3, 4)]),
    ("cross entropy",
     lambda z: (tg.logsumexp(z, axis=1) - z[np.arange(3), LABELS]).mean(), [arr(3, 4)]),
]  # fmt: skip


def run_case(fn: Callable[..., tg.Tensor], arrays: list[np.ndarray], device: str, seed: int):
    """The output and the input gradients of ``fn`` on ``device``, for a random cotangent."""
    inputs = [tg.Tensor(a, requires_grad=True, device=device) for a in arrays]
    out = fn(*inputs)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(tg.Tensor(g, dtype=out.dtype, device=device))
    return out, inputs, g


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_on_cuda_matches_cpu_and_stays_on_cuda(cuda_standin: Backend, case: Case) -> None:
    _, fn, arrays = case
    ref_out, ref_inputs, _ = run_case(fn, arrays, "cpu", seed=7)
    out, inputs, _ = run_case(fn, arrays, "cuda", seed=7)

    assert out.device == "cuda"
    assert out.dtype == ref_out.dtype
    np.testing.assert_allclose(out.numpy(), ref_out.numpy(), rtol=1e-12, atol=1e-12)
    for x, ref in zip(inputs, ref_inputs, strict=True):
        assert x.grad is not None
        assert x.grad.device == "cuda", "a gradient of a cuda tensor must live on cuda"
        assert x.grad.shape == x.shape
        np.testing.assert_allclose(x.grad.numpy(), ref.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_matmul_values_and_grads_on_cuda(cuda_standin: Backend) -> None:
    a, b = arr(3, 4), arr(4, 5)
    out, (ta, tb), g = run_case(lambda x, y: x @ y, [a, b], "cuda", seed=1)
    np.testing.assert_allclose(out.numpy(), a @ b)
    np.testing.assert_allclose(ta.grad.numpy(), g @ b.T)
    np.testing.assert_allclose(tb.grad.numpy(), a.T @ g)


def test_getitem_with_integer_arrays_scatter_adds_on_cuda(cuda_standin: Backend) -> None:
    a = arr(3, 4)
    rows = np.array([0, 2, 0, 0])
    out, (ta,), g = run_case(lambda x: x[rows], [a], "cuda", seed=2)
    np.testing.assert_array_equal(out.numpy(), a[rows])
    expected = np.zeros_like(a)
    np.add.at(expected, rows, g)  # row 0 picked three times: three contributions
    np.testing.assert_allclose(ta.grad.numpy(), expected)


def test_sum_and_max_reductions_on_cuda(cuda_standin: Backend) -> None:
    a = arr(3, 4)
    out, (ta,), g = run_case(lambda x: x.sum(axis=1), [a], "cuda", seed=3)
    np.testing.assert_allclose(out.numpy(), a.sum(axis=1))
    np.testing.assert_allclose(ta.grad.numpy(), np.broadcast_to(g[:, None], a.shape))

    out, (ta,), g = run_case(lambda x: x.max(axis=0), [a], "cuda", seed=4)
    np.testing.assert_allclose(out.numpy(), a.max(axis=0))
    onehot = (a == a.max(axis=0, keepdims=True)).astype(float)
    np.testing.assert_allclose(ta.grad.numpy(), onehot * g[None, :])


def test_logsumexp_on_cuda(cuda_standin: Backend) -> None:
    a = arr(3, 4)
    out, (ta,), g = run_case(lambda x: tg.logsumexp(x, axis=1), [a], "cuda", seed=5)
    lse = np.log(np.exp(a).sum(axis=1))
    np.testing.assert_allclose(out.numpy(), lse)
    softmax = np.exp(a - lse[:, None])
    np.testing.assert_allclose(ta.grad.numpy(), softmax * g[:, None])


def test_scalars_comparisons_and_no_grad_stay_on_cuda(cuda_standin: Backend) -> None:
    x = tg.Tensor(arr(3, 4), device="cuda", requires_grad=True)
    for y in (x * 2, 2 * x, x + 1.5, 1 - x, x / 3, 3 / (x * x + 1), x**2, 2.0**x):
        assert y.device == "cuda"
    for c in (x > 0, x == x, x <= 0.5):
        assert c.device == "cuda"
        assert c.dtype == np.bool_
        assert not c.requires_grad
    with tg.no_grad():
        y = (x * x).sum()
    assert y.device == "cuda"
    assert not y.requires_grad


def test_backward_without_grad_and_accumulation_on_cuda(cuda_standin: Backend) -> None:
    x = tg.Tensor(arr(3), device="cuda", requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()  # gradients add up, as in PyTorch
    assert x.grad.device == "cuda"
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() + 3)


def test_grad_and_jvp_transforms_on_cuda(cuda_standin: Backend) -> None:
    a = arr(4)
    x = tg.Tensor(a, device="cuda")

    def f(t: tg.Tensor) -> tg.Tensor:
        return (t * t * t).sum()

    g = tg.grad(f)(x)
    assert g.device == "cuda"
    np.testing.assert_allclose(g.numpy(), 3 * a**2)

    def f1(t: tg.Tensor) -> tg.Tensor:
        return tg.sin(t).sum()

    gg = tg.grad(lambda t: tg.grad(f1)(t).sum())(x)  # second derivative: -sin
    assert gg.device == "cuda"
    np.testing.assert_allclose(gg.numpy(), -np.sin(a))

    out, tangent = tg.jvp(tg.exp, (x,), (tg.Tensor(np.ones(4), device="cuda"),))
    assert out.device == tangent.device == "cuda"
    np.testing.assert_allclose(tangent.numpy(), np.exp(a))


# ------------------------------------------------- a stand-in with an array type of its own


class DeviceArray(np.ndarray):
    """Plays ``cupy.ndarray``: NumPy underneath, but a type of its own, so code that mixes up
    host and device arrays (which the plain stand-in cannot see: there, both are
    ``numpy.ndarray``) leaves a wrong type behind where CuPy would fail or copy silently."""


DeviceArray.__module__ = "cupy_standin"  # device_of_array() reads "cupy..." as "cuda"


class TypedXP:
    """NumPy as an array module whose functions return :class:`DeviceArray`, as CuPy's
    functions return CuPy arrays (ufuncs keep the subclass by themselves)."""

    __name__ = "typed_numpy_standin"
    ndarray = DeviceArray

    @staticmethod
    def asarray(a: Any, dtype: Any = None) -> DeviceArray:
        return np.asarray(a, dtype=dtype).view(DeviceArray)

    def __getattr__(self, name: str) -> Any:
        obj = getattr(np, name)
        if not callable(obj) or isinstance(obj, (type, np.ufunc)):
            return obj

        def on_device(*args: Any, **kwargs: Any) -> Any:
            out = obj(*args, **kwargs)
            return out.view(DeviceArray) if type(out) is np.ndarray else out

        return on_device


def _typed_to_host(array: Any) -> np.ndarray:
    assert type(array) is DeviceArray, f"to_host of a {type(array).__name__}, not a device array"
    return np.asarray(array)  # a plain ndarray (asarray drops the subclass)


@pytest.fixture
def typed_standin() -> Iterator[Backend]:
    standin = Backend("cuda", TypedXP(), _typed_to_host, np.add.at)  # type: ignore[arg-type]
    previous = backend.install_cuda_backend(standin)
    try:
        yield standin
    finally:
        backend.install_cuda_backend(previous)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_op_on_cuda_keeps_device_arrays(typed_standin: Backend, case: Case) -> None:
    _, fn, arrays = case
    out, inputs, _ = run_case(fn, arrays, "cuda", seed=7)
    assert type(out.data) is DeviceArray
    for x in inputs:
        assert type(x.grad.data) is DeviceArray


def test_device_is_inferred_from_a_device_array(typed_standin: Backend) -> None:
    x = tg.Tensor(TypedXP.asarray(arr(3)))
    assert x.device == "cuda"
    y = tg.Tensor(TypedXP.asarray(arr(3)), device="cpu")  # an explicit copy to the host
    assert y.device == "cpu" and type(y.data) is np.ndarray


def test_to_moves_the_array_between_array_types(typed_standin: Backend) -> None:
    a = arr(3, 4)
    x = tg.Tensor(a, requires_grad=True)
    y = x.to("cuda")
    assert y.device == "cuda" and type(y.data) is DeviceArray
    z = y.to("cpu")
    assert z.device == "cpu" and type(z.data) is np.ndarray
    (z * z).sum().backward()
    assert type(x.grad.data) is np.ndarray
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)


# ------------------------------------------------------------------------ mixing devices

MIXED: list[tuple[str, Callable[[tg.Tensor, tg.Tensor], Any]]] = [
    ("add", lambda a, b: a + b),
    ("mul", lambda a, b: b * a),
    ("matmul", lambda a, b: a @ b),
    ("pow", lambda a, b: a**b),
    ("concatenate", lambda a, b: tg.concatenate([a, b])),
    ("where", lambda a, b: tg.where(np.ones((2, 2), bool), a, b)),
    ("compare", lambda a, b: a < b),
]


@pytest.mark.parametrize("cuda_first", [True, False], ids=["cuda-cpu", "cpu-cuda"])
@pytest.mark.parametrize("op", [m[1] for m in MIXED], ids=[m[0] for m in MIXED])
def test_mixing_devices_raises_and_says_to_use_to(
    cuda_standin: Backend, op: Callable[[tg.Tensor, tg.Tensor], Any], cuda_first: bool
) -> None:
    a = tg.Tensor(arr(2, 2, low=0.5), requires_grad=True, device="cuda")
    b = tg.Tensor(arr(2, 2, low=0.5), requires_grad=True, device="cpu")
    if not cuda_first:
        a, b = b, a
    with pytest.raises(ValueError, match=r"\.to\(") as info:
        op(a, b)
    assert "cpu" in str(info.value) and "cuda" in str(info.value)


# ---------------------------------------------------------------------------------- .to()


def test_to_round_trip_keeps_values(cuda_standin: Backend) -> None:
    a = arr(3, 4).astype(np.float32)
    x = tg.Tensor(a)
    y = x.to("cuda")
    assert y.device == "cuda"
    assert y.dtype == np.float32
    z = y.to("cpu")
    assert z.device == "cpu"
    np.testing.assert_array_equal(z.numpy(), a)
    assert x.to("cpu") is x and y.to("cuda") is y  # no copy when already there
    assert x.cuda().device == "cuda" and y.cpu().device == "cpu"


def test_gradients_flow_back_across_to(cuda_standin: Backend) -> None:
    a = arr(3, 4)
    x = tg.Tensor(a, requires_grad=True)  # cpu leaf
    y = x.to("cuda")
    assert y.requires_grad and not y.is_leaf
    loss = (y * y).sum().to("cpu")
    assert loss.device == "cpu"
    loss.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)

    w = tg.Tensor(a, requires_grad=True, device="cuda")  # the other direction
    (w.to("cpu") * 3).sum().backward()
    assert w.grad.device == "cuda"
    np.testing.assert_allclose(w.grad.numpy(), np.full_like(a, 3))


def test_backward_with_grad_on_another_device_errors(cuda_standin: Backend) -> None:
    x = tg.Tensor(arr(3), requires_grad=True, device="cuda")
    y = x * 2
    with pytest.raises(ValueError, match=r"\.to\("):
        y.backward(tg.Tensor(np.ones(3)))  # a cpu cotangent for a cuda tensor
    z = (x * 2).to("cpu")
    with pytest.raises(ValueError, match=r"\.to\("):
        z.backward(tg.Tensor(np.ones(3), device="cuda"))


# ----------------------------------------------------------------------- unavailable / bad


def test_cuda_without_cupy_raises_helpful_runtime_error(no_cuda_backend: None) -> None:
    try:
        import cupy  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("CuPy is installed here; see the simulated variant below")
    with pytest.raises(RuntimeError, match="CuPy") as info:
        tg.Tensor([1.0], device="cuda")
    assert "cpu" in str(info.value)  # says what to do instead
    with pytest.raises(RuntimeError, match="CuPy"):
        tg.Tensor([1.0]).to("cuda")


def test_cuda_with_cupy_import_failing_raises_runtime_error(
    no_cuda_backend: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same, whether or not CuPy is installed: make ``import cupy`` fail."""
    monkeypatch.setitem(sys.modules, "cupy", None)
    with pytest.raises(RuntimeError, match="needs CuPy") as info:
        tg.Tensor([1.0], device="cuda")
    assert "pip install" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)  # cpu keeps working
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])


def _fake_cupy(get_device_count: Callable[[], int]) -> types.ModuleType:
    cupy = types.ModuleType("cupy")
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    cupy.cuda = types.SimpleNamespace(runtime=runtime)  # type: ignore[attr-defined]
    return cupy


def _no_driver() -> int:
    raise OSError("libcuda.so.1: cannot open shared object file")


@pytest.mark.parametrize(
    "count, message",
    [(lambda: 0, "none was found"), (_no_driver, "could not be initialised")],
    ids=["no-gpu", "no-driver"],
)
def test_cuda_with_cupy_but_no_gpu_raises_runtime_error(
    no_cuda_backend: None, monkeypatch: pytest.MonkeyPatch, count: Any, message: str
) -> None:
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    monkeypatch.setitem(sys.modules, "cupyx", types.ModuleType("cupyx"))
    with pytest.raises(RuntimeError, match=message):
        tg.Tensor([1.0], device="cuda")


@pytest.mark.parametrize("device", ["tpu", "gpu", "CPU", "cuda:1"])
def test_unknown_device_raises_value_error(device: str) -> None:
    with pytest.raises(ValueError, match="device"):
        tg.Tensor([1.0], device=device)
    with pytest.raises(ValueError, match="device"):
        tg.Tensor([1.0]).to(device)


# ---------------------------------------------------------------------- host transfers


def test_forward_and_backward_on_cuda_never_copy_to_host(counting: Counting) -> None:
    """Only .numpy() / .item() (and .to("cpu")) may move data to the host: a hidden copy in
    an op would synchronise the GPU on every step."""
    x = tg.Tensor(arr(8, 5), device="cuda")
    labels = np.array([0, 2, 1, 2, 0, 1, 1, 0])
    w1 = tg.Tensor(arr(5, 6), requires_grad=True, device="cuda")
    b1 = tg.Tensor(arr(6), requires_grad=True, device="cuda")
    w2 = tg.Tensor(arr(6, 3), requires_grad=True, device="cuda")
    h = tg.relu(x @ w1 + b1)
    h = tg.where(h > 5.0, 5.0, h) * tg.sigmoid(h) + tg.tanh(h).max(axis=1, keepdims=True)
    z = h @ w2
    loss = (tg.logsumexp(z, axis=1) - z[np.arange(8), labels]).mean()
    loss = loss + 1e-3 * (w1**2).sum() + tg.softmax(z, axis=1)[:, 0].sum() * 0.0
    loss.backward()
    assert all(p.grad is not None and p.grad.device == "cuda" for p in (w1, b1, w2))
    assert counting.to_host_calls == 0, "forward/backward copied data to the host"

    loss.item()
    assert counting.to_host_calls == 1
    w1.grad.numpy()
    assert counting.to_host_calls == 2


def test_to_cpu_copies_through_the_cuda_backend(counting: Counting) -> None:
    """A device-to-host copy goes through the installed backend (the one switch point), not
    through a guess from the array's type."""
    x = tg.Tensor(arr(3), device="cuda", requires_grad=True)
    y = x.to("cpu")
    assert counting.to_host_calls == 1
    y.sum().backward()  # the gradient goes back host-to-device: no device-to-host copy
    assert counting.to_host_calls == 1
    assert x.grad.device == "cuda"


def test_integer_index_gradient_scatters_through_the_cuda_backend(counting: Counting) -> None:
    """Repeated indices accumulate with the device's own scatter-add (cupyx.scatter_add)."""
    x = tg.Tensor(arr(3, 4), requires_grad=True, device="cuda")
    x[np.array([0, 0, 2])].sum().backward()
    assert counting.scatter_add_calls == 1


def test_cached_scalar_constants_follow_a_replaced_backend(cuda_standin: Backend) -> None:
    """Python numbers lifted on one "cuda" backend must not be reused by the next one."""
    x = tg.Tensor(arr(3), device="cuda")
    (x * 2.0).numpy()  # caches the constant 2.0 for "cuda" on the plain stand-in
    standin = Backend("cuda", TypedXP(), _typed_to_host, np.add.at)  # type: ignore[arg-type]
    previous = backend.install_cuda_backend(standin)
    try:
        y = tg.Tensor(TypedXP.asarray(arr(3)), device="cuda", requires_grad=True) * 2.0
        assert y._ctx is not None
        constant = y._ctx.inputs[1]
        assert type(constant.data) is DeviceArray, "a constant made by the old backend"
    finally:
        backend.install_cuda_backend(previous)

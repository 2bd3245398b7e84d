"""The engine: :class:`Tensor`, the :class:`Function` every op derives from, and the tape.

Reverse mode in three pieces:

* every op is a :class:`Function`; calling it computes the output from raw arrays and, when a
  gradient will be needed, records the function on the output (``out._ctx``): that record is
  the tape (a Wengert list, stored as links from each value to the op that made it);
* :func:`topological_order` lists the recorded values so that each comes after everything it
  was computed from, without recursion, so graphs thousands of nodes deep work;
* :func:`backprop` walks that list from the output back to the inputs, calling each
  function's ``backward`` with the gradient of its output (the cotangent) and summing the
  contributions a value receives from every place it was used.

Backward rules are written with tapegrad's own ops, so running them with the tape switched on
(``create_graph=True``) records the gradient computation itself: that is how second
derivatives work. Forward mode rides on the same functions: each one also has a ``jvp`` rule,
applied while :func:`tapegrad.jvp` is active.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import Backend, device_of_array, get_backend

_new_tensor = object.__new__

__all__ = [
    "Tensor",
    "Function",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "topological_order",
    "backprop",
]


class _Mode:
    """Switches that change what calling an op records.

    Class attributes rather than instance state: there is one tape per process, as in PyTorch.
    """

    grad_enabled = True  # record ops for reverse mode
    forward_mode = 0  # > 0 inside tapegrad.jvp: propagate tangents


class set_grad_enabled:
    """Record ops for backward (``True``) or not (``False``) inside the ``with`` block.

    A class rather than a generator-based context manager: the backward pass enters one per
    call, and this is several times cheaper.
    """

    __slots__ = ("mode", "previous")

    def __init__(self, mode: bool) -> None:
        self.mode = bool(mode)
        self.previous = _Mode.grad_enabled

    def __enter__(self) -> None:
        self.previous = _Mode.grad_enabled
        _Mode.grad_enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _Mode.grad_enabled = self.previous


def no_grad() -> set_grad_enabled:
    """``with tg.no_grad():`` computes values without recording anything for backward."""
    return set_grad_enabled(False)


def enable_grad() -> set_grad_enabled:
    """Switch recording back on inside a ``no_grad`` block."""
    return set_grad_enabled(True)


def is_grad_enabled() -> bool:
    return _Mode.grad_enabled


@contextlib.contextmanager
def _forward_mode(active: bool) -> Iterator[None]:
    previous = _Mode.forward_mode
    _Mode.forward_mode = previous + 1 if active else 0
    try:
        yield
    finally:
        _Mode.forward_mode = previous


def _default_dtype(array: Any, explicit: bool) -> Any:
    """The dtype rule of the API: float data becomes float32 unless already float64 arrays."""
    kind = array.dtype.kind
    if kind == "f" and array.dtype != np.float32 and not (explicit and array.dtype == np.float64):
        return np.float32
    return None


class Tensor:
    """An n-dimensional array that remembers how it was computed.

    ``Tensor(data, requires_grad=False, dtype=None, device=None)``: ``data`` is a number, a
    nested list, a NumPy or CuPy array, or a Tensor. Without ``dtype``, floating-point data
    becomes float32 unless it is already a float64 array; integer and boolean data keep their
    kind. ``device`` is ``"cpu"`` or ``"cuda"`` (default: where ``data`` already lives).
    """

    __slots__ = ("data", "requires_grad_", "grad", "_ctx", "_tangent", "device", "__weakref__")
    __array_priority__ = 1000  # so `ndarray * Tensor` calls Tensor.__rmul__

    def __init__(
        self,
        data: Any,
        requires_grad: bool = False,
        dtype: Any = None,
        device: str | None = None,
    ) -> None:
        if isinstance(data, Tensor):
            data = data.data  # type: ignore[has-type]
        source = device_of_array(data)
        backend = get_backend(device or source)
        if dtype is not None:
            dtype = np.dtype(dtype)
        elif hasattr(data, "dtype"):
            dtype = _default_dtype(data, explicit=True)
        else:  # Python numbers and lists: NumPy would pick float64, the API says float32
            data = np.asarray(data)
            dtype = _default_dtype(data, explicit=False)
        if backend.name != source and source == "cuda":
            data = get_backend("cuda").to_host(data)
        self.data = backend.asarray(data, dtype=dtype)
        self.device = backend.name
        self.grad: Tensor | None = None
        self._ctx: Function | None = None
        self._tangent: Tensor | None = None
        self.requires_grad_ = False
        if requires_grad:
            self.requires_grad = True

    @classmethod
    def _make(cls, data: Any, device: str) -> Tensor:
        """Wrap an array an op produced: no conversion, no checks (the hot path)."""
        t = cls.__new__(cls)
        t.data = data
        t.device = device
        t.grad = None
        t._ctx = None
        t._tangent = None
        t.requires_grad_ = False
        return t

    if TYPE_CHECKING:  # operators and methods are attached by ops._bind_methods at import

        def __add__(self, other: Any) -> Tensor: ...
        def __radd__(self, other: Any) -> Tensor: ...
        def __sub__(self, other: Any) -> Tensor: ...
        def __rsub__(self, other: Any) -> Tensor: ...
        def __mul__(self, other: Any) -> Tensor: ...
        def __rmul__(self, other: Any) -> Tensor: ...
        def __truediv__(self, other: Any) -> Tensor: ...
        def __rtruediv__(self, other: Any) -> Tensor: ...
        def __pow__(self, other: Any) -> Tensor: ...
        def __rpow__(self, other: Any) -> Tensor: ...
        def __matmul__(self, other: Any) -> Tensor: ...
        def __rmatmul__(self, other: Any) -> Tensor: ...
        def __neg__(self) -> Tensor: ...
        def __abs__(self) -> Tensor: ...
        def __getitem__(self, index: Any) -> Tensor: ...
        def __lt__(self, other: Any) -> Tensor: ...
        def __le__(self, other: Any) -> Tensor: ...
        def __gt__(self, other: Any) -> Tensor: ...
        def __ge__(self, other: Any) -> Tensor: ...
        def __eq__(self, other: Any) -> Tensor: ...  # type: ignore[override]
        def __ne__(self, other: Any) -> Tensor: ...  # type: ignore[override]
        def exp(self) -> Tensor: ...
        def log(self) -> Tensor: ...
        def sqrt(self) -> Tensor: ...
        def sin(self) -> Tensor: ...
        def cos(self) -> Tensor: ...
        def tanh(self) -> Tensor: ...
        def sigmoid(self) -> Tensor: ...
        def relu(self) -> Tensor: ...
        def abs(self) -> Tensor: ...
        def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def max(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def min(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def logsumexp(self, axis: Any = None, keepdims: bool = False) -> Tensor: ...
        def softmax(self, axis: int = -1) -> Tensor: ...
        def log_softmax(self, axis: int = -1) -> Tensor: ...
        def reshape(self, *shape: Any) -> Tensor: ...
        def transpose(self, *axes: Any) -> Tensor: ...
        def swapaxes(self, axis1: int, axis2: int) -> Tensor: ...
        def broadcast_to(self, shape: Any) -> Tensor: ...
        def sum_to(self, shape: tuple[int, ...]) -> Tensor: ...

    # ---- attributes -------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self.requires_grad_

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if value and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, and this one has dtype "
                f"{self.data.dtype}: convert it first, e.g. Tensor(x, dtype='float32')"
            )
        self.requires_grad_ = bool(value)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors the user made (no recorded op); only leaves receive ``.grad``."""
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        return _ops.transpose(self)

    @property
    def backend(self) -> Backend:
        return get_backend(self.device)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="Tensor(")
        extras = []
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn={type(self._ctx).__name__}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "Tensor(" + ", ".join([body, *extras]) + ")"

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The values as a NumPy array (copied to the host for CUDA tensors)."""
        return self.backend.to_host(self.data)

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self.size != 1:
            raise ValueError(f"item() needs a one-element tensor; this one has shape {self.shape}")
        return self.numpy().reshape(()).item()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        return bool(self.item())

    def tolist(self) -> Any:
        return self.numpy().tolist()

    def detach(self) -> Tensor:
        """The same values, cut from the tape (shares memory, never requires grad)."""
        return Tensor._make(self.data, self.device)

    def to(self, device: str) -> Tensor:
        """This tensor on ``device``; differentiable, and ``self`` when already there."""
        if device == self.device:
            return self
        return _ops.to_device(self, device)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def astype(self, dtype: Any) -> Tensor:
        """A differentiable cast (the gradient is cast back)."""
        return _ops.cast(self, dtype)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def zero_grad(self) -> None:
        """Forget the accumulated gradient."""
        self.grad = None

    # ---- reverse mode -----------------------------------------------------------------------
    def backward(self, grad: Any = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf), weighted by ``grad``, into every leaf's ``.grad``.

        ``grad`` (the cotangent, same shape as ``self``) may be omitted only for a one-element
        tensor, where it is 1. As in PyTorch, gradients add up over calls until
        :meth:`zero_grad`; with ``create_graph=True`` the gradients are themselves recorded,
        so they can be differentiated again.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the computation "
                "had requires_grad=True (or it ran under tg.no_grad())"
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, and this one "
                    f"has shape {self.shape}: pass grad= with that shape, or reduce (.sum()) first"
                )
            cotangent = Tensor._make(self.backend.xp.ones(self.shape, self.dtype), self.device)
        else:
            cotangent = _as_cotangent(grad, self)
        grads = backprop(self, cotangent, create_graph=create_graph)
        handed_out: set[int] = {id(cotangent)}
        for leaf, g in grads.items():
            if leaf.grad is not None:
                leaf.grad = leaf.grad + g
                continue
            if not create_graph and (
                id(g) in handed_out or not getattr(g.data.flags, "writeable", True)
            ):
                # one gradient object can reach several leaves (a + b hands gy to both) or be
                # a read-only broadcast view: give each leaf its own array, as PyTorch does
                g = Tensor._make(g.data.copy(), g.device)
            handed_out.add(id(g))
            leaf.grad = g


def _as_cotangent(grad: Any, like: Tensor) -> Tensor:
    g = grad if isinstance(grad, Tensor) else Tensor(grad, dtype=like.dtype, device=like.device)
    if g.shape != like.shape:
        raise ValueError(
            f"backward(): gradient has shape {g.shape}, but the tensor has shape {like.shape}"
        )
    if g.device != like.device:
        raise ValueError(_device_message("backward()", [like, g]))
    if g.dtype != like.dtype:
        g = g.astype(like.dtype)
    return g


def _device_message(what: str, tensors: Sequence[Tensor]) -> str:
    where = " and ".join(f"a tensor on {t.device}" for t in tensors)
    return f"{what} got {where}: move one with .to(device) so all are on the same device"


class Function:
    """One differentiable op: ``forward`` on raw arrays, ``backward`` and ``jvp`` on Tensors.

    Subclasses implement

    * ``forward(*arrays) -> array``: the value, with ``self.xp`` (NumPy or CuPy) as the array
      module; anything needed later is stored on ``self``;
    * ``backward(gy) -> tuple``: given the cotangent ``gy`` (a Tensor shaped like the output),
      one gradient per input (a Tensor shaped like that input, or ``None``), written with
      tapegrad ops so that it can itself be differentiated;
    * ``jvp(*tangents) -> Tensor``: given one tangent per input, the output's tangent.

    ``self.inputs`` holds the input Tensors and ``self.output`` returns the output (held
    weakly: the output owns its function, not the other way round).
    """

    __slots__ = ("inputs", "xp", "_out", "__dict__")
    _out: Any  # the output while a jvp rule runs, else a weak reference to it

    def __call__(self, *inputs: Tensor) -> Tensor:
        device = inputs[0].device
        for x in inputs:
            if x.device != device:
                raise ValueError(_device_message(type(self).__name__.lower(), inputs))
        self.xp = np if device == "cpu" else get_backend(device).xp
        self.inputs = inputs
        try:
            if len(inputs) == 1:  # the common arities skip building a list
                y = self.forward(inputs[0].data)
            elif len(inputs) == 2:
                y = self.forward(inputs[0].data, inputs[1].data)
            else:
                y = self.forward(*[x.data for x in inputs])
        except ValueError as exc:  # NumPy's message lacks the op; name it and every shape
            shapes = " and ".join(str(x.shape) for x in inputs)
            raise ValueError(f"{type(self).__name__} of shapes {shapes}: {exc}") from exc
        if isinstance(y, np.generic):  # NumPy turns 0-d results into scalars
            y = np.asarray(y)
        out = _new_tensor(Tensor)  # Tensor._make, inlined: this is the hottest line of the kit
        out.data = y
        out.device = device
        out.grad = out._ctx = out._tangent = None
        out.requires_grad_ = False
        if _Mode.grad_enabled:
            for x in inputs:
                if x.requires_grad_:
                    out.requires_grad_ = True
                    out._ctx = self
                    break
        if _Mode.forward_mode and any(x._tangent is not None for x in inputs):
            self._out = out
            with _forward_mode(False):  # the rule's own ops carry no tangents
                tangents = [x._tangent if x._tangent is not None else _zeros(x) for x in inputs]
                out._tangent = self.jvp(*tangents)
        self._out = weakref.ref(out)
        return out

    @property
    def output(self) -> Tensor:
        out = self._out() if callable(self._out) else self._out
        if out is None:
            raise RuntimeError(f"{type(self).__name__}: the output of this op no longer exists")
        return out

    if TYPE_CHECKING:  # each op has its own arity: declared loosely so subclasses type-check
        forward: Callable[..., Any]
        backward: Callable[[Tensor], tuple[Tensor | None, ...]]
        jvp: Callable[..., Tensor]
    else:

        def forward(self, *xs):
            raise NotImplementedError

        def backward(self, gy):
            raise NotImplementedError

        def jvp(self, *tangents):
            raise NotImplementedError(f"{type(self).__name__} has no forward-mode (jvp) rule")


def _zeros(x: Tensor) -> Tensor:
    return Tensor._make(get_backend(x.device).xp.zeros(x.shape, x.dtype), x.device)


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor ``root`` was computed from that requires grad, ``root`` included, ordered
    so that each tensor comes after all the tensors it was computed from.

    Depth-first search with an explicit stack (no recursion, so a chain 10,000 ops long works):
    a tensor is appended once all its inputs have been appended (post-order). With a stack,
    post-order means pushing each tensor twice: first as "to expand" (push it back marked
    "expanded", then push its inputs), and append it when it is popped marked "expanded".
    Each tensor appears once however many times it was used: keep the visited ones in a set
    of ``id(t)`` (``Tensor.__eq__`` is elementwise, so ``t in a_list`` does not work). Inputs
    are found through ``t._ctx.inputs``; leaves have ``t._ctx is None``.
    """
    ### BEGIN SOLUTION hw1
    order: list[Tensor] = []
    visited: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for x in node._ctx.inputs:
                if x.requires_grad_ and id(x) not in visited:
                    stack.append((x, False))
    return order
    ### END SOLUTION


def backprop(
    root: Tensor,
    cotangent: Tensor,
    create_graph: bool = False,
    inputs: Sequence[Tensor] | None = None,
) -> dict[Tensor, Tensor]:
    """Reverse-mode sweep: the gradient of ``sum(cotangent * root)`` with respect to
    ``inputs`` (default: every leaf that requires grad), as ``{tensor: gradient}``.

    Visit the tensors of :func:`topological_order` from the last (``root``) to the first. A
    tensor's gradient is complete when it is visited, because everything computed from it has
    been visited already; hand it to ``t._ctx.backward`` and add each returned input gradient
    to that input's running total (a tensor used twice receives two contributions: the
    multivariate chain rule sums over paths). Gradients are kept in a dict keyed by ``id``.
    Gradients whose dtype differs from their tensor's are cast back (``.astype``). The sweep
    runs with recording switched on only when ``create_graph`` is true.

    Start from ``{id(root): cotangent}``. Add each input gradient, cast if needed, to the
    running total of that input (not the total afterwards). A wanted tensor that is not a
    leaf (``inputs`` may name one) gets its total recorded when it is visited, and its
    ``backward`` is still called. Do not copy gradients: :meth:`Tensor.backward` does.

    What it skips: a leaf (``t._ctx is None``) has no backward to call; an input that does
    not require grad, or for which ``backward`` returned None, gets nothing; a tensor that no
    gradient reached is not in the result. What it returns: ``{tensor: total gradient}`` for
    the wanted tensors only (``inputs``, or every leaf that requires grad), the tensors
    themselves as keys. :meth:`Tensor.backward` then adds these into ``.grad``.
    """
    wanted = {id(x): x for x in inputs} if inputs is not None else None
    results: dict[Tensor, Tensor] = {}
    with set_grad_enabled(create_graph):
        ### BEGIN SOLUTION hw1
        grads: dict[int, Tensor] = {id(root): cotangent}
        for node in reversed(topological_order(root)):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if wanted is None and node._ctx is None or wanted is not None and id(node) in wanted:
                results[node] = g
            if node._ctx is None:
                continue
            for x, gx in zip(node._ctx.inputs, node._ctx.backward(g)):
                if gx is None or not x.requires_grad_:
                    continue
                if gx.data.dtype is not x.data.dtype and gx.data.dtype != x.data.dtype:
                    gx = gx.astype(x.data.dtype)
                previous = grads.get(id(x))
                grads[id(x)] = gx if previous is None else previous + gx
        ### END SOLUTION
    return results


from . import ops as _ops  # noqa: E402  (ops builds on Tensor and Function, defined above)

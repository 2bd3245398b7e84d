"""Every differentiable op: its forward value, its backward (VJP) rule and its forward (JVP) rule
side by side, one small :class:`~tapegrad.tensor.Function` subclass each, and the functions
and Tensor methods that call them.

Conventions, used by every rule below:

* ``forward`` receives raw arrays and uses ``self.xp`` (NumPy or CuPy), never ``np`` directly;
* ``backward(gy)`` receives the cotangent of the output and returns one gradient per input,
  built from tapegrad ops (so it can be differentiated again), shaped like that input: where
  an input was broadcast, :func:`sum_to` sums the gradient back to its shape;
* ``jvp(*tangents)`` receives one tangent per input (zeros for inputs without one) and returns
  the output's tangent;
* ``self.inputs`` are the input Tensors, ``self.output`` the output Tensor.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import device_of_array, get_backend, on_backend_change
from .tensor import Function, Tensor

Axis = int | Sequence[int] | None

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _lift(value: Any, like: Tensor) -> Tensor:
    """A constant operand (number or array) as a Tensor on ``like``'s device.

    Python numbers take the tensor's dtype where that loses nothing (``x * 2`` stays float32).
    """
    if isinstance(value, (bool, int, float)):
        dtype = like.data.dtype
        key = (value, type(value), dtype, like.device)
        constant = _CONSTANTS.get(key)
        if constant is None:
            if dtype.kind != "f":
                dtype = np.result_type(dtype, value)
            xp = np if like.device == "cpu" else like.backend.xp
            constant = Tensor._make(xp.asarray(value, dtype=dtype), like.device)
            if len(_CONSTANTS) >= 1024:  # e.g. a learning-rate schedule: don't grow forever
                _CONSTANTS.clear()
            _CONSTANTS[key] = constant
        return constant
    return Tensor(value, device=like.device)


# Lifted Python numbers, reused: backward rules lift the same few (1.0, 2.0, 0.0) constantly.
# They never require grad and no op writes into its inputs, so sharing them is safe.
_CONSTANTS: dict[tuple[Any, ...], Tensor] = {}
on_backend_change(_CONSTANTS.clear)


def _pair(a: Any, b: Any) -> tuple[Tensor, Tensor]:
    if not isinstance(a, Tensor):
        a = _lift(a, b)
    elif not isinstance(b, Tensor):
        b = _lift(b, a)
    return a, b


def _normalize_axis(axis: Axis, ndim: int) -> tuple[int, ...] | None:
    """``axis`` as a sorted tuple of non-negative ints (``None`` stays ``None``: all axes)."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -ndim <= ax < builtins.max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} dimensions")
        out.append(int(ax) % builtins.max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis}")
    return tuple(sorted(out))


def _keepdims_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of a reduction over ``axis`` with ``keepdims=True``."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else n for i, n in enumerate(shape))


def _expand_reduced(g: Tensor, shape: tuple[int, ...], axis: tuple[int, ...] | None) -> Tensor:
    """Undo a reduction's shape: ``g`` (reduced, with or without kept dims) back to ``shape``."""
    return broadcast_to(reshape(g, _keepdims_shape(shape, axis)), shape)


def _sum_to_array(xp: Any, a: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``a`` down to ``shape``, the inverse of broadcasting ``shape`` up to ``a.shape``.

    Broadcasting (NumPy rules) aligns shapes on the right, then (1) prepends axes and
    (2) stretches axes of length 1. Undo both: sum over the leading ``a.ndim - len(shape)``
    axes, and over every axis where ``shape`` has 1 but ``a`` does not; return exactly
    ``shape``.
    """
    ### BEGIN SOLUTION hw1
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and a.shape[lead + i] != 1
    )
    return a.sum(axis=axes, keepdims=True).reshape(shape)
    ### END SOLUTION


def _grad_for(x: Tensor, g: Tensor) -> Tensor | None:
    """``g`` summed to ``x``'s shape, or ``None`` when ``x`` needs no gradient."""
    return sum_to(g, x.shape) if x.requires_grad_ else None


# ---------------------------------------------------------------------------------------------
# arithmetic
# ---------------------------------------------------------------------------------------------


class Add(Function):
    """``a + b`` (broadcasting). A worked example: every other op follows this pattern."""

    def forward(self, a: Any, b: Any) -> Any:
        return a + b

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        # d(a+b)/da = 1 and d(a+b)/db = 1: the cotangent flows to both inputs unchanged,
        # except that an input which was broadcast receives the sum over the copies.
        a, b = self.inputs
        return _grad_for(a, gy), _grad_for(b, gy)

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        return ta + tb


class Sub(Function):
    """``a - b``."""

    def forward(self, a: Any, b: Any) -> Any:
        """The elementwise difference a - b (arrays broadcast as in NumPy)."""
        ### BEGIN SOLUTION hw1
        return a - b
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """d/da = 1, d/db = -1; sum back over broadcast axes."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        return _grad_for(a, gy), _grad_for(b, -gy)
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """t = ta - tb."""
        ### BEGIN SOLUTION hw1
        return ta - tb
        ### END SOLUTION


class Mul(Function):
    """``a * b``."""

    def forward(self, a: Any, b: Any) -> Any:
        """The elementwise product a * b (broadcasting)."""
        ### BEGIN SOLUTION hw1
        return a * b
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """d(ab)/da = b, d(ab)/db = a: ga = gy * b, gb = gy * a, each summed to its shape."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        ga = sum_to(gy * b, a.shape) if a.requires_grad_ else None
        gb = sum_to(gy * a, b.shape) if b.requires_grad_ else None
        return ga, gb
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """Product rule: t = ta * b + a * tb."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        return ta * b + a * tb
        ### END SOLUTION


class Div(Function):
    """``a / b``."""

    def forward(self, a: Any, b: Any) -> Any:
        """The elementwise quotient a / b (broadcasting)."""
        ### BEGIN SOLUTION hw1
        return a / b
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """d(a/b)/da = 1/b, d(a/b)/db = -a/b**2."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        ga = sum_to(gy / b, a.shape) if a.requires_grad_ else None
        gb = sum_to(-gy * a / (b * b), b.shape) if b.requires_grad_ else None
        return ga, gb
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """Quotient rule: t = ta / b - a * tb / b**2."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        return ta / b - a * tb / (b * b)
        ### END SOLUTION


class Pow(Function):
    """``a ** b`` (``b`` a tensor, or a number lifted to one).

    The derivative in ``b``, ``a**b * log(a)``, exists only for ``a > 0``; elsewhere it is
    taken as 0 (with a constant exponent it is never needed).
    """

    def forward(self, a: Any, b: Any) -> Any:
        """The elementwise power a ** b (broadcasting)."""
        ### BEGIN SOLUTION hw1
        return a**b
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """d(a**b)/da = b * a**(b-1); d(a**b)/db = a**b * log(a), with sum_to for the
        broadcast operands. log(a) is undefined for a <= 0: there the b-gradient is taken
        as 0 (compute the log of where(a.data > 0, a, 1.0)). Return None for an input that
        does not require grad (a constant exponent: never take its log at all)."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        ga = sum_to(gy * b * a ** (b - 1), a.shape) if a.requires_grad_ else None
        gb = None
        if b.requires_grad_:
            gb = sum_to(gy * self.output * log(where(a.data > 0, a, 1.0)), b.shape)
        return ga, gb
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """t = b * a**(b-1) * ta + a**b * log(a) * tb."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        return b * a ** (b - 1) * ta + self.output * log(where(a.data > 0, a, 1.0)) * tb
        ### END SOLUTION


class MatMul(Function):
    """``a @ b`` for a, b with at least 2 dimensions; leading (batch) dimensions broadcast.

    (1-D operands are handled by :func:`matmul`, which reshapes them.)
    """

    def forward(self, a: Any, b: Any) -> Any:
        """The matrix product a @ b: (..., n, k) @ (..., k, m) -> (..., n, m), the leading
        (batch) axes broadcast."""
        ### BEGIN SOLUTION hw1
        return a @ b
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """For y = a @ b: ga = gy @ b^T and gb = a^T @ gy, where ^T swaps the last two axes;
        batch dimensions that were broadcast are summed back with :func:`sum_to`."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        ga = sum_to(gy @ swapaxes(b, -1, -2), a.shape) if a.requires_grad_ else None
        gb = None
        if b.requires_grad_:
            if b.ndim == 2 and not b.data.flags.c_contiguous:
                # b is a transposed view (x @ W.T in Linear): (gy^T a)^T is the same matrix,
                # laid out like W itself, which keeps the optimizer's update fast
                gb = swapaxes(swapaxes(gy, -1, -2) @ a, -1, -2)
            else:
                gb = swapaxes(a, -1, -2) @ gy
            gb = sum_to(gb, b.shape)
        return ga, gb
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """t = ta @ b + a @ tb."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        return ta @ b + a @ tb
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# elementwise functions
# ---------------------------------------------------------------------------------------------


class Neg(Function):
    """``-a``."""

    def forward(self, a: Any) -> Any:
        return -a

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        return (-gy,)

    def jvp(self, ta: Tensor) -> Tensor:
        return -ta


class Exp(Function):
    """``exp(a)``."""

    def forward(self, a: Any) -> Any:
        """exp(a), elementwise (use self.xp.exp: NumPy or CuPy)."""
        ### BEGIN SOLUTION hw1
        return self.xp.exp(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d exp(a)/da = exp(a): reuse the output instead of recomputing it."""
        ### BEGIN SOLUTION hw1
        return (gy * self.output,)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = exp(a) * ta."""
        ### BEGIN SOLUTION hw1
        return self.output * ta
        ### END SOLUTION


class Log(Function):
    """Natural logarithm ``log(a)``."""

    def forward(self, a: Any) -> Any:
        """The natural logarithm log(a), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.log(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d log(a)/da = 1/a."""
        ### BEGIN SOLUTION hw1
        return (gy / self.inputs[0],)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = ta / a."""
        ### BEGIN SOLUTION hw1
        return ta / self.inputs[0]
        ### END SOLUTION


class Sqrt(Function):
    """``sqrt(a)``."""

    def forward(self, a: Any) -> Any:
        """sqrt(a), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.sqrt(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d sqrt(a)/da = 1 / (2 sqrt(a))."""
        ### BEGIN SOLUTION hw1
        return (gy / (2.0 * self.output),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = ta / (2 sqrt(a))."""
        ### BEGIN SOLUTION hw1
        return ta / (2.0 * self.output)
        ### END SOLUTION


class Sin(Function):
    """``sin(a)``."""

    def forward(self, a: Any) -> Any:
        """sin(a), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.sin(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d sin(a)/da = cos(a)."""
        ### BEGIN SOLUTION hw1
        return (gy * cos(self.inputs[0]),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = cos(a) * ta."""
        ### BEGIN SOLUTION hw1
        return cos(self.inputs[0]) * ta
        ### END SOLUTION


class Cos(Function):
    """``cos(a)``."""

    def forward(self, a: Any) -> Any:
        """cos(a), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.cos(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d cos(a)/da = -sin(a)."""
        ### BEGIN SOLUTION hw1
        return (-gy * sin(self.inputs[0]),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = -sin(a) * ta."""
        ### BEGIN SOLUTION hw1
        return -sin(self.inputs[0]) * ta
        ### END SOLUTION


class Tanh(Function):
    """``tanh(a)``."""

    def forward(self, a: Any) -> Any:
        """tanh(a), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.tanh(a)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d tanh(a)/da = 1 - tanh(a)**2 (from the output y: 1 - y*y)."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return (gy * (1.0 - y * y),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = (1 - y*y) * ta."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return (1.0 - y * y) * ta
        ### END SOLUTION


class Sigmoid(Function):
    """The logistic function ``1 / (1 + exp(-a))``, computed without overflow for any ``a``
    (as ``(1 + tanh(a/2)) / 2``)."""

    def forward(self, a: Any) -> Any:
        """sigmoid(a) = 1 / (1 + exp(-a)), elementwise, without overflow for large |a|:
        use the identity sigmoid(a) = (1 + tanh(a / 2)) / 2."""
        ### BEGIN SOLUTION hw1
        return 0.5 * (1.0 + self.xp.tanh(0.5 * a))
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d sigmoid(a)/da = y (1 - y) for the output y."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return (gy * y * (1.0 - y),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = y (1 - y) ta."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return y * (1.0 - y) * ta
        ### END SOLUTION


class ReLU(Function):
    """``max(a, 0)`` elementwise. Its derivative is taken as 0 at ``a == 0``."""

    def forward(self, a: Any) -> Any:
        """max(a, 0), elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.maximum(a, 0)
        ### END SOLUTION

    def _mask(self) -> Tensor:
        a = self.inputs[0]
        return Tensor._make(a.data > 0, a.device)  # a boolean mask: no float temporary

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """The cotangent passes where ``a > 0`` and is zeroed elsewhere (a constant mask)."""
        ### BEGIN SOLUTION hw1
        return (gy * self._mask(),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = ta where a > 0, else 0."""
        ### BEGIN SOLUTION hw1
        return ta * self._mask()
        ### END SOLUTION


class Abs(Function):
    """``|a|``. Its derivative, sign(a), is taken as 0 at ``a == 0``."""

    def forward(self, a: Any) -> Any:
        """|a|, elementwise."""
        ### BEGIN SOLUTION hw1
        return self.xp.abs(a)
        ### END SOLUTION

    def _sign(self) -> Tensor:
        a = self.inputs[0]
        return Tensor._make(self.xp.sign(a.data), a.device)

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d|a|/da = sign(a)."""
        ### BEGIN SOLUTION hw1
        return (gy * self._sign(),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = sign(a) ta."""
        ### BEGIN SOLUTION hw1
        return self._sign() * ta
        ### END SOLUTION


class Cast(Function):
    """A change of dtype; the gradient is cast back to the input's dtype."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = np.dtype(dtype)

    def forward(self, a: Any) -> Any:
        return a.astype(self.dtype)

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        return (cast(gy, self.inputs[0].dtype),)

    def jvp(self, ta: Tensor) -> Tensor:
        return cast(ta, self.dtype)


class ToDevice(Function):
    """A copy to another device; the gradient is copied back."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, *inputs: Tensor) -> Tensor:
        out = super().__call__(*inputs)
        out.device = self.target
        return out

    def forward(self, a: Any) -> Any:
        host = get_backend(self.inputs[0].device).to_host(a)
        return get_backend(self.target).asarray(host)

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        return (gy.to(self.inputs[0].device),)

    def jvp(self, ta: Tensor) -> Tensor:
        return ta.to(self.target)


# ---------------------------------------------------------------------------------------------
# reductions
# ---------------------------------------------------------------------------------------------


class Sum(Function):
    """Sum over ``axis`` (a tuple of axes, or ``None`` for all)."""

    def __init__(self, axis: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a: Any) -> Any:
        """The sum of a over self.axis (a tuple of axes, or None for all), keeping the reduced
        axes as length 1 when self.keepdims."""
        ### BEGIN SOLUTION hw1
        return a.sum(axis=self.axis, keepdims=self.keepdims)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """Every summed element has derivative 1: copy the cotangent back over the summed
        axes (reshape it to the keepdims shape, then broadcast to the input's shape)."""
        ### BEGIN SOLUTION hw1
        return (_expand_reduced(gy, self.inputs[0].shape, self.axis),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """Sum is linear: t = sum(ta)."""
        ### BEGIN SOLUTION hw1
        return sum(ta, self.axis, self.keepdims)
        ### END SOLUTION


class Max(Function):
    """Maximum over ``axis``. Where several elements tie for the maximum, the gradient is
    shared equally between them (any split is a valid subgradient; this one is symmetric)."""

    def __init__(self, axis: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a: Any) -> Any:
        """The maximum of a over self.axis (keepdims as in Sum). Also store in self.weights the
        arg-max weights backward needs: 1 where a equals the maximum of its group, divided by
        the number of such ties (so each group's weights sum to 1), 0 elsewhere."""
        ### BEGIN SOLUTION hw1
        y = a.max(axis=self.axis, keepdims=True)
        mask = (a == y).astype(a.dtype)
        self.weights = mask / mask.sum(axis=self.axis, keepdims=True)
        return y if self.keepdims else y.reshape(_reduced_shape(a.shape, self.axis))
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """The cotangent goes to the position(s) of the maximum: expand it back over the
        reduced axes (_expand_reduced) and multiply by the weights forward stored (1 at a
        unique maximum, 1/k at each of k tied maxima, 0 elsewhere), as a constant
        Tensor._make(self.weights, a.device)."""
        ### BEGIN SOLUTION hw1
        a = self.inputs[0]
        weights = Tensor._make(self.weights, a.device)
        return (_expand_reduced(gy, a.shape, self.axis) * weights,)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = the tangent at the arg-max (the weighted sum over the reduced axes)."""
        ### BEGIN SOLUTION hw1
        weights = Tensor._make(self.weights, ta.device)
        return sum(ta * weights, self.axis, self.keepdims)
        ### END SOLUTION


def _reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...] | None) -> tuple[int, ...]:
    if axis is None:
        return ()
    return tuple(n for i, n in enumerate(shape) if i not in axis)


class LogSumExp(Function):
    """``log(sum(exp(a), axis))``, stable for any magnitude: with m the maximum over
    ``axis``, it equals ``m + log(sum(exp(a - m)))``, where no exp overflows."""

    def __init__(self, axis: tuple[int, ...] | None, keepdims: bool) -> None:
        self.axis = axis
        self.keepdims = keepdims

    def forward(self, a: Any) -> Any:
        """log(sum(exp(a), axis)), stable: with m = max(a, axis, keepdims=True) (taken as 0
        where it is not finite, e.g. a row of -inf), m + log(sum(exp(a - m), axis))."""
        ### BEGIN SOLUTION hw1
        xp = self.xp
        m = a.max(axis=self.axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(a - m).sum(axis=self.axis, keepdims=True)) + m
        return y if self.keepdims else y.reshape(_reduced_shape(a.shape, self.axis))
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """The derivative is softmax(a) = exp(a - y) (y the output, expanded back over the
        reduced axes); written with the output so that it is differentiable again."""
        ### BEGIN SOLUTION hw1
        a = self.inputs[0]
        y = _expand_reduced(self.output, a.shape, self.axis)
        return (_expand_reduced(gy, a.shape, self.axis) * exp(a - y),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = sum(softmax(a) * ta, axis)."""
        ### BEGIN SOLUTION hw1
        a = self.inputs[0]
        p = exp(a - _expand_reduced(self.output, a.shape, self.axis))
        return sum(p * ta, self.axis, self.keepdims)
        ### END SOLUTION


class Softmax(Function):
    """``exp(a) / sum(exp(a), axis)``, computed as ``exp(a - max)`` normalised (stable)."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, a: Any) -> Any:
        """exp(a) / sum(exp(a), axis, keepdims=True), stable: subtract the maximum over
        the axis before exp (softmax does not change when a constant is added to a row)."""
        ### BEGIN SOLUTION hw1
        e = self.xp.exp(a - a.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """With y the output: ga = y * (gy - sum(gy * y, axis, keepdims=True))."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return (y * (gy - sum(gy * y, self.axis, keepdims=True)),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = y * (ta - sum(y * ta, axis, keepdims=True))."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return y * (ta - sum(y * ta, self.axis, keepdims=True))
        ### END SOLUTION


class LogSoftmax(Function):
    """``a - logsumexp(a, axis)``, stable: ``(a - m) - log(sum(exp(a - m)))``."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, a: Any) -> Any:
        """a - logsumexp(a, axis, keepdims=True), stable: with s = a - max(a, axis),
        s - log(sum(exp(s), axis))."""
        ### BEGIN SOLUTION hw1
        xp = self.xp
        shifted = a - a.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """With y the output (so exp(y) = softmax(a)):
        ga = gy - exp(y) * sum(gy, self.axis, keepdims=True), with this module's exp and
        sum on self.output (Tensors, so that it can be differentiated again). Keep the
        reduced axis (keepdims=True) so that the sum broadcasts back along the same axis:
        without it, for axis=-1 (or 1) an (n, n) input broadcasts the row sums along the
        wrong axis and the shapes still fit (for axis=0 it happens to be right: test both)."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return (gy - exp(y) * sum(gy, self.axis, keepdims=True),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """t = ta - sum(exp(y) * ta, axis, keepdims=True)."""
        ### BEGIN SOLUTION hw1
        y = self.output
        return ta - sum(exp(y) * ta, self.axis, keepdims=True)
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# shape ops
# ---------------------------------------------------------------------------------------------


class Reshape(Function):
    """The same elements in a new shape."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a: Any) -> Any:
        return a.reshape(self.shape)

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        return (reshape(gy, self.inputs[0].shape),)

    def jvp(self, ta: Tensor) -> Tensor:
        return reshape(ta, self.shape)


class Transpose(Function):
    """Permute the axes (``axes`` as in ``numpy.transpose``)."""

    def __init__(self, axes: tuple[int, ...]) -> None:
        self.axes = axes

    def forward(self, a: Any) -> Any:
        """a with its axes permuted by self.axes (as numpy.transpose)."""
        ### BEGIN SOLUTION hw1
        return a.transpose(self.axes)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """Apply the inverse permutation (``numpy.argsort(axes)``) to the cotangent."""
        ### BEGIN SOLUTION hw1
        return (transpose(gy, *np.argsort(self.axes).tolist()),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """Linear: t = transpose(ta)."""
        ### BEGIN SOLUTION hw1
        return transpose(ta, *self.axes)
        ### END SOLUTION


class BroadcastTo(Function):
    """Broadcast to ``shape`` (NumPy's rules)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a: Any) -> Any:
        """a broadcast to self.shape (self.xp.broadcast_to)."""
        ### BEGIN SOLUTION hw1
        return self.xp.broadcast_to(a, self.shape)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """Each input element was copied to several outputs: sum the cotangent back."""
        ### BEGIN SOLUTION hw1
        return (sum_to(gy, self.inputs[0].shape),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """Linear: t = broadcast_to(ta)."""
        ### BEGIN SOLUTION hw1
        return broadcast_to(ta, self.shape)
        ### END SOLUTION


class SumTo(Function):
    """Sum down to ``shape``: the reverse of :class:`BroadcastTo` (and its gradient)."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape

    def forward(self, a: Any) -> Any:
        return _sum_to_array(self.xp, a, self.shape)

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        return (broadcast_to(gy, self.inputs[0].shape),)

    def jvp(self, ta: Tensor) -> Tensor:
        return sum_to(ta, self.shape)


def _is_basic_index(index: tuple[Any, ...]) -> bool:
    """True when ``index`` has only ints, slices, None and Ellipsis (so no element repeats)."""
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in index)


class GetItem(Function):
    """``a[index]``: basic slicing and integer-array (or boolean mask) indexing."""

    def __init__(self, index: tuple[Any, ...]) -> None:
        self.index = index

    def forward(self, a: Any) -> Any:
        """a[self.index] (basic slices, integers, integer or boolean arrays)."""
        ### BEGIN SOLUTION hw1
        return a[self.index]
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """Scatter the cotangent back into zeros of the input's shape; an element picked
        several times (an index array with repeats) receives the sum (:class:`ScatterAdd`)."""
        ### BEGIN SOLUTION hw1
        return (ScatterAdd(self.index, self.inputs[0].shape)(gy),)
        ### END SOLUTION

    def jvp(self, ta: Tensor) -> Tensor:
        """Linear: t = ta[index]."""
        ### BEGIN SOLUTION hw1
        return GetItem(self.index)(ta)
        ### END SOLUTION


class ScatterAdd(Function):
    """Zeros of ``shape`` with ``g`` added at ``index`` (the gradient of :class:`GetItem`)."""

    def __init__(self, index: tuple[Any, ...], shape: tuple[int, ...]) -> None:
        self.index = index
        self.shape = shape

    def forward(self, g: Any) -> Any:
        """Zeros of self.shape (self.xp.zeros(self.shape, dtype=g.dtype)) with g added at
        self.index. Repeated indices must add up: x[[0, 0]] uses row 0 twice, so its
        gradient gets both rows of g. For an index with arrays in it, call the scatter_add
        of the input's backend, get_backend(self.inputs[0].device), with out, self.index and
        g: it adds in place. When _is_basic_index(self.index) (only ints, slices, None and
        Ellipsis: every element hit at most once) a plain assignment out[self.index] = g is
        enough, and faster."""
        ### BEGIN SOLUTION hw1
        out = self.xp.zeros(self.shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            out[self.index] = g  # a view: every element is hit at most once
        else:
            get_backend(self.inputs[0].device).scatter_add(out, self.index, g)
        return out
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """Its adjoint is indexing: gy[index]."""
        ### BEGIN SOLUTION hw1
        return (GetItem(self.index)(gy),)
        ### END SOLUTION

    def jvp(self, tg: Tensor) -> Tensor:
        """Linear: t = scatter_add(tg)."""
        ### BEGIN SOLUTION hw1
        return ScatterAdd(self.index, self.shape)(tg)
        ### END SOLUTION


class Concatenate(Function):
    """Join tensors along an existing ``axis``."""

    def __init__(self, axis: int) -> None:
        self.axis = axis

    def forward(self, *xs: Any) -> Any:
        """The inputs joined along self.axis."""
        ### BEGIN SOLUTION hw1
        return self.xp.concatenate(xs, axis=self.axis)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor, ...]:
        """Each input gets its own slice of the cotangent along ``axis``."""
        ### BEGIN SOLUTION hw1
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for x in self.inputs:
            stop = start + x.shape[self.axis]
            grads.append(gy[lead + (slice(start, stop),)])
            start = stop
        return tuple(grads)
        ### END SOLUTION

    def jvp(self, *tangents: Tensor) -> Tensor:
        """Linear: t = concatenate(tangents)."""
        ### BEGIN SOLUTION hw1
        return Concatenate(self.axis)(*tangents)
        ### END SOLUTION


class Where(Function):
    """``cond ? a : b`` elementwise, with a constant boolean ``cond`` (broadcasting)."""

    def __init__(self, cond: Any) -> None:
        self.cond = cond

    def forward(self, a: Any, b: Any) -> Any:
        """Elementwise self.cond ? a : b (broadcasting)."""
        ### BEGIN SOLUTION hw1
        return self.xp.where(self.cond, a, b)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """The cotangent goes to ``a`` where cond holds, to ``b`` elsewhere (zeros in the other
        places), each summed back to its input's shape."""
        ### BEGIN SOLUTION hw1
        a, b = self.inputs
        ga = sum_to(where(self.cond, gy, 0.0), a.shape) if a.requires_grad_ else None
        gb = sum_to(where(self.cond, 0.0, gy), b.shape) if b.requires_grad_ else None
        return ga, gb
        ### END SOLUTION

    def jvp(self, ta: Tensor, tb: Tensor) -> Tensor:
        """t = where(cond, ta, tb)."""
        ### BEGIN SOLUTION hw1
        return where(self.cond, ta, tb)
        ### END SOLUTION


# ---------------------------------------------------------------------------------------------
# the functions users call (tg.exp, tg.sum, ...) and the Tensor methods built on them
# ---------------------------------------------------------------------------------------------


def add(a: Any, b: Any) -> Tensor:
    return Add()(*_pair(a, b))


def sub(a: Any, b: Any) -> Tensor:
    return Sub()(*_pair(a, b))


def mul(a: Any, b: Any) -> Tensor:
    return Mul()(*_pair(a, b))


def div(a: Any, b: Any) -> Tensor:
    return Div()(*_pair(a, b))


def pow(a: Any, b: Any) -> Tensor:  # noqa: A001  (tg.pow, as torch.pow)
    return Pow()(*_pair(a, b))


def neg(a: Tensor) -> Tensor:
    return Neg()(a)


def matmul(a: Any, b: Any) -> Tensor:
    """``a @ b`` with NumPy's rules: 1-D operands are treated as a row / column vector, and
    leading dimensions broadcast (batched matmul)."""
    a, b = _pair(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalar operands (shapes {a.shape} and {b.shape}); use *")
    if a.shape[-1] != b.shape[0 if b.ndim == 1 else -2]:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not align: the last axis of the first "
            f"({a.shape[-1]}) must equal the {'only' if b.ndim == 1 else 'second-to-last'} "
            f"axis of the second ({b.shape[0 if b.ndim == 1 else -2]})"
        )
    if a.ndim == 1 and b.ndim == 1:
        return sum(a * b)
    if a.ndim == 1:
        return reshape(MatMul()(reshape(a, (1, -1)), b), b.shape[:-2] + b.shape[-1:])
    if b.ndim == 1:
        return reshape(MatMul()(a, reshape(b, (-1, 1))), a.shape[:-1])
    return MatMul()(a, b)


def exp(x: Tensor) -> Tensor:
    return Exp()(x)


def log(x: Tensor) -> Tensor:
    return Log()(x)


def sqrt(x: Tensor) -> Tensor:
    return Sqrt()(x)


def sin(x: Tensor) -> Tensor:
    return Sin()(x)


def cos(x: Tensor) -> Tensor:
    return Cos()(x)


def tanh(x: Tensor) -> Tensor:
    return Tanh()(x)


def sigmoid(x: Tensor) -> Tensor:
    return Sigmoid()(x)


def relu(x: Tensor) -> Tensor:
    return ReLU()(x)


def abs(x: Tensor) -> Tensor:  # noqa: A001
    return Abs()(x)


def cast(x: Tensor, dtype: Any) -> Tensor:
    if np.dtype(dtype) == x.dtype:
        return x
    return Cast(dtype)(x)


def to_device(x: Tensor, device: str) -> Tensor:
    get_backend(device)  # a clear error now if the device is unavailable
    return ToDevice(device)(x)


def sum(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return Sum(_normalize_axis(axis, x.ndim), keepdims)(x)


def mean(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The average over ``axis``: a sum scaled by 1/count (no op of its own)."""
    axes = _normalize_axis(axis, x.ndim)
    count = x.size if axes is None else int(np.prod([x.shape[i] for i in axes]))
    return sum(x, axes, keepdims) * (1.0 / builtins.max(count, 1))


def max(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    if x.size == 0:
        raise ValueError("max() of an empty tensor")
    return Max(_normalize_axis(axis, x.ndim), keepdims)(x)


def min(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    return -max(-x, axis, keepdims)


def logsumexp(x: Tensor, axis: Axis = None, keepdims: bool = False) -> Tensor:
    return LogSumExp(_normalize_axis(axis, x.ndim), keepdims)(x)


def _single_axis(axis: int, ndim: int) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for a tensor with {ndim} dimensions")
    return axis % ndim


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Softmax(_single_axis(axis, x.ndim))(x)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax(_single_axis(axis, x.ndim))(x)


def _shape_arg(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


def reshape(x: Tensor, *shape: Any) -> Tensor:
    """``x`` in a new shape (one entry may be -1, inferred as in NumPy)."""
    target = _shape_arg(shape)
    if target == x.shape:
        return x
    try:
        return Reshape(np.empty(x.shape, dtype=np.bool_).reshape(target).shape)(x)
    except ValueError:
        raise ValueError(f"cannot reshape a tensor of shape {x.shape} into {target}") from None


def transpose(x: Tensor, *axes: Any) -> Tensor:
    """Permute axes; without arguments, reverse them (``x.T``)."""
    perm = _shape_arg(axes) if axes else tuple(range(x.ndim))[::-1]
    if sorted(a % builtins.max(x.ndim, 1) for a in perm) != list(range(x.ndim)):
        raise ValueError(f"transpose: {perm} is not a permutation of the axes of {x.shape}")
    perm = tuple(a % x.ndim for a in perm)
    if perm == tuple(range(x.ndim)):
        return x
    return Transpose(perm)(x)


def swapaxes(x: Tensor, axis1: int, axis2: int) -> Tensor:
    perm = list(range(x.ndim))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(x, *perm)


def broadcast_to(x: Tensor, shape: Any) -> Tensor:
    shape = _shape_arg((shape,) if not isinstance(shape, tuple) else shape)
    if shape == x.shape:
        return x
    try:
        np.broadcast_shapes(x.shape, shape)
        if np.broadcast_shapes(x.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"cannot broadcast a tensor of shape {x.shape} to {shape}") from None
    return BroadcastTo(shape)(x)


def sum_to(x: Tensor, shape: tuple[int, ...]) -> Tensor:
    """Sum ``x`` down to ``shape`` (undoing a broadcast from ``shape``)."""
    if x.shape == tuple(shape):
        return x
    return SumTo(tuple(shape))(x)


def _index_arg(index: Any, device: str) -> tuple[Any, ...]:
    """An index with Tensors replaced by arrays on ``device``."""
    if not isinstance(index, tuple):
        index = (index,)
    backend = get_backend(device)
    out = []
    for i in index:
        if isinstance(i, Tensor):
            i = i.data
        if isinstance(i, (list, np.ndarray)) or device_of_array(i) != "cpu":
            i = backend.asarray(i)
            if i.dtype.kind not in "iub":
                raise IndexError(f"tensors used as indices must be integer or bool, not {i.dtype}")
        out.append(i)
    return tuple(out)


def getitem(x: Tensor, index: Any) -> Tensor:
    return GetItem(_index_arg(index, x.device))(x)


def concatenate(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate() needs at least one tensor")
    ndim = tensors[0].ndim
    for t in tensors:
        if t.ndim != ndim:
            raise ValueError(
                "concatenate: all tensors need the same number of dimensions, got shapes "
                + ", ".join(str(t.shape) for t in tensors)
            )
    return Concatenate(_single_axis(axis, ndim))(*tensors)


def stack(tensors: Sequence[Tensor], axis: int = 0) -> Tensor:
    """Join along a new ``axis`` (a reshape of each, then :func:`concatenate`)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack() needs at least one tensor")
    shape = tensors[0].shape
    for t in tensors:
        if t.shape != shape:
            raise ValueError(
                "stack: all tensors need the same shape, got "
                + ", ".join(str(t.shape) for t in tensors)
            )
    axis = _single_axis(axis, len(shape) + 1)
    expanded = shape[:axis] + (1,) + shape[axis:]
    return concatenate([reshape(t, expanded) for t in tensors], axis)


def where(cond: Any, a: Any, b: Any) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (all three broadcast); no gradient to cond."""
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        a, b = _pair(a, b)
    else:
        a, b = _pair(Tensor(a), b)
    cond_data = cond.data if isinstance(cond, Tensor) else get_backend(a.device).asarray(cond)
    if cond_data.dtype != np.bool_:
        cond_data = cond_data.astype(bool)
    return Where(cond_data)(a, b)


def _compare(op: str) -> Any:
    ufunc = {
        "eq": "equal",
        "ne": "not_equal",
        "lt": "less",
        "le": "less_equal",
        "gt": "greater",
        "ge": "greater_equal",
    }[op]

    def compare(a: Tensor, b: Any) -> Tensor:
        a, b = _pair(a, b)
        if a.device != b.device:
            raise ValueError(f"comparison got tensors on {a.device} and {b.device}: use .to()")
        return Tensor._make(getattr(a.backend.xp, ufunc)(a.data, b.data), a.device)

    compare.__name__ = f"__{op}__"
    return compare


def _bind_methods() -> None:
    """The Tensor operators and methods are the functions above."""

    def rsub(a: Tensor, b: Any) -> Tensor:
        return sub(b, a)

    def rdiv(a: Tensor, b: Any) -> Tensor:
        return div(b, a)

    def rpow(a: Tensor, b: Any) -> Tensor:
        return pow(b, a)

    def rmatmul(a: Tensor, b: Any) -> Tensor:
        return matmul(b, a)

    table = {
        "__add__": add,
        "__radd__": add,
        "__sub__": sub,
        "__rsub__": rsub,
        "__mul__": mul,
        "__rmul__": mul,
        "__truediv__": div,
        "__rtruediv__": rdiv,
        "__pow__": pow,
        "__rpow__": rpow,
        "__matmul__": matmul,
        "__rmatmul__": rmatmul,
        "__neg__": neg,
        "__getitem__": getitem,
        "exp": exp,
        "log": log,
        "sqrt": sqrt,
        "sin": sin,
        "cos": cos,
        "tanh": tanh,
        "sigmoid": sigmoid,
        "relu": relu,
        "abs": abs,
        "__abs__": abs,
        "sum": sum,
        "mean": mean,
        "max": max,
        "min": min,
        "logsumexp": logsumexp,
        "softmax": softmax,
        "log_softmax": log_softmax,
        "reshape": reshape,
        "transpose": transpose,
        "broadcast_to": broadcast_to,
        "sum_to": sum_to,
        "swapaxes": swapaxes,
    }
    for name, fn in table.items():
        setattr(Tensor, name, fn)
    for op in ("eq", "ne", "lt", "le", "gt", "ge"):
        setattr(Tensor, f"__{op}__", _compare(op))
    # == is elementwise, so hashing falls back to identity, as for PyTorch tensors
    Tensor.__hash__ = object.__hash__  # type: ignore[method-assign,assignment]


_bind_methods()

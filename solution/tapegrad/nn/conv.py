"""Convolution by im2col, and max pooling.

A 2-D convolution slides a (C, kh, kw) filter over the input and takes a dot product at
every position. *im2col* turns that into one matrix product: copy each receptive field (a
patch of the input) into a row of a matrix, and every output pixel becomes that row times
the flattened filter:

    cols = im2col(x)                      (N*OH*OW, C*kh*kw)   one row per output pixel
    out  = cols @ weight.reshape(O, -1).T (N*OH*OW, O)         + bias
    out  -> reshape (N, OH, OW, O) -> transpose to (N, O, OH, OW)

Only im2col needs a Function of its own (:class:`Im2Col`); the rest is ops we have. The
gradient of im2col is *col2im* (:class:`Col2Im`): add each row back onto the patch it was
copied from, summing where patches overlap. The two are adjoint (transposes of one linear
map), so each is the other's backward, and gradients of any order work.

Layout: NCHW, and a weight (out_channels, in_channels, kh, kw), as in PyTorch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .. import ops
from ..tensor import Function, Tensor
from . import init
from .module import Module, Parameter

__all__ = [
    "Im2Col", "Col2Im", "im2col", "col2im", "conv_output_size", "conv2d", "max_pool2d",
    "Conv2d", "MaxPool2d",
]  # fmt: skip

Pair = tuple[int, int]


def _pair(value: int | tuple[int, int], name: str, minimum: int = 1) -> Pair:
    """An int or a pair of ints as a pair, each at least ``minimum``."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
    return int(pair[0]), int(pair[1])


def conv_output_size(size: Pair, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """(OH, OW) = ((H + 2*ph - kh) // sh + 1, (W + 2*pw - kw) // sw + 1)."""
    dims = zip(size, kernel, stride, padding, strict=True)
    out = tuple((n + 2 * p - k) // s + 1 for n, k, s, p in dims)
    if min(out) < 1:
        raise ValueError(
            f"kernel {kernel} does not fit in the input {size} padded by {padding}: make the "
            "input larger, the kernel smaller, or add padding"
        )
    return out  # type: ignore[return-value]


class Im2Col(Function):
    """Patches of an image batch as the rows of a matrix.

    Input x (N, C, H, W); output (N*OH*OW, C*kh*kw). Row ``(n*OH + oh)*OW + ow`` holds the
    patch of image n seen by output pixel (oh, ow), flattened in (c, i, j) order, which is
    the order of ``weight.reshape(O, C*kh*kw)``:

        cols[(n, oh, ow), (c, i, j)] = x_pad[n, c, oh*sh + i, ow*sw + j]

    where x_pad is x zero-padded by ph rows and pw columns on each side.
    """

    def __init__(self, kernel: Pair, stride: Pair, padding: Pair) -> None:
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x: Any) -> Any:
        """Pad x (``self.xp.pad``), then fill an array of shape (N, OH, OW, C, kh, kw) and
        reshape it to (N*OH*OW, C*kh*kw). Loop over the kh*kw kernel offsets (i, j) only,
        never over pixels: for one offset, the entries x_pad[:, :, i + sh*oh, j + sw*ow] for
        all (oh, ow) are the strided slice ``x_pad[:, :, i : i + sh*OH : sh, j : j + sw*OW :
        sw]`` (N, C, OH, OW), which goes to ``[:, :, :, :, i, j]`` after a transpose."""
        ### BEGIN SOLUTION hw3
        xp = self.xp
        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = conv_output_size((h, w), self.kernel, self.stride, self.padding)
        if ph or pw:
            x = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        cols = xp.empty((n, oh, ow, c, kh, kw), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                patch = x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
                cols[:, :, :, :, i, j] = patch.transpose(0, 2, 3, 1)
        return cols.reshape(n * oh * ow, c * kh * kw)
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """im2col is linear and its adjoint is col2im: gx = Col2Im(x.shape, ...)(gy)."""
        ### BEGIN SOLUTION hw3
        return (Col2Im(self.inputs[0].shape, self.kernel, self.stride, self.padding)(gy),)
        ### END SOLUTION

    def jvp(self, tx: Tensor) -> Tensor:
        """Linear: t = im2col(tx)."""
        ### BEGIN SOLUTION hw3
        return Im2Col(self.kernel, self.stride, self.padding)(tx)
        ### END SOLUTION


class Col2Im(Function):
    """The adjoint of :class:`Im2Col`: rows (N*OH*OW, C*kh*kw) added back into an image
    batch of shape ``x_shape`` (N, C, H, W). Every entry of a row is added to the pixel it
    was copied from; pixels covered by several patches receive the sum; padding is dropped:

        x_pad[n, c, oh*sh + i, ow*sw + j] += cols[(n, oh, ow), (c, i, j)]
    """

    def __init__(self, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair):
        self.x_shape = tuple(x_shape)
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, cols: Any) -> Any:
        """Reshape cols to (N, OH, OW, C, kh, kw); start from zeros of the padded shape
        (N, C, H + 2ph, W + 2pw); for each kernel offset (i, j) add the transposed slice
        ``[:, :, :, :, i, j]`` into ``x_pad[:, :, i : i + sh*OH : sh, j : j + sw*OW : sw]``
        (within one offset no pixel repeats, so ``+=`` is exact; overlaps between offsets
        accumulate over the loop); return the unpadded centre."""
        ### BEGIN SOLUTION hw3
        n, c, h, w = self.x_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = conv_output_size((h, w), self.kernel, self.stride, self.padding)
        patches = cols.reshape(n, oh, ow, c, kh, kw)
        x = self.xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
        for i in range(kh):
            for j in range(kw):
                x[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw] += patches[
                    :, :, :, :, i, j
                ].transpose(0, 3, 1, 2)
        return x[:, :, ph : ph + h, pw : pw + w]
        ### END SOLUTION

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """col2im is linear and its adjoint is im2col: gcols = Im2Col(...)(gy)."""
        ### BEGIN SOLUTION hw3
        return (Im2Col(self.kernel, self.stride, self.padding)(gy),)
        ### END SOLUTION

    def jvp(self, tcols: Tensor) -> Tensor:
        """Linear: t = col2im(tcols)."""
        ### BEGIN SOLUTION hw3
        return Col2Im(self.x_shape, self.kernel, self.stride, self.padding)(tcols)
        ### END SOLUTION


def im2col(x: Tensor, kernel_size: Any, stride: Any = 1, padding: Any = 0) -> Tensor:
    """:class:`Im2Col` of ``x`` (N, C, H, W): the (N*OH*OW, C*kh*kw) matrix of its patches."""
    if x.ndim != 4:
        raise ValueError(f"im2col expects input of shape (N, C, H, W), got {x.shape}")
    kernel = _pair(kernel_size, "kernel_size")
    return Im2Col(kernel, _pair(stride, "stride"), _pair(padding, "padding", 0))(x)


def col2im(
    cols: Tensor, x_shape: tuple[int, ...], kernel_size: Any, stride: Any = 1, padding: Any = 0
) -> Tensor:
    """:class:`Col2Im`: the rows of ``cols`` summed back into an image of shape ``x_shape``."""
    kernel = _pair(kernel_size, "kernel_size")
    return Col2Im(x_shape, kernel, _pair(stride, "stride"), _pair(padding, "padding", 0))(cols)


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0
) -> Tensor:
    """2-D cross-correlation (what deep learning calls convolution), as a matrix product:

        out[n, o, oh, ow] = bias[o] + sum_{c,i,j} weight[o, c, i, j] * x_pad[n, c, oh*sh+i, ow*sw+j]

    ``x`` (N, C, H, W), ``weight`` (O, C, kh, kw), ``bias`` (O,) or None; ``stride`` and
    ``padding`` ints or pairs. Returns (N, O, OH, OW). Compute it as

        im2col(x) @ weight.reshape(O, C*kh*kw).T   (N*OH*OW, O), + bias,

    then reshape to (N, OH, OW, O) and transpose to (N, O, OH, OW), all with tapegrad ops.
    """
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv2d expects input (N, C, H, W) and weight (O, C, kh, kw), got {x.shape} and "
            f"{weight.shape}"
        )
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"conv2d: the input has {x.shape[1]} channels but the weight expects "
            f"{weight.shape[1]} (weight shape {weight.shape})"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"conv2d: bias must have shape ({weight.shape[0]},), got {bias.shape}")
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding", 0)
    ### BEGIN SOLUTION hw3
    n = x.shape[0]
    o, c, kh, kw = weight.shape
    oh, ow = conv_output_size((x.shape[2], x.shape[3]), (kh, kw), stride, padding)
    cols = Im2Col((kh, kw), stride, padding)(x)
    out = cols @ ops.reshape(weight, (o, c * kh * kw)).T
    if bias is not None:
        out = out + bias
    return ops.transpose(ops.reshape(out, (n, oh, ow, o)), 0, 3, 1, 2)
    ### END SOLUTION


def max_pool2d(x: Tensor, kernel_size: Any) -> Tensor:
    """Max pooling over non-overlapping k x k windows (stride = kernel size):

        out[n, c, a, b] = max_{i<kh, j<kw} x[n, c, a*kh + i, b*kw + j]

    ``x`` (N, C, H, W) -> (N, C, H // kh, W // kw). Rows and columns that do not fill a
    whole window are dropped (PyTorch's floor mode). Compose it from ops: crop by indexing,
    reshape to (N, C, OH, kh, OW, kw), take the max over axes (3, 5); the gradient then goes
    to the arg-max of each window.
    """
    if x.ndim != 4:
        raise ValueError(f"max_pool2d expects input of shape (N, C, H, W), got {x.shape}")
    kh, kw = _pair(kernel_size, "kernel_size")
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    if oh < 1 or ow < 1:
        raise ValueError(f"max_pool2d: window {(kh, kw)} is larger than the input {(h, w)}")
    ### BEGIN SOLUTION hw3
    if (oh * kh, ow * kw) != (h, w):
        x = x[:, :, : oh * kh, : ow * kw]
    return ops.max(ops.reshape(x, (n, c, oh, kh, ow, kw)), axis=(3, 5))
    ### END SOLUTION


class Conv2d(Module):
    """2-D convolution layer: weight (out_channels, in_channels, kh, kw), bias (out_channels,),
    initialised as PyTorch's (see :meth:`reset_parameters`)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Pair,
        stride: int | Pair = 1,
        padding: int | Pair = 0,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.padding = _pair(padding, "padding", 0)
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(np.zeros(shape, dtype=np.float32))
        self.bias = Parameter(np.zeros(out_channels, dtype=np.float32)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: ``init.kaiming_uniform_(weight, a=sqrt(5))`` (bound
        1/sqrt(fan_in), fan_in = in_channels*kh*kw), and the bias uniform on
        [-1/sqrt(fan_in), 1/sqrt(fan_in)]."""
        ### BEGIN SOLUTION hw3
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(init.fan_in_and_fan_out(self.weight)[0])
            init.uniform_(self.bias, -bound, bound)
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}"
        )


class MaxPool2d(Module):
    """Max pooling over non-overlapping ``kernel_size`` windows (see :func:`max_pool2d`)."""

    def __init__(self, kernel_size: int | Pair) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size, "kernel_size")

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"

"""``tg.nn.functional``: the layers as plain functions of tensors (parameters passed in),
as ``torch.nn.functional``. The modules of :mod:`tapegrad.nn` hold the parameters and call
these; use them directly for gradient checks with respect to the parameters.

Everything here is composed of tapegrad ops, so gradients (of any order) come for free;
only the losses, the convolution and the affine map (fused for speed: it runs twice per layer
per training step) have Functions of their own.
"""

from __future__ import annotations

from typing import Any

from .. import ops, random
from ..ops import log_softmax, relu, sigmoid, softmax, tanh  # re-exported: F.relu, ...
from ..tensor import Function, Tensor, is_grad_enabled
from .conv import conv2d, max_pool2d
from .losses import cross_entropy, mse_loss

__all__ = [
    "linear", "relu", "sigmoid", "tanh", "softmax", "log_softmax", "flatten", "dropout",
    "batch_norm", "layer_norm", "cross_entropy", "mse_loss", "conv2d", "max_pool2d",
]  # fmt: skip


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """The affine map y = x @ weight.T + bias.

    ``x`` (..., in), ``weight`` (out, in) as PyTorch stores it, ``bias`` (out,) or None;
    returns (..., out). The bias broadcasts over the batch.

    A layer is syntactic sugar over the ops of homework 1: ``x @ weight.T + bias`` (or
    without the bias) is a correct answer, graded like any other. The fused :class:`Affine`
    below computes the same in one op (one tape entry instead of three, a hand-written
    backward): write it once the composed version works, and call it here.
    """
    raise NotImplementedError("hw2: linear")


class Affine(Function):
    """``x @ weight.T + bias`` as one op: the same value as the three ops it replaces
    (transpose, matmul, add), with fewer steps on the tape."""

    def forward(self, x: Any, weight: Any, bias: Any = None) -> Any:
        """y = x @ weight.T (+ bias): x (..., in), weight (out, in), bias (out,)."""
        raise NotImplementedError("hw2: Affine.forward")

    def backward(self, gy: Tensor) -> tuple[Tensor | None, ...]:
        """With g = gy flattened to (N, out) and x to (N, in): grad_x = gy @ weight,
        grad_weight = g.T @ x, grad_bias = the sum of g over its rows. A first-order pass
        (recording off) computes them on the arrays directly; with ``create_graph`` they are
        built from tapegrad ops, so they can be differentiated again."""
        raise NotImplementedError("hw2: Affine.backward")

    def jvp(self, *tangents: Tensor) -> Tensor:
        """t = tx @ weight.T + x @ tweight.T (+ tbias)."""
        raise NotImplementedError("hw2: Affine.jvp")


def flatten(x: Tensor, start_dim: int = 1) -> Tensor:
    """``x`` with the dimensions from ``start_dim`` on merged into one: (N, C, H, W) becomes
    (N, C*H*W) with the default ``start_dim=1`` (the batch dimension is kept)."""
    raise NotImplementedError("hw2: flatten")


def _check_p(p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(
            f"dropout probability must be in [0, 1), got {p}: it is the fraction of inputs "
            "zeroed, so p=0.5 drops half"
        )
    return float(p)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout. In training, each element is zeroed independently with probability
    ``p`` and the survivors are scaled by 1/(1-p), so that the expected value of every
    element is unchanged and nothing needs rescaling at test time:

        y = x * mask / (1 - p),   mask[i] = 1 with probability 1-p, else 0.

    Outside training (or with p == 0), return ``x`` itself. Draw the mask on ``x``'s device
    with ``random.rand(x.shape, x.dtype, x.device)`` (uniform on [0, 1): keep where it is
    >= p) and wrap it as a constant Tensor: no gradient flows into the mask.
    """
    p = _check_p(p)
    raise NotImplementedError("hw2: dropout")


def batch_norm(
    x: Tensor,
    running_mean: Tensor | None,
    running_var: Tensor | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation of ``x`` (N, C), each of the C features separately.

    Training: with the batch statistics over the N rows,

        mean = (1/N) sum_n x[n],   var = (1/N) sum_n (x[n] - mean)**2   (biased)
        x_hat = (x - mean) / sqrt(var + eps)

    and, when running statistics are given, update them in place (raw arrays, no graph;
    PyTorch's momentum convention, the running variance with the *unbiased* batch variance):

        running_mean = (1 - momentum) * running_mean + momentum * mean
        running_var  = (1 - momentum) * running_var  + momentum * var * N / (N - 1)

    Evaluation: x_hat = (x - running_mean) / sqrt(running_var + eps), constants.
    Then y = x_hat * weight + bias (each (C,), skipped when None). The gradient flows
    through the batch mean and variance too: compose tapegrad ops and autodiff does it.
    """
    if x.ndim != 2:
        raise ValueError(f"batch_norm expects input of shape (N, C), got {x.shape}")
    if training and x.shape[0] < 2:
        raise ValueError(
            f"batch_norm in training needs more than one sample per feature, got input of "
            f"shape {x.shape}: use a larger batch, or eval() mode"
        )
    if not training and (running_mean is None or running_var is None):
        raise ValueError("batch_norm outside training needs running_mean and running_var")
    raise NotImplementedError("hw2: batch_norm")


def layer_norm(
    x: Tensor,
    normalized_shape: int | tuple[int, ...],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Layer normalisation: each sample normalised over its last dimensions (those of
    ``normalized_shape``, usually just the features), with statistics of its own:

        mean = mean(x, axes),  var = mean((x - mean)**2, axes)   (biased; keepdims)
        y = (x - mean) / sqrt(var + eps) * weight + bias

    ``weight`` and ``bias`` have shape ``normalized_shape`` (skipped when None). Unlike
    batch norm it behaves the same in training and evaluation.
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape) :] != shape:
        raise ValueError(f"layer_norm over the last dims {shape}, but the input is {x.shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    raise NotImplementedError("hw2: layer_norm")

"""``tg.nn.functional``: the layers as plain functions of tensors (parameters passed in),
as ``torch.nn.functional``. The modules of :mod:`tapegrad.nn` hold the parameters and call
these; use them directly for gradient checks with respect to the parameters.

Everything here is composed of tapegrad ops, so gradients (of any order) come for free;
only the losses and the convolution need Functions of their own (:mod:`.losses`, :mod:`.conv`).
"""

from __future__ import annotations

from .. import ops, random
from ..ops import log_softmax, relu, sigmoid, softmax, tanh  # re-exported: F.relu, ...
from ..tensor import Tensor
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
    """
    ### BEGIN SOLUTION hw2
    y = x @ weight.T
    return y if bias is None else y + bias
    ### END SOLUTION


def flatten(x: Tensor, start_dim: int = 1) -> Tensor:
    """``x`` with the dimensions from ``start_dim`` on merged into one: (N, C, H, W) becomes
    (N, C*H*W) with the default ``start_dim=1`` (the batch dimension is kept)."""
    ### BEGIN SOLUTION hw2
    return ops.reshape(x, x.shape[:start_dim] + (-1,))
    ### END SOLUTION


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
    ### BEGIN SOLUTION hw2
    if not training or p == 0.0:
        return x
    mask = (random.rand(x.shape, x.dtype, x.device) >= p).astype(x.dtype)
    mask *= 1.0 / (1.0 - p)  # in place: keeps x's dtype
    return x * Tensor(mask, device=x.device)
    ### END SOLUTION


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
    ### BEGIN SOLUTION hw2
    if training:
        n = x.shape[0]
        mean = ops.mean(x, axis=0)
        centered = x - mean
        var = ops.mean(centered * centered, axis=0)
        if running_mean is not None and running_var is not None:
            running_mean.data *= 1.0 - momentum  # in place: keeps the buffers' dtype
            running_mean.data += momentum * mean.data
            running_var.data *= 1.0 - momentum
            running_var.data += (momentum * n / (n - 1)) * var.data
        x_hat = centered / ops.sqrt(var + eps)
    else:
        assert running_mean is not None and running_var is not None  # checked above
        x_hat = (x - running_mean) / ops.sqrt(running_var + eps)
    if weight is not None:
        x_hat = x_hat * weight
    return x_hat if bias is None else x_hat + bias
    ### END SOLUTION


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
    ### BEGIN SOLUTION hw2
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    var = ops.mean(centered * centered, axis=axes, keepdims=True)
    y = centered / ops.sqrt(var + eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias
    ### END SOLUTION

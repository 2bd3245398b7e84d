"""Losses: :func:`cross_entropy` (softmax and negative log-likelihood fused into one stable
op) and :func:`mse_loss`.

Why fuse: ``-log(softmax(z)[y])`` computed in two steps overflows in ``exp`` for large
logits and takes ``log(0) = -inf`` when a probability underflows; its gradient through the
log then divides by that tiny probability. The fused form works with ``log_softmax``
computed as ``z - max(z) - log(sum(exp(z - max(z))))``, where nothing overflows, and its
gradient is simply ``softmax(z) - onehot(y)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ops
from ..backend import device_of_array
from ..tensor import Function, Tensor, is_grad_enabled

__all__ = ["CrossEntropy", "cross_entropy", "mse_loss"]


class CrossEntropy(Function):
    """The mean cross-entropy of logits (N, C) against integer labels (N,), a scalar.

    ``labels`` is a constant integer array on the logits' device (no gradient).
    """

    def __init__(self, labels: Any) -> None:
        self.labels = labels

    def _onehot(self) -> Tensor:
        """onehot(labels) as a constant Tensor shaped and typed like the logits."""
        z = self.inputs[0]
        xp = z.backend.xp
        onehot = xp.zeros(z.shape, dtype=z.dtype)
        onehot[xp.arange(z.shape[0]), self.labels] = 1
        return Tensor._make(onehot, z.device)

    def forward(self, z: Any) -> Any:
        """loss = -(1/N) sum_n log_softmax(z)[n, labels[n]], a 0-d array of z's dtype, with

            log_softmax(z)[n, c] = (z[n, c] - m[n]) - log(sum_k exp(z[n, k] - m[n]))

        and m[n] = max_k z[n, k] (so no exp overflows and the largest term is exp(0) = 1).
        Pick each row's label entry with integer-array indexing ``[arange(N), labels]``.
        Use ``self.xp`` for the array functions.
        """
        raise NotImplementedError("hw2: CrossEntropy.forward")

    def backward(self, gy: Tensor) -> tuple[Tensor]:
        """d loss / d z = (softmax(z) - onehot(labels)) / N, times the cotangent ``gy`` (a
        scalar). Build it from tapegrad ops (``ops.softmax``, and the constant
        ``self._onehot()``) so that it can be differentiated again; never through
        ``log(softmax)``."""
        raise NotImplementedError("hw2: CrossEntropy.backward")

    def jvp(self, tz: Tensor) -> Tensor:
        """t = sum((softmax(z) - onehot(labels)) * tz) / N."""
        raise NotImplementedError("hw2: CrossEntropy.jvp")


def _check_labels(logits: Tensor, labels: Any) -> Any:
    """The labels as an integer array on the logits' device, after checking dtype and range."""
    if not isinstance(logits, Tensor) or logits.ndim != 2 or logits.dtype.kind != "f":
        what = (
            f"shape {logits.shape} and dtype {logits.dtype}"
            if isinstance(logits, Tensor)
            else type(logits).__name__
        )
        raise ValueError(
            f"cross_entropy needs logits as a float Tensor of shape (N, C), got {what}"
        )
    if isinstance(labels, Tensor):
        if labels.device != logits.device:
            raise ValueError(
                f"cross_entropy: logits on {logits.device} but labels on {labels.device}: move "
                "the labels with .to(device)"
            )
        array = labels.data
        host = array if labels.device == "cpu" else None
    else:
        host = np.asarray(labels) if device_of_array(labels) == "cpu" else None
        array = Tensor(labels, device=logits.device).data
    n, c = logits.shape
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy needs integer class labels, got dtype {array.dtype}: pass class "
            "indices (e.g. labels.astype('int64')), not one-hot vectors or floats"
        )
    if array.shape != (n,):
        raise ValueError(
            f"cross_entropy: labels have shape {tuple(array.shape)}, expected ({n},) to match "
            f"logits of shape {logits.shape}"
        )
    # Range-check labels that live on the host; on a GPU the check would wait for the device
    # on every training step, so device-resident labels are trusted. (tg.compile traces a CPU
    # function on stand-in arrays that say so: there the check becomes a guard of its code.)
    if host is None and getattr(array, "host_target", False):
        host = array
    if n and host is not None and (host.min() < 0 or host.max() >= c):
        bad = host[(host < 0) | (host >= c)]
        raise ValueError(
            f"cross_entropy: labels must be class indices in [0, {c}) for {c} logits per row, "
            f"got {int(bad[0])}"
        )
    return array


def cross_entropy(logits: Tensor, labels: Any) -> Tensor:
    """Mean cross-entropy of ``logits`` (N, C), any real values, against ``labels``: class
    indices in [0, C), an integer array or Tensor of shape (N,). Stable for any magnitude."""
    array = _check_labels(logits, labels)
    if logits.shape[0] == 0:
        raise ValueError("cross_entropy of an empty batch (N = 0) is undefined")
    return CrossEntropy(array)(logits)


def mse_loss(input: Tensor, target: Any) -> Tensor:  # noqa: A002  (torch's argument name)
    """Mean squared error ``mean((input - target)**2)``; ``target`` has ``input``'s shape."""
    target_shape = tuple(target.shape) if hasattr(target, "shape") else np.shape(target)
    if not isinstance(target, (int, float)) and target_shape != input.shape:
        raise ValueError(
            f"mse_loss: input has shape {input.shape} but target has shape {target_shape}; "
            "reshape one so that they match (broadcasting here is almost always a bug)"
        )
    raise NotImplementedError("hw2: mse_loss")

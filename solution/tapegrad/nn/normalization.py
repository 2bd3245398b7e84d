"""Normalisation layers: :class:`BatchNorm1d` (statistics over the batch, running averages
for evaluation) and :class:`LayerNorm` (statistics over each sample's features)."""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from . import functional as F
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "LayerNorm"]


class BatchNorm1d(Module):
    """Batch normalisation of (N, C) inputs (see :func:`~tapegrad.nn.functional.batch_norm`).

    Parameters ``weight`` (ones) and ``bias`` (zeros), shape (C,). Buffers
    ``running_mean`` (zeros) and ``running_var`` (ones): saved in the state dict, moved by
    ``to()``, never trained. Training mode normalises with the batch's statistics and
    updates the running ones (``momentum`` 0.1, PyTorch's convention); evaluation mode uses
    the running statistics.
    """

    running_mean: Tensor  # buffers, set by register_buffer
    running_var: Tensor

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", Tensor(np.zeros(num_features, dtype=np.float32)))
        self.register_buffer("running_var", Tensor(np.ones(num_features, dtype=np.float32)))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.num_features:
            raise ValueError(
                f"BatchNorm1d({self.num_features}) expects input of shape (N, "
                f"{self.num_features}), got {x.shape}"
            )
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            self.training, self.momentum, self.eps,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class LayerNorm(Module):
    """Layer normalisation over the last dimension(s) (see
    :func:`~tapegrad.nn.functional.layer_norm`), with ``weight`` (ones) and ``bias`` (zeros)
    of shape ``normalized_shape``."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape, self.eps = tuple(shape), eps
        self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}"

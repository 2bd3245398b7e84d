"""Worked examples for the lesson "designing networks for the problem".

:class:`LinearPlusMLP` builds the structure we know into the model: a response that is
linear in some inputs, with coefficients we want to read off, plus an unknown smooth effect
of the others,

    f(x) = b1*x1 + b2*x2 + g(z),      x = (x1, x2, z1, ..., zk),

with b1, b2 explicit parameters and g a small MLP (a *partially linear model*). The
design choice that matters: g sees only z. If it also saw x1 and x2 it could absorb any
part of b1*x1 + b2*x2, and the coefficients would no longer be identified: training would
fit the data equally well with many values of b. Keeping them apart, the network's b
converges to the true coefficients (see tests/test_nn.py::test_linear_plus_mlp_recovers...).
"""

from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .layers import Linear, Sequential, Tanh
from .module import Module, Parameter

__all__ = ["LinearPlusMLP"]


class LinearPlusMLP(Module):
    """f(x) = x[:, :n_linear] @ b + g(x[:, n_linear:]), returned with shape (N,).

    ``b`` (n_linear,) starts at zero; ``g`` is Linear(n_other, hidden) - Tanh -
    Linear(hidden, hidden) - Tanh - Linear(hidden, 1).
    """

    def __init__(self, n_linear: int = 2, n_other: int = 1, hidden: int = 32) -> None:
        super().__init__()
        self.n_linear = n_linear
        self.b = Parameter(np.zeros(n_linear, dtype=np.float32))
        self.g = Sequential(
            Linear(n_other, hidden), Tanh(), Linear(hidden, hidden), Tanh(), Linear(hidden, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        linear_part = x[:, : self.n_linear] @ self.b  # (N,)
        return linear_part + self.g(x[:, self.n_linear :]).reshape(-1)

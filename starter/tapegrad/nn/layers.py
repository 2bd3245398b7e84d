"""The basic layers: :class:`Linear`, the activations, :class:`Sequential`, :class:`Flatten`
and :class:`Dropout`. Each is a thin Module around a function of :mod:`.functional`: layers
are syntactic sugar that holds parameters and settings.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .. import ops
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "ReLU", "Sigmoid", "Tanh", "Sequential", "Flatten", "Dropout"]


class Linear(Module):
    """y = x @ weight.T + bias, with weight (out_features, in_features) and bias
    (out_features,) as PyTorch stores them, initialised as PyTorch does."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((out_features, in_features), dtype=np.float32))
        self.bias = Parameter(np.zeros(out_features, dtype=np.float32)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default initialisation: ``init.kaiming_uniform_(weight, a=sqrt(5))``,
        which is U(-1/sqrt(in_features), 1/sqrt(in_features)), and the bias (when there is
        one) uniform on the same interval (``init.uniform_``)."""
        raise NotImplementedError("hw2: Linear.reset_parameters")

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"Linear({self.in_features}, {self.out_features}) got input of shape "
                f"{x.shape}: its last dimension must be {self.in_features}"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class ReLU(Module):
    """max(x, 0) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.relu(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.sigmoid(x)


class Tanh(Module):
    """tanh(x) elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return ops.tanh(x)


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Linear(4, 8), ReLU(), Linear(8, 1))``.

    Indexable (``seq[0]``, a slice gives a Sequential), iterable, ``len``. Its parameters are
    named by position, as PyTorch's: ``0.weight``, ``2.bias``.
    """

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential takes Modules, but argument {i} is {type(m)}")
        self._layers = list(modules)

    def _members(self) -> Iterator[tuple[str, Any, str]]:
        for i, m in enumerate(self._layers):
            yield str(i), m, "module"
        # Attributes a subclass adds; the layers met again here (as _layers.i) are skipped,
        # since every walk reports an object once.
        yield from super()._members()

    def forward(self, x: Any) -> Any:
        """Apply each module in order, feeding each the previous one's output."""
        raise NotImplementedError("hw2: Sequential.forward")

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(*self._layers[index])
        return self._layers[index]

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._layers)

    def append(self, module: Module) -> Sequential:
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.append takes a Module, got {type(module)}")
        self._layers.append(module)
        return self


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): keeps the batch dimension."""

    def forward(self, x: Tensor) -> Tensor:
        return F.flatten(x, 1)


class Dropout(Module):
    """Inverted dropout with drop probability ``p`` in training (see
    :func:`~tapegrad.nn.functional.dropout`); the identity in evaluation mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = F._check_p(p)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"

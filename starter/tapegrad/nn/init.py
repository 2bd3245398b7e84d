"""Weight initialisation, as ``torch.nn.init``: each function fills ``tensor.data`` in place
(keeping its dtype and device), draws from :mod:`tapegrad.random`, and returns the tensor.

Why it matters: with weights of the wrong scale, activations and gradients shrink or grow
geometrically with depth. Xavier/Glorot keeps the variance of activations and gradients
roughly constant for tanh-like units, Kaiming/He for ReLU-like ones.
"""

from __future__ import annotations

import math
from typing import Any

from .. import random
from ..tensor import Tensor

__all__ = [
    "calculate_gain",
    "fan_in_and_fan_out",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor by which ``nonlinearity`` shrinks the standard deviation of its input,
    to be undone by the initialisation (PyTorch's table): 1 for linear, conv and sigmoid,
    5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope**2)) for leaky_relu (slope
    ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in ("linear", "identity", "sigmoid") or nonlinearity.startswith("conv"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"unknown nonlinearity {nonlinearity!r}: use linear, sigmoid, tanh, relu, leaky_relu, "
        "selu or conv2d"
    )


def fan_in_and_fan_out(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: for a Linear weight (out, in) they are (in, out);
    for a Conv2d weight (out, in, kh, kw) each is multiplied by the receptive field kh*kw."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a weight with at least 2 dimensions, got shape {tensor.shape}"
        )
    receptive = math.prod(tensor.shape[2:])
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor: Tensor, values: Any) -> Tensor:
    """Write ``values`` into ``tensor.data`` in place (cast to its dtype) and return it."""
    tensor.data[...] = values
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill with draws from the uniform distribution on [a, b)."""
    return _fill(tensor, random.uniform(tensor.shape, a, b, tensor.dtype, tensor.device))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill with draws from the normal distribution N(mean, std**2)."""
    return _fill(tensor, mean + std * random.randn(tensor.shape, tensor.dtype, tensor.device))


def constant_(tensor: Tensor, value: float) -> Tensor:
    return _fill(tensor, value)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Xavier/Glorot uniform initialisation, in place: draws from U(-bound, bound) with

        bound = gain * sqrt(6 / (fan_in + fan_out))

    (the uniform distribution with variance gain**2 * 2 / (fan_in + fan_out)). Use
    :func:`fan_in_and_fan_out` and :func:`uniform_`; return ``tensor``.
    """
    raise NotImplementedError("hw2: xavier_uniform_")


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Xavier/Glorot normal: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    """gain / sqrt(fan), fan = fan_in or fan_out as ``mode`` says."""
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fan_in_and_fan_out(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Kaiming/He uniform initialisation, in place: draws from U(-bound, bound) with

        std = gain / sqrt(fan),   bound = sqrt(3) * std

    where ``fan`` is fan_in (``mode="fan_in"``, preserving the forward variance) or fan_out,
    and ``gain = calculate_gain(nonlinearity, a)`` (``a`` is the negative slope of a leaky
    ReLU). PyTorch's Linear and Conv2d use ``a=sqrt(5)``, giving bound = 1/sqrt(fan_in).
    ``_kaiming_std`` (given) computes ``std``; fill with :func:`uniform_`.
    """
    raise NotImplementedError("hw2: kaiming_uniform_")


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Tensor:
    """Kaiming/He normal: N(0, std**2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))

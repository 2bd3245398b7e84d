"""Probes of the hw3 layers Conv2d and MaxPool2d, against direct float64 loops."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from autograder.worker.opspecs import DOMAINS
from autograder.worker.tensors import AFFINE_OUTPUTS

from .base import (
    Arrays,
    ModuleProbe,
    Outputs,
    Params,
    Signature,
    case_labels,
)

# ---- Conv2d and MaxPool2d -----------------------------------------------------------------------

_CONV = (  # label, input shape, out channels, kernel, stride, padding
    ("3x3 kernel, stride 1, no padding", (2, 3, 7, 6), 4, 3, 1, 0),
    ("3x3 kernel, stride 2, padding 1", (2, 2, 8, 7), 3, 3, 2, 1),
    ("5x5 kernel, padding 2 (same size), one input channel", (1, 1, 6, 6), 2, 5, 1, 2),
    ("1x1 kernel", (3, 4, 3, 5), 2, 1, 1, 0),
)


def _conv_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape, o, k, s, pad = _CONV[v]
    n, c, h, w = shape
    oh, ow = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
    arrays = [
        rng.standard_normal(shape),
        rng.standard_normal((o, c, k, k)) / math.sqrt(c * k * k),
        rng.standard_normal(o),
        rng.standard_normal((n, o, oh, ow)),
    ]
    return {
        "variant": v,
        "in": c,
        "out": o,
        "kernel": k,
        "stride": s,
        "padding": pad,
        "cotangent": 3,
        "outputs": list(AFFINE_OUTPUTS),
        "about": f"Conv2d({c}, {o}, kernel_size={k}, stride={s}, padding={pad}), input {shape}",
    }, arrays


def _conv_ref(p: Params, arrays: Arrays, *, flipped: bool = False) -> Outputs:
    """Direct cross-correlation, one output pixel at a time (``flipped``: true convolution,
    the kernel rotated by 180 degrees, a known bug)."""
    x, w, b, u = arrays
    if flipped:
        w = w[:, :, ::-1, ::-1]
    k, s, pad = p["kernel"], p["stride"], p["padding"]
    h, wd = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = u.shape[2:]
    y = np.empty(u.shape)
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(oh):
        for j in range(ow):
            window = (slice(None), slice(None), slice(i * s, i * s + k), slice(j * s, j * s + k))
            patch = xp[window]
            y[:, :, i, j] = np.einsum("ncab,ocab->no", patch, w) + b
            gxp[window] += np.einsum("no,ocab->ncab", u[:, :, i, j], w)
            gw += np.einsum("no,ncab->ocab", u[:, :, i, j], patch)
    gx = gxp[:, :, pad : pad + h, pad : pad + wd]
    return [y, gx, gw[:, :, ::-1, ::-1] if flipped else gw, u.sum((0, 2, 3))]


CONV2D_PROBE = ModuleProbe(
    "conv2d",
    "Conv2d",
    case_labels(_CONV),
    _conv_case,
    _conv_ref,
    assignment="hw3",
    signatures=(
        Signature(
            "the kernel is flipped (true convolution); Conv2d computes the "
            "cross-correlation: out[o, i, j] = sum w[o, c, a, b] * x[c, i*s + a, j*s + b]",
            "wrong_forward",
            partial(_conv_ref, flipped=True),
        ),
    ),
)


_POOL = (  # label, input shape, kernel
    ("2x2 windows", (2, 3, 8, 6), 2),
    ("3x3 windows on 7x8: the leftover rows and columns are dropped", (2, 2, 7, 8), 3),
    ("2x2 windows, a batch of 1", (1, 4, 4, 4), 2),
)


def _pool_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape, k = _POOL[v]
    n, c, h, w = shape
    x = DOMAINS["distinct"](rng, shape)  # no ties: the maximum of each window is unique
    return {
        "variant": v,
        "kernel": k,
        "cotangent": 1,
        "outputs": ["forward", "gradient of the input"],
        "about": f"MaxPool2d({k}), input {shape}",
    }, [x, rng.standard_normal((n, c, h // k, w // k))]


def _pool_ref(p: Params, arrays: Arrays, *, average_gradient: bool = False) -> Outputs:
    x, u = arrays
    k = p["kernel"]
    n, c, oh, ow = u.shape
    windows = x[:, :, : oh * k, : ow * k].reshape(n, c, oh, k, ow, k)
    y = windows.max(axis=(3, 5))
    if average_gradient:
        mask = np.full(windows.shape, 1.0 / (k * k))
    else:
        mask = (windows == y[:, :, :, None, :, None]).astype(np.float64)
    gx = np.zeros_like(x)
    gx[:, :, : oh * k, : ow * k] = (mask * u[:, :, :, None, :, None]).reshape(n, c, oh * k, ow * k)
    return [y, gx]


MAXPOOL2D_PROBE = ModuleProbe(
    "maxpool2d",
    "MaxPool2d",
    case_labels(_POOL),
    _pool_case,
    _pool_ref,
    assignment="hw3",
    signatures=(
        Signature(
            "the gradient is spread over the whole window; it goes only to each window's maximum",
            "wrong_gradient",
            partial(_pool_ref, average_gradient=True),
        ),
    ),
)

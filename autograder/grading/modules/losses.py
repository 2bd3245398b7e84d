"""Probes of the losses: cross_entropy (from logits, extreme ones included) and mse_loss."""

from __future__ import annotations

from functools import partial

import numpy as np

from autograder.worker.opspecs import DOMAINS

from .base import Arrays, ModuleProbe, Outputs, Params, Signature, case_labels

# ---- losses -------------------------------------------------------------------------------------

_CROSS_ENTROPY = (  # label, logits shape, domain, labels as a Tensor
    ("(8, 10) logits, labels as an integer array", (8, 10), "logits", False),
    ("(6, 5) logits of +-1000, labels as a Tensor", (6, 5), "extreme", True),
    ("a single sample (1, 4)", (1, 4), "logits", True),
)


def _cross_entropy_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, (n, c), domain, as_tensor = _CROSS_ENTROPY[v]
    z = DOMAINS[domain](rng, (n, c))
    labels = rng.integers(0, c, n).astype(np.int64)
    if domain == "extreme":  # a label at -1000 in a row whose max is +1000: p underflows to 0
        z[0, :2] = [-1000.0 + rng.standard_normal(), 1000.0 + rng.standard_normal()]
        labels[0] = 0
    g = np.array(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
    return {
        "variant": v,
        "tensor_labels": as_tensor,
        "softmax_family": True,
        "cotangent": 2,
        "outputs": ["loss", "gradient of the logits"],
        "about": f"cross_entropy, logits ({n}, {c})",
    }, [z, labels, g]


def _cross_entropy_ref(p: Params, arrays: Arrays, *, reduction: str = "mean") -> Outputs:
    z, labels, g = arrays
    n = len(z)
    m = z.max(1, keepdims=True)
    log_p = z - m - np.log(np.exp(z - m).sum(1, keepdims=True))
    onehot = np.zeros_like(z)
    onehot[np.arange(n), labels] = 1.0
    scale = 1.0 if reduction == "sum" else 1.0 / n
    loss = -log_p[np.arange(n), labels].sum() * scale
    return [np.array(loss), g * (np.exp(log_p) - onehot) * scale]


CROSS_ENTROPY_PROBE = ModuleProbe(
    "cross_entropy",
    "cross_entropy",
    case_labels(_CROSS_ENTROPY),
    _cross_entropy_case,
    _cross_entropy_ref,
    signatures=(
        Signature(
            "the loss is summed over the batch; it is the mean",
            "constant_factor",
            partial(_cross_entropy_ref, reduction="sum"),
        ),
    ),
)


_MSE = (("(4, 3)", (4, 3)), ("a vector (10,)", (10,)), ("3-d (2, 3, 4)", (2, 3, 4)))


def _mse_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, shape = _MSE[v]
    g = np.array(rng.uniform(0.5, 2.0) * rng.choice([-1.0, 1.0]))
    return {
        "variant": v,
        "cotangent": 2,
        "outputs": ["loss", "gradient of the input"],
        "about": f"mse_loss, input and target {shape}",
    }, [rng.standard_normal(shape), rng.standard_normal(shape), g]


def _mse_ref(p: Params, arrays: Arrays, *, reduction: str = "mean") -> Outputs:
    x, t, g = arrays
    scale = 1.0 if reduction == "sum" else 1.0 / x.size
    return [np.array(np.sum((x - t) ** 2) * scale), g * 2.0 * (x - t) * scale]


MSE_PROBE = ModuleProbe(
    "mse",
    "mse_loss",
    case_labels(_MSE),
    _mse_case,
    _mse_ref,
    signatures=(
        Signature(
            "the loss is summed; it is the mean over all entries",
            "constant_factor",
            partial(_mse_ref, reduction="sum"),
        ),
    ),
)


# ---- accuracy (tapegrad.train.accuracy, the metric of the training loop) -------------------------

_ACCURACY = (  # label, rows, classes, labels as a Tensor
    ("(8, 10) logits, labels as an integer array", 8, 10, False),
    ("(7, 4) logits, labels as a Tensor", 7, 4, True),
    ("a single row", 1, 3, False),
)


def _accuracy_case(rng: np.random.Generator, v: int) -> tuple[Params, Arrays]:
    _, n, c, as_tensor = _ACCURACY[v]
    logits = rng.standard_normal((n, c))
    labels = rng.integers(0, c, n)
    right = rng.permutation(n)[: (n + 1) // 2]
    labels[right] = logits[right].argmax(axis=1)  # some right, some wrong
    return {
        "variant": v,
        "labels_as_tensor": as_tensor,
        "outputs": ["the accuracy"],
        "about": f"accuracy of ({n}, {c}) logits",
    }, [logits, labels.astype(np.float64) if as_tensor else labels]


def _accuracy_ref(p: Params, arrays: Arrays) -> Outputs:
    logits, labels = arrays
    return [np.array(float(np.mean(logits.argmax(axis=1) == labels.astype(np.int64))))]


ACCURACY_PROBE = ModuleProbe(
    "accuracy",
    "train.accuracy",
    case_labels(_ACCURACY),
    _accuracy_case,
    _accuracy_ref,
    signatures=(
        Signature(
            "the count of right rows, not their fraction: divide by the number of rows",
            "constant_factor",
            lambda p, a: [np.array(float(np.sum(a[0].argmax(axis=1) == a[1].astype(np.int64))))],
        ),
    ),
)

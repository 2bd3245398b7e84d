"""The worker half of the probes of cross_entropy and mse_loss.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.losses`.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from ..tensors import Arrays, Outputs, Params, forward_backward, number_of


def run_cross_entropy(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    za, labels, g = arrays

    def loss(z: Any) -> Any:
        return tg.nn.functional.cross_entropy(
            z, tg.Tensor(labels) if p["tensor_labels"] else labels
        )

    return list(forward_backward(tg, loss, za, g, "cross_entropy", "the logits' grad"))


def run_mse(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, target, g = arrays

    def loss(x: Any) -> Any:
        return tg.nn.functional.mse_loss(x, tg.Tensor(target))

    return list(forward_backward(tg, loss, xa, g, "mse_loss"))


def run_accuracy(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    logits, labels = arrays
    train = getattr(tg, "train", None) or importlib.import_module(f"{tg.__name__}.train")
    given = tg.Tensor(labels) if p["labels_as_tensor"] else labels.astype(np.int64)
    return [number_of(tg, train.accuracy(tg.Tensor(logits), given), "accuracy")]

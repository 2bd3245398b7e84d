"""The worker half of the probes of Conv2d and MaxPool2d.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.conv`.
"""

from __future__ import annotations

from types import ModuleType

from ..tensors import Arrays, Outputs, Params, affine_grads, forward_backward, set_affine


def run_conv2d(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, w, b, u = arrays
    conv = tg.nn.Conv2d(p["in"], p["out"], p["kernel"], stride=p["stride"], padding=p["padding"])
    set_affine(conv, w, b)
    return [*forward_backward(tg, conv, xa, u, "Conv2d"), *affine_grads(tg, conv, "Conv2d")]


def run_maxpool2d(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    xa, u = arrays
    return list(forward_backward(tg, tg.nn.MaxPool2d(p["kernel"]), xa, u, "MaxPool2d"))

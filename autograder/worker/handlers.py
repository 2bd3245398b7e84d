"""The worker's request handlers, in one table: request type -> handler.

A handler gets the student's ``tapegrad`` module, the request header and its arrays, and
returns a reply header and a list of plain NumPy arrays (Tensors converted with
:func:`~autograder.worker.tensors.to_array`). Each kind of check has its worker half here and
its judge half under the same module name in :mod:`autograder.grading`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import notebooks, ops, training
from .modules import module_handler

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[ModuleType, dict[str, Any], list[np.ndarray]], tuple[dict, list[np.ndarray]]]


def ping(tg: ModuleType, header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict, list]:
    """Echo: the arrays come back unchanged, with the header's ``"payload"`` if any."""
    return {"type": "pong", "payload": header.get("payload")}, arrays


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "op": ops.op_handler,
    "forward": ops.forward_handler,
    "jvp": ops.jvp_handler,
    "hvp": ops.hvp_handler,
    "fvr": ops.fvr_handler,
    "backward_cost": ops.backward_cost_handler,
    "module": module_handler,
    "train": training.train_handler,
    "notebook": notebooks.notebook_handler,
}

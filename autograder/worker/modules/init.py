"""The worker half of the probes of xavier_uniform_ and kaiming_uniform_.

Each ``run_*`` function runs one case on the student's ``tapegrad`` (``tg``) through its public
API and returns plain arrays; the judge half is :mod:`autograder.grading.modules.init`.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from ..tensors import Arrays, Outputs, Params, seed, value_of


def run_init(tg: ModuleType, p: Params, arrays: Arrays) -> Outputs:
    seed(tg, p["seed"])
    t = tg.nn.Parameter(np.zeros(tuple(p["shape"]), dtype=np.float32))
    getattr(tg.nn.init, p["function"])(t, **p["kwargs"])
    return [value_of(tg, t, f"the tensor after {p['function']}")]  # filled in place

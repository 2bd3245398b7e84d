"""Module probes: behaviour checks of modules, losses, optimizers and initializers.

One table, :data:`PROBES`, declares each probe once, as :mod:`autograder.opspecs` does for ops;
a ``kind = "module"`` check in ``assignment.toml`` names one by its ``probe``. A
:class:`ModuleProbe` holds both halves of the check:

* ``make_case(rng, variant) -> (params, arrays)`` draws one case in the parent: ``params`` are
  JSON values (sizes, hyperparameters, the names of the outputs), ``arrays`` the inputs, the
  parameter values, cotangents and gradient sequences the worker needs;
* ``run(tg, params, arrays) -> outputs`` runs IN THE WORKER with the student's ``tapegrad``
  (passed in as ``tg``), through its public API only. It sets parameters by assigning ``.data``
  from the arrays it was sent, so results are deterministic, and returns plain arrays (``None``
  for a missing gradient);
* ``reference(params, arrays) -> expected`` computes the same outputs in float64 NumPy in the
  parent, with PyTorch's conventions (BatchNorm normalises with the biased variance and updates
  ``running_var`` with the unbiased one, momentum 0.1; inverted dropout; Adam with L2 weight
  decay and bias correction; Xavier and Kaiming bounds from the fans and the gain);
* ``judge(params, arrays, got, expected) -> Verdict`` compares them: output by output, with
  the likely bug named, or by statistics for random outputs (dropout masks, initial weights);
* ``signatures``: known bugs, as the outputs they would produce. When the student's outputs
  fail and match one of these instead, the verdict names that bug.

This package never imports tapegrad: the trusted parent holds the table too. Expected values
never leave the parent; the worker sees only what it needs to run the student's code.

The package: :mod:`.base` (the records, judging, the worker-side helpers), one module per
family (:mod:`.structure`, :mod:`.layers`, :mod:`.normalization`, :mod:`.losses`,
:mod:`.optim`, :mod:`.init`, :mod:`.conv`) and :mod:`.check` (the table, the worker's handler,
registered on import, and the parent's check).
"""

from __future__ import annotations

from .base import ModuleProbe, Signature, compare_output, default_judge
from .check import PROBES, module_handler, run_module_check

__all__ = [
    "ModuleProbe",
    "Signature",
    "PROBES",
    "run_module_check",
    "module_handler",
    "default_judge",
    "compare_output",
]

"""The judge half of the module checks: behaviour checks of modules, losses, optimizers and
initializers (the worker half, by the same module names, is :mod:`autograder.worker.modules`).

One table, :data:`PROBES`, declares each probe once, as :mod:`autograder.worker.opspecs` does
for ops; a ``kind = "module"`` check in ``assignment.toml`` names one by its ``probe``, which
is also the name of its runner in :data:`autograder.worker.modules.RUNS`. A
:class:`ModuleProbe` holds the parent's side of the check:

* ``make_case(rng, variant) -> (params, arrays)`` draws one case: ``params`` are JSON values
  (sizes, hyperparameters, the names of the outputs), ``arrays`` the inputs, the parameter
  values, cotangents and gradient sequences the worker's runner needs;
* ``reference(params, arrays) -> expected`` computes the same outputs in float64 NumPy, with
  PyTorch's conventions (BatchNorm normalises with the biased variance and updates
  ``running_var`` with the unbiased one, momentum 0.1; inverted dropout; Adam with L2 weight
  decay and bias correction; Xavier and Kaiming bounds from the fans and the gain);
* ``judge(params, arrays, got, expected) -> Verdict`` compares them: output by output, with
  the likely bug named, or by statistics for random outputs (dropout masks, initial weights);
* ``signatures``: known bugs, as the outputs they would produce. When the student's outputs
  fail and match one of these instead, the verdict names that bug.

Expected values never leave the parent; the worker sees only what it needs to run the
student's code. The package: :mod:`.base` (the records and judging), one module per family
(:mod:`.structure`, :mod:`.layers`, :mod:`.normalization`, :mod:`.losses`, :mod:`.optim`,
:mod:`.init`, :mod:`.conv`) and :mod:`.check` (the table and the check).
"""

from __future__ import annotations

from .base import ModuleProbe, Signature, compare_output, default_judge
from .check import PROBES, run_module_check

__all__ = [
    "ModuleProbe",
    "Signature",
    "PROBES",
    "run_module_check",
    "default_judge",
    "compare_output",
]

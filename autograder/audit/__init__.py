"""``kit audit ID``: how good the hidden suite is, measured on mutants of the reference.

:mod:`.mutants` plants one plausible mistake at a time inside the assignment's solution
blocks (and the classic-bug catalogue); :mod:`.run` grades every mutant with the hidden suite
in the default sandbox, through ``grade batch``'s runner (parallel, resumable), and reports the
kill rate, which checks killed what, and the survivors as diffs. Like ``grade batch`` it sits
above the zones: it reads the reference (authoring) and grades through ``grade`` processes.
"""

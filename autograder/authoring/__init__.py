"""The authoring zone: the instructor's tools behind ``kit``.

:mod:`.starter` generates ``starter/`` from ``solution/`` by stripping solution blocks;
:mod:`.reference` assembles the reference submission; :mod:`.release` writes a student release
(with its leak scan) from :mod:`.templates`; :mod:`.bugs` is the catalogue of classic student
bugs, as patches of the reference, that the tests and ``make demo`` plant.

What may run here: the instructor's own files (the solution, the source notebooks), never a
student's code. What it may import: the standard library, nbgrader (in a subprocess), the
top-level modules (:mod:`autograder.config`, :mod:`autograder.paths`) and the worker zone's
notebook reader (:mod:`autograder.worker.cells`); never :mod:`autograder.grading`.
"""

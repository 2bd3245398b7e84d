"""The worker zone: everything that runs next to student code.

``python -m autograder.worker`` is the process a sandbox starts: it sets its resource limits,
imports the submission's ``tapegrad`` and answers the grader's requests
(:mod:`.loop`, over the wire format of :mod:`.protocol`). Each kind of check has its worker
half here, under the same module name as its judge half in :mod:`autograder.grading`:
:mod:`.ops` (with the op-spec table, :mod:`.opspecs`), :mod:`.modules`, :mod:`.training`,
:mod:`.notebooks`; :mod:`.handlers` is the one table of request types; :mod:`.tensors` and
:mod:`.cells` are the helpers they share.

What may run here: only what a student's code may see. Nothing here knows an expected value,
a hidden label or the grader's secret, and nothing it returns is trusted: the grading process
validates and judges every reply.

What it may import: the standard library, NumPy and ``autograder.worker`` only (and the
submission's ``tapegrad``). This folder and ``autograder/__init__.py`` are the grader's only
files a sandbox exposes; ``tests/test_layout.py`` checks the rule, in the source and in a
running worker.
"""

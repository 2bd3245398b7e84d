"""tapegrad-kit's tools: the ``grade`` and ``kit`` commands, in three zones that show the trust
boundary in the folders.

* :mod:`autograder.worker`: everything that runs next to student code, inside the sandbox;
* :mod:`autograder.grading`: the trusted parent that starts workers and judges what they say;
* :mod:`autograder.authoring`: the instructor's tools (starter, reference, release).

At the top: the command lines (:mod:`.cli` for ``grade``, :mod:`.kit` for ``kit``),
:mod:`.demo` (``make demo``), the assignment configuration (:mod:`.config`) and where the
kit's files are (:mod:`.paths`). The import rules between the zones are checked by the test
suite (``tests/test_layout.py``); ``docs/grader.md`` draws the map.

This module is also loaded in the worker (it is the package around the worker zone), so it
defines only what the command lines share and imports nothing.
"""


class KitError(Exception):
    """An error the ``kit`` and ``grade`` commands report as a message with exit code 2 (no
    traceback)."""


__version__ = "0.1.0"

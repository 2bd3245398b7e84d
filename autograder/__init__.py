"""Course-kit tooling for tapegrad: starter generation, and later release, reference and data.

The ``kit`` console script (:func:`autograder.kit.main`) is the entry point; each subcommand
lives in its own module (``autograder.starter``, ...).
"""


class KitError(Exception):
    """An error the ``kit`` command reports as a message with exit code 2 (no traceback)."""


__version__ = "0.1.0"

"""``python -m autograder.worker``: the worker process (see :mod:`autograder.worker.loop`)."""

import sys

from autograder.worker.loop import main

sys.exit(main())

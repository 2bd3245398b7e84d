"""Gradescope's entry point in the grading image: ``python -m autograder.run_autograder``.

Gradescope puts the submission in ``/autograder/submission`` and reads
``/autograder/results/results.json`` once this exits. Which assignment to grade: the one the
image was built for (``/autograder/source/ASSIGNMENT``), else ``$TAPEGRAD_ASSIGNMENT``, else
the one whose id appears as a word in the assignment title Gradescope writes in
``/autograder/submission_metadata.json`` (an image built for several assignments serves
them all: name them "hw1: ...", "HW2 ..."), else the only one in the image. Grading is
``grade`` itself, with ``--require-isolation``: nothing runs unisolated.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from autograder import cli
from autograder.config import assignment_ids

__all__ = ["choose_assignment", "main"]

AUTOGRADER = Path("/autograder")


def choose_assignment(source: Path, metadata: Path) -> tuple[str | None, str]:
    """(the assignment id, or None; how it was chosen, or why none could be)."""
    fixed = source / "ASSIGNMENT"
    if fixed.is_file():
        return fixed.read_text().strip(), f"the image was built for it ({fixed})"
    if os.environ.get("TAPEGRAD_ASSIGNMENT"):
        return os.environ["TAPEGRAD_ASSIGNMENT"], "TAPEGRAD_ASSIGNMENT"
    ids = assignment_ids(source)
    title = ""
    if metadata.is_file():
        try:
            title = str(json.loads(metadata.read_text())["assignment"]["title"])
        except (ValueError, KeyError, TypeError):
            title = ""
    named = [i for i in ids if re.search(rf"(?<![\w]){re.escape(i)}(?![\w])", title, re.I)]
    if len(named) == 1:
        return named[0], f"the Gradescope assignment title {title!r}"
    if len(ids) == 1:
        return ids[0], "the only assignment in the image"
    return None, (
        f"cannot tell which assignment to grade: the Gradescope assignment title {title!r} "
        f"names {len(named)} of this image's assignments ({', '.join(ids) or 'none'}); put "
        "the id (e.g. 'hw1') in the title, or build the image for one assignment"
    )


def main(root: Path = AUTOGRADER) -> int:
    source = root / "source"
    assignment, why = choose_assignment(source, root / "submission_metadata.json")
    args = [
        str(root / "submission"),
        "--root", str(source),
        "--out", str(root / "results"),
        "--device", os.environ.get("TAPEGRAD_DEVICE", "cpu"),
        "--require-isolation",
    ]  # fmt: skip
    if assignment is None:
        return cli.refuse(why, root / "results", "unknown")
    print(f"run_autograder: assignment {assignment} ({why})", flush=True)
    return cli.main([*args, "--assignment", assignment])


if __name__ == "__main__":
    # the image's secret, root-only, unless the environment names another
    os.environ.setdefault("GRADER_SECRET_FILE", str(AUTOGRADER / "source" / "grader-secret"))
    sys.exit(main())

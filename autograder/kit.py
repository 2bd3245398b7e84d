"""The ``kit`` command line: finds the repository root and dispatches to subcommand modules.

Each subcommand lives in its own module, listed in :data:`SUBCOMMANDS`, which provides

* ``register(subparsers, parents)``: add its parser (built with ``parents=parents`` so that it
  accepts the common ``--root`` option) and ``set_defaults(run=<its run function>)``;
* ``run(args, root) -> int``: do the work for the repository at ``root``, return the exit code;
  raise :class:`autograder.KitError` (or a subclass) for errors to report without a traceback.

Exit codes: 0 success, 1 a check found differences, 2 a usage error or a problem in the
sources (bad solution markers, missing package); messages go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from autograder import KitError
from autograder.paths import RootNotFoundError, find_kit_root, is_kit_root
from autograder.worker.cells import NotebookError

# Modules providing subcommands, in the order `kit --help` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "autograder.authoring.starter",
    "autograder.authoring.release",
    "autograder.authoring.reference",
    "autograder.authoring.image",
    "autograder.audit.run",
    "autograder.authoring.datafetch",
)

EXIT_OK, EXIT_DIFFERENCES, EXIT_USAGE = 0, 1, 2


def resolve_root(given: Path | None) -> Path:
    """The ``--root`` argument, checked, or the root found from the CWD."""
    if given is None:
        return find_kit_root()
    root = given.resolve()
    if not is_kit_root(root):
        raise RootNotFoundError(
            f"--root {given}: not a repository root (needs pyproject.toml and solution/)"
        )
    return root


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per module in :data:`SUBCOMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: found by walking up from the current directory)",
    )
    parser = argparse.ArgumentParser(prog="kit", description="tapegrad course-kit tools")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(subparsers, [common])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kit`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed by argparse
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.run(args, resolve_root(args.root))
    except (KitError, NotebookError) as exc:
        print(f"kit {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())

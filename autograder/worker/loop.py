"""The worker's request loop: the process that runs inside the sandbox, imports the student's
``tapegrad`` and answers the grader's requests. Everything here is as untrusted as the
student's code (which can patch it), so the grader validates every answer; this module only
has to make honest mistakes easy to read.

    python -m autograder.worker --submission DIR [--device cpu] [--rlimits JSON]
                                [--deny-sockets]

The resource limits (and, when asked, the seccomp filter that refuses sockets) are set first,
before anything of the submission is imported. Requests
arrive on stdin, replies leave on a private duplicate of the original stdout; fd 1 itself is
pointed at stderr before the student's code is imported, so a stray ``print`` cannot corrupt
the channel. The first message is a hello (did the import work?); after that, one reply per
request (:data:`~autograder.worker.handlers.HANDLERS` says which handler answers which type)
until a ``shutdown`` request or the end of stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import traceback
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from . import protocol
from .handlers import HANDLERS
from .seccomp import deny_sockets

__all__ = ["apply_rlimits", "import_submission", "main", "serve"]


ERROR_CHARS = 2048  # an import-failure summary
MESSAGE_CHARS = 1024  # one exception message


# -- limits ---------------------------------------------------------------------------------------

RLIMITS = {
    "as": resource.RLIMIT_AS,
    "cpu": resource.RLIMIT_CPU,
    "nproc": resource.RLIMIT_NPROC,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}


def apply_rlimits(limits: dict[str, list[int]]) -> None:
    """Lower resource limits as ``{"as": [soft, hard], ...}`` (-1: unlimited). Done here,
    first thing, rather than in a ``preexec_fn``: that hook is not safe when the grader has
    threads (Dask workers do), and no student code runs before this point."""
    for name, (soft, hard) in limits.items():
        soft = resource.RLIM_INFINITY if soft < 0 else soft
        hard = resource.RLIM_INFINITY if hard < 0 else hard
        _, current_hard = resource.getrlimit(RLIMITS[name])
        if current_hard != resource.RLIM_INFINITY:  # never ask to raise a hard limit
            hard = current_hard if hard == resource.RLIM_INFINITY else min(hard, current_hard)
            soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
        try:
            resource.setrlimit(RLIMITS[name], (soft, hard))
        except (ValueError, OSError) as e:  # e.g. macOS refuses some; say so, carry on
            print(f"worker: could not set the {name} limit: {e}", file=sys.stderr)


# -- describing failures --------------------------------------------------------------------------


def _clip(text: str, limit: int, *, keep: str = "head") -> str:
    if len(text) <= limit:
        return text
    return "..." + text[-(limit - 3) :] if keep == "tail" else text[: limit - 3] + "..."


def _relative(path: str, submission: str) -> str | None:
    """``path`` relative to the submission, or None when it lies outside."""
    real = os.path.realpath(path)
    return os.path.relpath(real, submission) if real.startswith(submission + os.sep) else None


def _where(exc: BaseException, submission: str) -> str | None:
    """The innermost frame inside the submission, as "tapegrad/ops.py:152 in backward"."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        rel = _relative(frame.filename, submission)
        if rel is not None:
            return f"{rel}:{frame.lineno} in {frame.name}"
    return None


def describe_error(exc: BaseException, submission: str) -> dict[str, Any]:
    """The error part of a failed reply."""
    return {
        "type": type(exc).__name__,
        "message": _clip(_safe_str(exc), MESSAGE_CHARS),
        "where": _where(exc, submission),
    }


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except BaseException:  # a student exception whose __str__ raises
        return f"<{type(exc).__name__} whose message could not be printed>"


def describe_import_error(exc: BaseException, submission: str) -> str:
    """A readable summary of why ``import tapegrad`` failed: one line that says what and where,
    then the end of the traceback with paths shown relative to the submission."""
    if isinstance(exc, SyntaxError):
        rel = _relative(exc.filename or "", submission) or exc.filename
        first = f"{type(exc).__name__} in {rel} line {exc.lineno}: {exc.msg}"
        if exc.text:
            first += "\n    " + exc.text.strip()
        return _clip(first, ERROR_CHARS)
    where = _where(exc, submission)
    first = f"{type(exc).__name__} while importing tapegrad" + (f" ({where})" if where else "")
    first += f": {_clip(_safe_str(exc), MESSAGE_CHARS)}"
    start = exc.__traceback__  # from the submission's first frame: the worker's are noise
    while start is not None and _relative(start.tb_frame.f_code.co_filename, submission) is None:
        start = start.tb_next
    tb = "".join(traceback.format_exception(type(exc), exc, start or exc.__traceback__))
    tb = tb.replace(submission + os.sep, "")
    room = ERROR_CHARS - len(first) - 2
    return first + "\n\n" + _clip(tb, room, keep="tail") if room > 200 else first


# -- importing the submission ---------------------------------------------------------------------


def import_submission(submission: str) -> tuple[ModuleType | None, str | None]:
    """Import the submission's ``tapegrad``: ``(module, None)`` or ``(None, error)``."""
    init = os.path.join(submission, "tapegrad", "__init__.py")
    if not os.path.isfile(init):
        return None, (
            "no tapegrad package in the submission: expected tapegrad/__init__.py at the top "
            "of the submitted folder"
        )
    sys.path.insert(0, submission)
    try:
        import tapegrad
    except BaseException as e:  # SystemExit and KeyboardInterrupt from student code, too
        return None, describe_import_error(e, submission)
    where = _relative(getattr(tapegrad, "__file__", None) or "", submission)
    if where is None:
        return None, (
            f"'import tapegrad' found {getattr(tapegrad, '__file__', None)!r}, not the "
            "submission's package: it must not replace or reinstall tapegrad"
        )
    return tapegrad, None


# -- the request loop -----------------------------------------------------------------------------


def _check_reply(name: str, reply: object, max_bytes: int) -> tuple[dict, list[np.ndarray]]:
    """A handler's result as (header, plain arrays), or a TypeError that says what is wrong."""
    if not (isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], dict)):
        raise TypeError(f"handler {name!r} must return (header dict, list of arrays)")
    header, arrays = reply
    if not isinstance(arrays, (list, tuple)):
        raise TypeError(
            f"handler {name!r} returned a {type(arrays).__name__} where a list of NumPy "
            "arrays was expected"
        )
    plain = []
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            raise TypeError(
                f"handler {name!r} returned a {type(a).__name__} at position {i} where a NumPy "
                "array was expected (convert Tensors with .numpy())"
            )
        plain.append(np.asarray(a))  # drop ndarray subclasses
    total = sum(a.nbytes for a in plain)
    if total > max_bytes:
        raise ValueError(f"handler {name!r} returned {total} bytes of arrays, over {max_bytes}")
    return {**header, "ok": True}, plain


def _answer(tg: ModuleType, request: dict, arrays: list, submission: str, max_bytes: int) -> bytes:
    name = request.get("type")
    fn = HANDLERS.get(name) if isinstance(name, str) else None
    try:
        if fn is None:
            raise LookupError(f"no handler for request type {name!r}; known: {sorted(HANDLERS)}")
        header, out = _check_reply(str(name), fn(tg, request, arrays), max_bytes)
        return protocol.encode_message(header, out)
    except BaseException as e:  # student code may raise anything, SystemExit included
        return protocol.encode_message({"ok": False, "error": describe_error(e, submission)})


def serve(
    tg: ModuleType, requests: BinaryIO, replies: BinaryIO, submission: str, max_bytes: int
) -> int:
    """Answer requests until a shutdown request or the end of ``requests``."""
    while True:
        try:
            request, arrays = protocol.read_message(requests, max_bytes=max_bytes)
        except EOFError:
            return 0
        except protocol.ProtocolError as e:
            print(f"worker: bad request from the grader: {e}", file=sys.stderr)
            return 2
        if request.get("type") == "shutdown":
            return 0
        replies.write(_answer(tg, request, arrays, submission, max_bytes))
        replies.flush()


def _versions(device: str) -> dict[str, str]:
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    if device == "cuda":
        try:
            import cupy

            versions["cupy"] = cupy.__version__
        except Exception as e:
            versions["cupy"] = f"unavailable: {type(e).__name__}"
    return versions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.worker")
    parser.add_argument("--submission", required=True)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--rlimits", default="{}", help='JSON: {"as": [soft, hard], ...}')
    parser.add_argument("--max-message-bytes", type=int, default=protocol.MAX_MESSAGE_BYTES)
    parser.add_argument(
        "--deny-sockets", action="store_true", help="install the seccomp filter (seccomp.py)"
    )
    args = parser.parse_args(argv)
    apply_rlimits(json.loads(args.rlimits))
    if args.deny_sockets:  # fail closed: no worker without the filter it was asked for
        try:
            deny_sockets()
        except OSError as e:
            print(f"worker: the seccomp filter could not be installed: {e}", file=sys.stderr)
            return 3

    # The reply channel is a private duplicate of fd 1; fd 1 becomes stderr, so prints from
    # the student (Python or C) land in the captured log instead of in the protocol.
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    requests = sys.stdin.buffer

    submission = os.path.realpath(args.submission)
    tg, error = import_submission(submission)
    hello = {
        "type": "hello",
        "ok": error is None,
        "error": error,
        "versions": _versions(args.device),
        "device": args.device,
    }
    protocol.write_message(replies, hello)
    if tg is None:
        return 0
    return serve(tg, requests, replies, submission, args.max_message_bytes)

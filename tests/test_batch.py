"""``grade batch``: the layouts instructors have, a real class graded in parallel under the
default sandbox, the gradebook files, ``--resume`` (after a real SIGKILL of a running batch),
grader errors recorded apart from scores; and ``--dask`` on real ``dask scheduler`` and
``dask worker`` processes on loopback (the same gradebook as the local pool, a worker killed
mid-batch, a grader error retried by Dask then recorded)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import distributed
import pytest

from autograder.batch.cli import main as batch_main
from autograder.batch.runner import GRADER_ERROR, GradeSpec, grade_entry, read_record
from autograder.batch.submissions import BatchError, Entry, find_submissions
from autograder.config import load_assignment
from autograder.paths import KIT_ROOT

ID = "hw1"


# ---- finding submissions --------------------------------------------------------------------


def _touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_one_entry_per_student(tmp_path: Path) -> None:
    _touch(tmp_path / "alice" / "tapegrad" / "__init__.py")
    with zipfile.ZipFile(tmp_path / "bob.zip", "w") as z:
        z.writestr("tapegrad/__init__.py", "")
    _touch(tmp_path / "carol.ipynb", "{}")
    _touch(tmp_path / "notes.txt")  # not a submission
    _touch(tmp_path / ".DS_Store")
    entries = find_submissions(tmp_path, ID)
    assert [(e.key, e.source.name, e.layout) for e in entries] == [
        ("alice", "alice", "entries"),
        ("bob", "bob.zip", "entries"),
        ("carol", "carol.ipynb", "entries"),
    ]


GRADESCOPE_METADATA = """\
submission_1001:
  :submitters:
  - :name: Alice Liddell
    :sid: '4401'
    :email: alice@example.edu
  :created_at: 2026-11-30 23:58:12.000000000 -08:00
  :score: 0.0
submission_1002: !ruby/hash:ActiveSupport::HashWithIndifferentAccess
  :submitters:
  - :name: Bob Tables
    :email: bob@example.edu
  - :name: Carol Danvers
    :sid: '4403'
  :created_at: 2026-12-01 00:01:00.000000000 -08:00
"""


def test_gradescope_export_with_a_group_and_ruby_tags(tmp_path: Path) -> None:
    export = tmp_path / "assignment_5512_export"
    _touch(export / "submission_metadata.yml", GRADESCOPE_METADATA)
    _touch(export / "submission_1001" / "tapegrad" / "__init__.py")
    _touch(export / "submission_1002" / "hw1.ipynb", "{}")
    entries = find_submissions(tmp_path, ID)  # the export's one top-level folder
    assert [(e.key, e.students, e.source.name, e.layout) for e in entries] == [
        ("4401", ("4401",), "submission_1001", "gradescope"),
        ("bob", ("bob", "4403"), "submission_1002", "gradescope"),
    ]
    # the same export as Gradescope's zip
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in export.rglob("*"):
            if path.is_file():
                z.write(path, path.relative_to(tmp_path).as_posix())
    again = find_submissions(archive, ID, scratch=tmp_path / "scratch")
    assert [(e.key, e.students) for e in again] == [(e.key, e.students) for e in entries]


def test_nbgrader_submitted_layout(tmp_path: Path) -> None:
    _touch(tmp_path / "submitted" / "alice" / ID / "hw1.ipynb", "{}")
    _touch(tmp_path / "submitted" / "bob" / ID / "hw1.ipynb", "{}")
    _touch(tmp_path / "submitted" / "bob" / "hw2" / "hw2.ipynb", "{}")
    _touch(tmp_path / "submitted" / "carol" / "hw2" / "hw2.ipynb", "{}")  # no hw1
    for where in (tmp_path, tmp_path / "submitted"):
        entries = find_submissions(where, ID)
        assert [(e.key, e.source.relative_to(tmp_path).as_posix()) for e in entries] == [
            ("alice", "submitted/alice/hw1"),
            ("bob", "submitted/bob/hw1"),
        ]


@pytest.mark.parametrize(
    "files, message",
    [
        (["alice/x.py", "alice.zip"], "two submissions for student 'alice'"),
        (["al ice/x.py"], "cannot be a student id"),
        (["notes.txt"], "no submissions found"),
    ],
)
def test_bad_class_folders_are_refused_with_the_reason(
    tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        if name.endswith(".zip"):
            with zipfile.ZipFile(tmp_path / name, "w") as z:
                z.writestr("a", "")
        else:
            _touch(tmp_path / name)
    with pytest.raises(BatchError, match=message):
        find_submissions(tmp_path, ID)


# ---- a real class ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The reference submission and the untouched release of hw1."""
    from autograder.authoring.reference import build_reference
    from autograder.authoring.release import build_release

    base = tmp_path_factory.mktemp("sources")
    build_reference(ID, KIT_ROOT, base / "reference")
    build_release(ID, KIT_ROOT, base / "release")
    return {"reference": base / "reference", "release": base / "release"}


def make_class(sources: dict[str, Path], dest: Path, size: int = 4) -> Path:
    """A class: finished work (folders), untouched releases (zips), a lone notebook, and a
    package that does not import; then more finished work up to ``size``."""
    dest.mkdir()
    shutil.copytree(sources["reference"], dest / "alice")
    with zipfile.ZipFile(dest / "bob.zip", "w") as z:
        for path in sources["release"].rglob("*"):
            if path.is_file() and "data" not in path.relative_to(sources["release"]).parts:
                z.write(path, path.relative_to(sources["release"]).as_posix())
    shutil.copy2(sources["reference"] / "hw1.ipynb", dest / "carol.ipynb")
    shutil.copytree(sources["reference"], dest / "dave")
    with open(dest / "dave" / "tapegrad" / "__init__.py", "a") as f:
        f.write("\ndef broken(:\n")
    for i in range(4, size):
        shutil.copytree(sources["reference"], dest / f"student{i:02d}")
    return dest


def _gradebook(out: Path, *, seconds: bool = False) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO((out / "gradebook.csv").read_text())))
    if not seconds:
        for row in rows:
            row.pop("seconds")
    return rows


def test_a_class_graded_in_parallel(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    klass = make_class(sources, tmp_path / "class")
    out = tmp_path / "out"
    assert batch_main([str(klass), "--assignment", ID, "--out", str(out), "-j", "2"]) == 0
    printed = capsys.readouterr().out
    assert "4 submissions (entries); grading 4 -j 2" in printed
    assert "4 of 4 students graded" in printed and "per minute" in printed
    rows = {r["student"]: r for r in _gradebook(out)}
    points = {c.id: c.points for c in load_assignment(ID, KIT_ROOT).checks}
    notebook_points = sum(p for check, p in points.items() if check.startswith("notebook."))
    assert {s: (float(r["total"]), r["status"]) for s, r in rows.items()} == {
        "alice": (100.0, "graded"),
        "bob": (0.0, "graded"),
        "carol": (pytest.approx(notebook_points), "graded"),  # the notebook's checks only
        "dave": (0.0, "graded"),  # a crash of the student's is a graded result
    }
    assert float(rows["alice"]["ops.matmul"]) == points["ops.matmul"]
    assert float(rows["bob"]["ops.matmul"]) == 0
    dave = json.loads((out / "dave" / "results.json").read_text())
    assert "SyntaxError" in dave["extra_data"]["error"]
    for student in rows:
        assert {p.name for p in (out / student).iterdir()} == {
            "batch.json", "results.json", "report.md", "report.html", "junit.xml",
        }  # fmt: skip
    assert not (out / ".work").exists() or not any((out / ".work").iterdir())
    # the class files
    canvas = list(csv.reader(io.StringIO((out / "canvas.csv").read_text())))
    assert canvas[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert canvas[1][0].strip() == "Points Possible" and float(canvas[1][5]) == 100
    assert sorted(r[3] for r in canvas[2:]) == ["alice", "bob", "carol", "dave"]
    gradescope = list(csv.reader(io.StringIO((out / "gradescope.csv").read_text())))
    assert gradescope[0][:6] == ["Name", "SID", "Email", "Total Score", "Max Points", "Status"]
    assert (out / "histogram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "index.html").read_text()
    for student in rows:
        assert f'href="{student}/report.html"' in page
    assert "ops.matmul" in page and "25%" in page  # one student of four has its full points
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean"] == pytest.approx((100 + 0 + notebook_points + 0) / 4)
    assert summary["hardest"][0]["pass_rate"] == 0.25

    # --resume grades nothing more; without it the batch refuses to overwrite
    before = {s: (out / s / "batch.json").stat().st_mtime_ns for s in rows}
    assert batch_main([str(klass), "--assignment", ID, "--out", str(out), "--resume"]) == 0
    assert "4 already graded, grading 0" in capsys.readouterr().out
    assert before == {s: (out / s / "batch.json").stat().st_mtime_ns for s in rows}
    assert batch_main([str(klass), "--assignment", ID, "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err
    # a changed submission is regraded on resume, the others are not
    shutil.rmtree(klass / "dave")
    shutil.copytree(sources["reference"], klass / "dave")
    assert batch_main([str(klass), "--assignment", ID, "--out", str(out), "--resume"]) == 0
    assert "3 already graded, grading 1" in capsys.readouterr().out
    assert float({r["student"]: r for r in _gradebook(out)}["dave"]["total"]) == 100


def test_a_grader_error_is_retried_once_and_recorded_apart_from_a_score(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    entry = Entry("alice", sources["reference"], ("alice",), "entries")
    record = grade_entry(entry, out, GradeSpec(assignment=ID, timeout=0.05))  # a hung grader
    assert record.status == GRADER_ERROR and record.attempts == 2
    assert "ran past 0.05 s" in (record.error or "")
    # through the command: exit 1, listed apart; --resume retries it and it is graded
    klass = tmp_path / "class"
    klass.mkdir()
    shutil.copytree(sources["reference"], klass / "alice")
    args = [str(klass), "--assignment", ID, "--out", str(tmp_path / "out2")]
    assert batch_main([*args, "--timeout", "0.05"]) == 1
    printed = capsys.readouterr().out
    assert "grader errors (1, not scores" in printed
    assert _gradebook(tmp_path / "out2")[0]["status"] == GRADER_ERROR
    assert batch_main([*args, "--resume"]) == 0
    assert _gradebook(tmp_path / "out2")[0]["status"] == "graded"


def test_a_batch_killed_with_sigkill_resumes_to_the_same_gradebook(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    klass = make_class(sources, tmp_path / "class", size=10)
    command = [sys.executable, "-m", "autograder.cli", "batch", str(klass), "--assignment", ID]
    whole = tmp_path / "whole"
    subprocess.run([*command, "--out", str(whole), "-j", "2"], check=True, capture_output=True)

    killed = tmp_path / "killed"
    batch = subprocess.Popen(
        [*command, "--out", str(killed), "-j", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        published = [p for p in killed.glob("*/batch.json")]
        if len(published) >= 3:
            break
        time.sleep(0.05)
    os.killpg(batch.pid, signal.SIGKILL)  # the batch and the grade runs it started
    batch.wait()
    published = sorted(p.parent.name for p in killed.glob("*/batch.json"))
    assert 3 <= len(published) < 10, published
    # every published folder is whole; nothing else is there but the work area
    for folder in killed.iterdir():
        if folder.name in (".work", ".lock"):
            continue
        assert read_record(folder) is not None and (folder / "results.json").is_file(), folder
    stamps = {s: (killed / s / "batch.json").stat().st_mtime_ns for s in published}

    resumed = subprocess.run(
        [*command, "--out", str(killed), "-j", "2", "--resume"], capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(published)} already graded, grading {10 - len(published)}" in resumed.stdout
    assert stamps == {s: (killed / s / "batch.json").stat().st_mtime_ns for s in published}
    assert _gradebook(killed) == _gradebook(whole)
    assert not (killed / ".work").exists() or not any((killed / ".work").iterdir())


# ---- on a Dask cluster ---------------------------------------------------------------------

DASK = Path(sys.executable).with_name("dask")


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(DASK), *args], stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A scheduler and two single-threaded workers (no nanny: a kill is a kill)."""
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = _start(
        ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(scheduler_file)],
        tmp_path / "scheduler.log",
    )  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        for name in ("w1", "w2"):
            workers.append(
                _start(
                    [
                        "worker",
                        address,
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--name",
                        name,
                    ],
                    tmp_path / f"{name}.log",
                )  # fmt: skip
            )
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield {"address": address, "workers": workers, "log": tmp_path / "scheduler.log"}
    finally:
        for process in [*workers, scheduler]:
            _stop(process)


def _totals(out: Path) -> dict[str, tuple[str, str]]:
    rows = csv.DictReader(io.StringIO((out / "gradebook.csv").read_text()))
    return {r["student"]: (r["total"], r["status"]) for r in rows}


def test_a_class_on_a_dask_cluster_with_a_worker_killed_mid_batch(
    cluster: dict, sources: dict[str, Path], tmp_path: Path
) -> None:
    klass = make_class(sources, tmp_path / "class", size=10)
    local = tmp_path / "local"
    assert batch_main([str(klass), "--assignment", ID, "--out", str(local), "-j", "2"]) == 0

    out = tmp_path / "dask"
    batch = subprocess.Popen(
        [sys.executable, "-m", "autograder.cli", "batch", str(klass), "--assignment", ID,
         "--out", str(out), "--dask", str(cluster["address"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(out.glob("*/batch.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = cluster["workers"][0]
    _stop(killed)  # mid-batch: it was grading a submission
    stdout, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 0, stderr[-3000:]
    assert "grading 10 on the Dask cluster" in stdout
    assert _totals(out) == _totals(local)
    assert len(list(out.glob("*/results.json"))) == 10
    log = Path(str(cluster["log"])).read_text()
    assert "Remove worker" in log, log[-2000:]  # the scheduler saw it die, and moved on


def test_a_grader_error_on_the_cluster_is_retried_then_recorded_apart(
    cluster: dict, sources: dict[str, Path], tmp_path: Path
) -> None:
    klass = tmp_path / "class"
    klass.mkdir()
    (klass / "alice.ipynb").write_bytes((sources["reference"] / "hw1.ipynb").read_bytes())
    out = tmp_path / "out"
    args = [str(klass), "--assignment", ID, "--out", str(out), "--dask", str(cluster["address"])]
    assert batch_main([*args, "--timeout", "0.05"]) == 1
    record = json.loads((out / "alice" / "batch.json").read_text())
    assert record["status"] == GRADER_ERROR and record["attempts"] == 2
    assert "InfrastructureError" in record["error"] and "ran past" in record["error"]
    assert batch_main([*args, "--resume"]) == 0
    assert _totals(out)["alice"][1] == "graded"

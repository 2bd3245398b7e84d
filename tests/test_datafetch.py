"""Tests of ``kit data fetch mnist`` (autograder.authoring.datafetch) against a real HTTP server
on the loopback interface: fresh downloads, verified files left alone, resumed and restarted
transfers, corrupted files, 404s, an unreachable mirror, and the command line."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from autograder.authoring.datafetch import (
    DEFAULT_MIRRORS,
    MIRRORS_ENV,
    MNIST_FILES,
    ChecksumError,
    FetchError,
    RemoteFile,
    UnreachableError,
    fetch,
    resolve_mirrors,
)
from autograder.kit import main

REPO_ROOT = Path(__file__).resolve().parents[1]
SIZES = {"a-images.gz": 50_000, "a-labels.gz": 3_000, "b-images.gz": 20_000}


@dataclass
class Served:
    """The server's state: what it serves, how it misbehaves, and the requests it got."""

    root: Path
    honour_range: bool = True
    cut_after: int | None = None  # send this many body bytes of the next response, then close
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    port: int = 0

    def url(self, folder: str) -> str:
        return f"http://127.0.0.1:{self.port}/{folder}/"

    def ranges(self) -> list[str]:
        return [r for _, r in self.requests if r is not None]


def _handler(served: Served) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Range")))
            path = served.root / self.path.lstrip("/")
            if ".." in self.path or not path.is_file():
                self.send_error(404)
                return
            data = path.read_bytes()
            start, status = 0, 200
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and served.honour_range:
                start, status = int(match.group(1)), 206
                if start >= len(data):
                    self.send_error(416)
                    return
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            if served.cut_after is not None:
                body, served.cut_after = body[: served.cut_after], None
                self.close_connection = True
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A loopback HTTP server on a free port, serving ``tmp_path/served``."""
    state = Served(tmp_path / "served")
    state.root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def publish(served: Served, folder: str, contents: dict[str, bytes]) -> None:
    """Serve ``contents`` (name -> bytes) under ``/folder/``."""
    (served.root / folder).mkdir(exist_ok=True)
    for name, data in contents.items():
        (served.root / folder / name).write_bytes(data)


@pytest.fixture
def contents() -> dict[str, bytes]:
    """Random files (their content does not matter, only their hash)."""
    return {name: os.urandom(size) for name, size in SIZES.items()}


def table(contents: dict[str, bytes]) -> list[RemoteFile]:
    return [RemoteFile(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in contents.items()]


def assert_complete(dest: Path, contents: dict[str, bytes]) -> None:
    assert sorted(p.name for p in dest.iterdir()) == sorted(contents)  # no .part left
    for name, data in contents.items():
        assert (dest / name).read_bytes() == data


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fresh_download_then_nothing_to_do(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    dest, lines = tmp_path / "dest", list[str]()
    fetched = fetch(table(contents), dest, [served.url("good")], timeout=5, log=lines.append)
    assert_complete(dest, contents)
    assert [f.mirror for f in fetched] == [served.url("good")] * len(contents)
    assert len(served.requests) == len(contents) and not served.ranges()
    assert len(lines) == len(contents) and all(served.url("good") in line for line in lines)

    lines.clear()
    again = fetch(table(contents), dest, [served.url("good")], timeout=5, log=lines.append)
    assert len(served.requests) == len(contents)  # nothing downloaded
    assert [f.mirror for f in again] == [None] * len(contents)
    assert all("already there, verified" in line for line in lines)
    assert_complete(dest, contents)


def test_interrupted_download_is_resumed(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    dest, files = tmp_path / "dest", table(contents)
    served.cut_after = 12_345
    with pytest.raises(FetchError, match="run the command again to resume") as err:
        fetch(files, dest, [served.url("good")], timeout=5, log=lambda _: None)
    assert not isinstance(err.value, (ChecksumError, UnreachableError))
    assert (dest / "a-images.gz.part").stat().st_size == 12_345
    assert not (dest / "a-images.gz").exists()

    lines: list[str] = []
    fetched = fetch(files, dest, [served.url("good")], timeout=5, log=lines.append)
    assert served.requests[1] == ("/good/a-images.gz", "bytes=12345-")
    assert served.ranges() == ["bytes=12345-"]
    assert fetched[0].resumed_at == 12_345 and "resumed at 12345 bytes" in lines[0]
    assert_complete(dest, contents)


def test_server_ignoring_range_restarts(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    dest, files = tmp_path / "dest", table(contents)
    served.cut_after, served.honour_range = 1000, False
    with pytest.raises(FetchError):
        fetch(files, dest, [served.url("good")], timeout=5, log=lambda _: None)
    assert (dest / "a-images.gz.part").stat().st_size == 1000

    lines: list[str] = []
    fetched = fetch(files, dest, [served.url("good")], timeout=5, log=lines.append)
    assert served.ranges() == ["bytes=1000-"]  # asked, answered with 200 and the whole file
    assert fetched[0].resumed_at == 0 and "starting over" in lines[0]
    assert_complete(dest, contents)


def test_corrupted_mirror_is_rejected(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    bad = dict(contents, **{"a-labels.gz": os.urandom(SIZES["a-labels.gz"])})  # same size
    publish(served, "bad", bad)
    files = table(contents)
    good_hash = files[1].sha256
    bad_hash = hashlib.sha256(bad["a-labels.gz"]).hexdigest()

    only_bad = tmp_path / "only-bad"
    with pytest.raises(ChecksumError) as err:
        fetch(files, only_bad, [served.url("bad")], timeout=5, log=lambda _: None)
    message = str(err.value)
    assert "a-labels.gz" in message and good_hash in message and bad_hash in message
    assert sorted(p.name for p in only_bad.iterdir()) == ["a-images.gz"]  # nothing else kept

    dest, lines = tmp_path / "dest", list[str]()
    fetched = fetch(files, dest, [served.url("bad"), served.url("good")], 5, lines.append)
    assert [f.mirror for f in fetched] == [served.url(m) for m in ("bad", "good", "bad")]
    assert any(bad_hash in line and "trying the next mirror" in line for line in lines)
    assert_complete(dest, contents)


def test_wrong_file_in_dest(served: Served, contents: dict[str, bytes], tmp_path: Path) -> None:
    publish(served, "good", contents)
    dest, files = tmp_path / "dest", table(contents)
    dest.mkdir()
    (dest / "a-labels.gz").write_bytes(os.urandom(SIZES["a-labels.gz"]))  # full size, wrong
    lines: list[str] = []
    fetch(files, dest, [served.url("good")], timeout=5, log=lines.append)
    assert any("present but wrong" in line for line in lines)
    assert_complete(dest, contents)

    (dest / "b-images.gz").write_bytes(b"something else")  # another size: not ours to delete
    with pytest.raises(FetchError, match="move it away or delete it"):
        fetch(files, dest, [served.url("good")], timeout=5, log=lambda _: None)
    assert (dest / "b-images.gz").read_bytes() == b"something else"


def test_complete_part_is_verified_and_renamed(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a-images.gz.part").write_bytes(contents["a-images.gz"])
    fetch(table(contents), dest, [served.url("good")], timeout=5, log=lambda _: None)
    assert "/good/a-images.gz" not in [path for path, _ in served.requests]
    assert_complete(dest, contents)


def test_range_not_satisfiable_restarts(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    short = contents["a-images.gz"][:10_000]  # a mirror with a shorter, wrong file
    publish(served, "short", {"a-images.gz": short})
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "a-images.gz.part").write_bytes(contents["a-images.gz"][:30_000])
    with pytest.raises(ChecksumError, match=hashlib.sha256(short).hexdigest()):
        fetch(table(contents), dest, [served.url("short")], timeout=5, log=lambda _: None)
    assert served.ranges() == ["bytes=30000-"]  # 416, then the whole (wrong) file
    assert [r for _, r in served.requests] == ["bytes=30000-", None]
    assert list(dest.iterdir()) == []


def test_404_falls_through_to_the_next_mirror(
    served: Served, contents: dict[str, bytes], tmp_path: Path
) -> None:
    publish(served, "good", contents)
    publish(served, "partial", {"a-images.gz": contents["a-images.gz"]})
    mirrors = [served.url("missing"), served.url("partial"), served.url("good")]
    fetched = fetch(table(contents), tmp_path / "dest", mirrors, timeout=5, log=lambda _: None)
    assert [f.mirror for f in fetched] == [mirrors[1], mirrors[2], mirrors[2]]
    assert_complete(tmp_path / "dest", contents)

    with pytest.raises(FetchError, match="HTTP 404") as err:
        fetch(table(contents), tmp_path / "none", mirrors[:1], timeout=5, log=lambda _: None)
    assert not isinstance(err.value, (ChecksumError, UnreachableError))


def test_resolve_mirrors() -> None:
    assert resolve_mirrors(None, {}) == list(DEFAULT_MIRRORS)
    assert resolve_mirrors(None, {MIRRORS_ENV: " "}) == list(DEFAULT_MIRRORS)
    env = {MIRRORS_ENV: "http://a/x  https://b/y/"}
    assert resolve_mirrors(None, env) == ["http://a/x/", "https://b/y/"]
    assert resolve_mirrors(["http://c/"], env) == ["http://c/"]
    with pytest.raises(FetchError, match="not a URL"):
        resolve_mirrors(["storage.example.com/mnist"], {})


# ---- the command line, with the real MNIST table


def test_cli_offline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirrors = [f"http://127.0.0.1:{closed_port()}/mnist/", f"http://127.0.0.1:{closed_port()}/"]
    argv = ["data", "fetch", "mnist", "--root", str(REPO_ROOT), "--dest", str(tmp_path)]
    for mirror in mirrors:
        argv += ["--mirror", mirror]
    assert main([*argv, "--timeout", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kit data: error: cannot download train-images-idx3-ubyte.gz: no mirror")
    assert "Traceback" not in err and err.count("\n") == 1  # one paragraph
    assert all(mirror in err for mirror in mirrors)
    assert all(mirrors[0] + f.name in err for f in MNIST_FILES)  # the URLs to fetch by hand
    assert str(tmp_path) in err and "run the command again" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_offline_mirrors_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setenv(MIRRORS_ENV, mirror)
    argv = ["data", "fetch", "mnist", "--root", str(REPO_ROOT), "--dest", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no mirror could be reached" in err and mirror in err
    assert not any(default in err for default in DEFAULT_MIRRORS)


def test_cli_rejects_wrong_content(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    publish(served, "mnist", {f.name: os.urandom(2000) for f in MNIST_FILES})
    dest = tmp_path / "dest"
    argv = ["data", "fetch", "mnist", "--root", str(REPO_ROOT), "--dest", str(dest)]
    assert main([*argv, "--mirror", served.url("mnist")]) == 2
    out, err = capsys.readouterr()
    first = MNIST_FILES[0]
    got = hashlib.sha256((served.root / "mnist" / first.name).read_bytes()).hexdigest()
    assert "train-images-idx3-ubyte.gz: 9912422 bytes from " + served.url("mnist") in out
    assert err.startswith("kit data: error: no mirror gave the right train-images-idx3-ubyte.gz")
    assert first.sha256 in err and got in err and "Traceback" not in err
    assert list(dest.iterdir()) == []

"""``kit data fetch mnist [--dest DIR] [--mirror URL ...]``: the full MNIST, SHA-256 verified.

The kit bundles a 5,000-digit sample (``data/mnist-sample/``) so that everything works offline;
the thresholds of the dataset "mnist" in ``assignment.toml`` are for the full 70,000 digits,
which this command downloads: the four gzipped IDX files of the original distribution, into
``DEST`` (default: ``data/mnist/`` of the repository, ignored by git)::

    kit data fetch mnist
    MNIST_DIR=data/mnist grade SUBMISSION --assignment hw2

``grade`` (:func:`autograder.grading.training.load_dataset`) and ``tg.data.load_mnist`` read the
``.gz`` files from ``$MNIST_DIR`` as they are.

Each file is checked against the size and SHA-256 in :data:`MNIST_FILES`, the one table of what
the right files are; a file already in ``DEST`` with the right hash is not downloaded again.
Mirrors are tried in order, file by file: :data:`DEFAULT_MIRRORS`, or those of
``$TAPEGRAD_MNIST_MIRRORS`` (space-separated), or those given by ``--mirror`` (repeatable); a
file's URL is the mirror followed by its name. A download goes to ``NAME.part`` and is renamed
to ``NAME`` only once verified, so a corrupted file never sits under the final name; an
interrupted download is resumed (``Range: bytes=N-``) by the next run, or restarted where the
server does not support ranges. Offline, the command says which mirrors it tried and how to
fetch the files by hand (exit status 2, as for every error).

Only the standard library is used (``urllib.request``); :func:`fetch` takes the table, the
destination and the mirrors as parameters, so the tests serve small files of their own.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder import KitError

__all__ = [
    "DEFAULT_DEST",
    "DEFAULT_MIRRORS",
    "DEFAULT_TIMEOUT",
    "MIRRORS_ENV",
    "MNIST_FILES",
    "ChecksumError",
    "FetchError",
    "Fetched",
    "RemoteFile",
    "UnreachableError",
    "fetch",
    "resolve_mirrors",
]


@dataclass(frozen=True)
class RemoteFile:
    """A file to download: its name (on the mirrors and in the destination), size and hash."""

    name: str
    size: int
    sha256: str


# The original MNIST distribution (Yann LeCun, Corinna Cortes, Christopher J.C. Burges),
# CC BY-SA 3.0, as the mirrors serve it.
MNIST_FILES: tuple[RemoteFile, ...] = (
    RemoteFile(
        "train-images-idx3-ubyte.gz",
        9912422,
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    RemoteFile(
        "train-labels-idx1-ubyte.gz",
        28881,
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    RemoteFile(
        "t10k-images-idx3-ubyte.gz",
        1648877,
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    RemoteFile(
        "t10k-labels-idx1-ubyte.gz",
        4542,
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
)

DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
)
MIRRORS_ENV = "TAPEGRAD_MNIST_MIRRORS"
DEFAULT_DEST = Path("data") / "mnist"  # relative to the repository root
DEFAULT_TIMEOUT = 30.0  # seconds, per connection attempt and per read
_CHUNK = 1 << 16


class FetchError(KitError):
    """A file could not be downloaded and verified (the message says why, mirror by mirror)."""


class UnreachableError(FetchError):
    """No mirror could be reached: offline, a proxy, a firewall, or the mirrors are down."""


class ChecksumError(FetchError):
    """The mirrors answered, but no mirror gave a file with the expected size and SHA-256."""


@dataclass(frozen=True)
class Fetched:
    """What :func:`fetch` did for one file: ``mirror`` is None when it was already there,
    ``resumed_at`` the size of the ``.part`` the download continued (0: from the start)."""

    name: str
    path: Path
    size: int
    mirror: str | None
    resumed_at: int = 0


class _Unreachable(Exception):
    """Could not connect to a mirror (no HTTP answer at all)."""


class _Interrupted(Exception):
    """The transfer stopped before the end; the ``.part`` keeps what arrived."""


class _Mismatch(Exception):
    """A complete transfer whose size or hash is wrong; ``got`` describes what came."""

    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


class _HttpError(Exception):
    """The mirror answered with an HTTP error (404: it does not have the file)."""


class _Restart(Exception):
    """The server cannot continue the ``.part`` (416, or a range that is not the one asked)."""


def resolve_mirrors(given: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    """The mirrors to try, in order: ``--mirror`` if given, else ``$TAPEGRAD_MNIST_MIRRORS``
    (space-separated) if set, else :data:`DEFAULT_MIRRORS`; each ends with ``/``."""
    if given:
        mirrors = list(given)
    elif env.get(MIRRORS_ENV, "").split():
        mirrors = env[MIRRORS_ENV].split()
    else:
        mirrors = list(DEFAULT_MIRRORS)
    for mirror in mirrors:
        if "://" not in mirror:
            raise FetchError(f"mirror {mirror!r} is not a URL (e.g. https://host/path/)")
    return [m if m.endswith("/") else m + "/" for m in mirrors]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, spec: RemoteFile) -> bool:
    return path.stat().st_size == spec.size and _sha256(path) == spec.sha256


def _describe(path: Path, spec: RemoteFile) -> str:
    size = path.stat().st_size
    return (
        f"{size} bytes{'' if size == spec.size else f' (not {spec.size})'}, sha256 {_sha256(path)}"
    )


def _download(
    url: str, part: Path, spec: RemoteFile, timeout: float, log: Callable[[str], None], label: str
) -> int:
    """Download ``url`` into ``part`` (continuing it when it exists and the server answers 206)
    and verify it; returns the offset it resumed at. Raises the private exceptions above."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "tapegrad-kit"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            raise _Restart(f"HTTP 416 for bytes {offset}-") from exc
        raise _HttpError(f"HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _Unreachable(str(reason) or type(reason).__name__) from exc
    with response:
        status = getattr(response, "status", None)  # None for file:// URLs
        if status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {offset}-"):
                raise _Restart(f"asked for bytes {offset}-, got Content-Range {content_range!r}")
            mode, resumed_at = "ab", offset
        else:  # 200: the whole file (the server ignores ranges, or there was no .part)
            mode, resumed_at = "wb", 0
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length and length.isdigit() else None
        resumed = f", resumed at {resumed_at} bytes" if resumed_at else ""
        restarted = (
            " (the server ignores ranges: starting over)" if offset and not resumed_at else ""
        )
        log(f"{label}: {spec.size} bytes from {url.rsplit('/', 1)[0]}/{resumed}{restarted}")
        received = 0
        try:
            with part.open(mode) as out:
                while block := response.read(_CHUNK):
                    out.write(block)
                    received += len(block)
                    if resumed_at + received > spec.size:
                        break
        except (OSError, http.client.HTTPException) as exc:
            raise _Interrupted(f"interrupted at {part.stat().st_size} bytes ({exc})") from exc
    total = part.stat().st_size
    if total > spec.size:
        part.unlink()
        raise _Mismatch(f"more than {spec.size} bytes")
    if expected_body is not None and received < expected_body:
        raise _Interrupted(f"interrupted at {total} of {spec.size} bytes")
    if total != spec.size or _sha256(part) != spec.sha256:
        got = _describe(part, spec)
        part.unlink()
        raise _Mismatch(got)
    return resumed_at


def _fetch_one(
    spec: RemoteFile,
    dest: Path,
    mirrors: Sequence[str],
    timeout: float,
    log: Callable[[str], None],
    missing: Sequence[RemoteFile],
) -> Fetched:
    """Fetch ``spec``; ``missing`` (it and the files after it) are named in the error."""
    final, part = dest / spec.name, dest / (spec.name + ".part")
    if final.exists():
        if _verified(final, spec):
            log(f"{spec.name}: already there, verified ({spec.size} bytes)")
            return Fetched(spec.name, final, spec.size, None)
        if final.stat().st_size != spec.size:
            raise FetchError(
                f"{final} is not the expected file ({_describe(final, spec)}; expected "
                f"{spec.size} bytes, sha256 {spec.sha256}): move it away or delete it, then run "
                "the command again"
            )
        log(f"{spec.name}: present but wrong (sha256 {_sha256(final)}): deleted, downloading again")
        final.unlink()
    if part.exists():
        if part.stat().st_size > spec.size:
            part.unlink()
        elif part.stat().st_size == spec.size:  # complete but not renamed: verify it
            if _sha256(part) == spec.sha256:
                os.replace(part, final)
                log(f"{spec.name}: completed earlier, verified ({spec.size} bytes)")
                return Fetched(spec.name, final, spec.size, None)
            part.unlink()
    problems: list[tuple[str, str, str]] = []  # (mirror, kind, what happened)
    for index, mirror in enumerate(mirrors):
        url = mirror + spec.name
        for _attempt in range(2):  # a second attempt only after _Restart
            try:
                resumed_at = _download(url, part, spec, timeout, log, spec.name)
            except _Restart as exc:
                part.unlink(missing_ok=True)
                problems.append((mirror, "restart", str(exc)))
                continue
            except _Unreachable as exc:
                problems.append((mirror, "unreachable", str(exc)))
            except _HttpError as exc:
                problems.append((mirror, "http", str(exc)))
            except _Interrupted as exc:
                problems.append((mirror, "interrupted", str(exc)))
            except _Mismatch as exc:
                problems.append((mirror, "mismatch", exc.got))
            else:
                os.replace(part, final)
                return Fetched(spec.name, final, spec.size, mirror, resumed_at)
            if index + 1 < len(mirrors):
                log(f"{spec.name}: {mirror}: {problems[-1][2]}; trying the next mirror")
            break
    raise _failure(spec, dest, mirrors, problems, missing)


def _failure(
    spec: RemoteFile,
    dest: Path,
    mirrors: Sequence[str],
    problems: list[tuple[str, str, str]],
    missing: Sequence[RemoteFile],
) -> FetchError:
    tried = "; ".join(f"{mirror}: {what}" for mirror, _, what in problems)
    kinds = {kind for _, kind, _ in problems if kind != "restart"}
    urls = " ".join(mirrors[0] + f.name for f in missing) if mirrors else ""
    others = f" (or the same names under {' or '.join(mirrors[1:])})" if len(mirrors) > 1 else ""
    by_hand = (
        f"To fetch the files by hand, download {urls}{others}, put them in {dest}, and run the "
        "command again: it verifies them and downloads only what is still missing."
    )
    if kinds == {"unreachable"}:
        return UnreachableError(
            f"cannot download {spec.name}: no mirror could be reached ({tried}). Are you offline, "
            f"or behind a proxy (https_proxy)? {by_hand}"
        )
    if "mismatch" in kinds and not kinds & {"interrupted", "unreachable"}:
        return ChecksumError(
            f"no mirror gave the right {spec.name}: expected {spec.size} bytes, sha256 "
            f"{spec.sha256}; got {tried}. Nothing was kept under {dest / spec.name}."
        )
    resume = (
        f" What arrived is kept in {dest / (spec.name + '.part')}: run the command again to resume."
        if "interrupted" in kinds
        else ""
    )
    return FetchError(
        f"cannot download {spec.name} (expected sha256 {spec.sha256}): {tried}.{resume} {by_hand}"
    )


def fetch(
    files: Sequence[RemoteFile],
    dest: Path,
    mirrors: Sequence[str],
    timeout: float = DEFAULT_TIMEOUT,
    log: Callable[[str], None] = print,
) -> list[Fetched]:
    """Make ``dest`` hold every file of ``files``, verified, downloading those missing from
    ``mirrors`` (each a URL prefix ending with ``/``, tried in order). ``log`` gets one line
    per file, and one per mirror that failed. Raises :class:`UnreachableError` (no mirror
    answered), :class:`ChecksumError` (wrong content everywhere) or :class:`FetchError`
    (404s, interrupted transfers) at the first file that cannot be had; the files verified
    before it stay."""
    dest.mkdir(parents=True, exist_ok=True)
    return [
        _fetch_one(spec, dest, mirrors, timeout, log, files[index:])
        for index, spec in enumerate(files)
    ]


# --------------------------------------------------------------------------- the command line


def register(
    subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]
) -> None:
    """Add ``kit data fetch mnist`` to the ``kit`` command line."""
    data = subparsers.add_parser("data", parents=parents, help="download datasets (full MNIST)")
    actions = data.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch_ = actions.add_parser(
        "fetch",
        parents=parents,
        help="download a dataset, SHA-256 verified (resumes an interrupted download)",
        description=(
            "Download the four files of the full MNIST (gzipped IDX) into DEST, verify their "
            "size and SHA-256, and skip those already there and verified. Use them with "
            "MNIST_DIR=DEST grade ... (the thresholds of the dataset 'mnist' apply)."
        ),
    )
    fetch_.add_argument("dataset", choices=("mnist",), help="the dataset (only mnist)")
    fetch_.add_argument(
        "--dest", type=Path, default=None, help=f"destination folder (default: ROOT/{DEFAULT_DEST})"
    )
    fetch_.add_argument(
        "--mirror",
        action="append",
        default=None,
        metavar="URL",
        help=(
            f"a URL prefix to download NAME from as URL/NAME; repeat to try several in order "
            f"(default: ${MIRRORS_ENV}, space-separated, else {' then '.join(DEFAULT_MIRRORS)})"
        ),
    )
    fetch_.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"network timeout per connection and per read (default: {DEFAULT_TIMEOUT:g})",
    )
    fetch_.set_defaults(run=run)


def run(args: argparse.Namespace, root: Path) -> int:
    """Run ``kit data fetch mnist [--dest DIR] [--mirror URL ...] [--timeout SECONDS]``."""
    dest = (args.dest if args.dest is not None else root / DEFAULT_DEST).resolve()
    mirrors = resolve_mirrors(args.mirror, os.environ)
    fetched = fetch(MNIST_FILES, dest, mirrors, timeout=args.timeout)
    total = sum(f.size for f in fetched)
    print(f"MNIST: {len(fetched)} files, {total} bytes, verified, in {dest}")
    print("Grade with it (the thresholds of the dataset 'mnist' apply):")
    print(f"    MNIST_DIR={dest} grade SUBMISSION --assignment ID")
    print("tg.data.load_mnist() reads $MNIST_DIR too.")
    return 0

"""The wire format between the trusted grader and the sandboxed worker: a JSON header plus raw
array bytes. Never pickle: unpickling the worker's output would run the student's code in the
grader.

One message is::

    b"TGW1"  uint32 big-endian header length  UTF-8 JSON object  array bytes...

The header's ``"arrays"`` entry lists ``{"dtype": "<f8", "shape": [3, 4]}`` for each array that
follows, as raw C-contiguous little-endian bytes, in order. The reader assumes the other side is
hostile: every length is checked before anything is allocated, and any malformed input raises
:class:`ProtocolError`. ``"arrays"`` is a wire detail: :func:`read_message` removes it from the
header it returns, and :func:`write_message` refuses a header that already has it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MAGIC",
    "MAX_HEADER_BYTES",
    "MAX_MESSAGE_BYTES",
    "MAX_NDIM",
    "MessageDecoder",
    "ProtocolError",
    "encode_message",
    "read_message",
    "write_message",
]

MAGIC = b"TGW1"
MAX_HEADER_BYTES = 2**20
MAX_MESSAGE_BYTES = 256 * 2**20  # default cap on the array bytes of one message
MAX_NDIM = 8
MAX_DIM = 2**31 - 1  # one axis; keeps NumPy's reshape away from absurd (zero-size) shapes
_PREFIX = struct.Struct(">4sI")

# Little-endian (or byte-order-free) spellings of the dtypes that may cross the channel.
_ALLOWED = (
    [np.bool_, np.float16, np.float32, np.float64]
    + [np.int8, np.int16, np.int32, np.int64]
    + [np.uint8, np.uint16, np.uint32, np.uint64]
)
DTYPES: dict[str, np.dtype] = {
    np.dtype(t).newbyteorder("<").str: np.dtype(t).newbyteorder("<") for t in _ALLOWED
}


class ProtocolError(Exception):
    """A message that does not follow the format (or one that cannot be written)."""


def _wire_dtype(dtype: np.dtype) -> np.dtype:
    wire = dtype.newbyteorder("<") if dtype.byteorder in "=<>" else dtype
    if wire.str not in DTYPES:
        raise ProtocolError(
            f"arrays of dtype {dtype} cannot be sent; use bool, (u)int8-64 or float16/32/64"
        )
    return wire


def encode_message(header: dict[str, Any], arrays: Sequence[np.ndarray] = ()) -> bytes:
    """The bytes of one message. ``header`` must be JSON-serialisable and must not contain
    ``"arrays"``; ``arrays`` must be NumPy arrays of an allowed dtype."""
    if not isinstance(header, dict):
        raise ProtocolError(f"a header must be a dict, not {type(header).__name__}")
    if "arrays" in header:
        raise ProtocolError('"arrays" is reserved in a header: pass the arrays separately')
    specs, chunks = [], []
    for i, a in enumerate(arrays):
        if not isinstance(a, np.ndarray):
            raise ProtocolError(
                f"array {i} is a {type(a).__name__}, not a NumPy array: convert it first"
            )
        wire = _wire_dtype(a.dtype)
        chunks.append(np.ascontiguousarray(a, dtype=wire).tobytes())
        specs.append({"dtype": wire.str, "shape": list(a.shape)})
    try:
        text = json.dumps({**header, "arrays": specs}, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"the header is not JSON-serialisable: {e}") from None
    head = text.encode("utf-8")
    if len(head) > MAX_HEADER_BYTES:
        raise ProtocolError(f"the header is {len(head)} bytes, over {MAX_HEADER_BYTES}")
    return b"".join([_PREFIX.pack(MAGIC, len(head)), head, *chunks])


def write_message(
    stream: BinaryIO, header: dict[str, Any], arrays: Sequence[np.ndarray] = ()
) -> None:
    """Encode one message completely (so a failure never leaves half a message on the
    stream), write it and flush."""
    stream.write(encode_message(header, arrays))
    stream.flush()


# -- reading ------------------------------------------------------------------------------------


def _parse_prefix(prefix: bytes) -> int:
    magic, length = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise ProtocolError(f"bad magic {magic!r} (expected {MAGIC!r}): not a message")
    if length > MAX_HEADER_BYTES:
        raise ProtocolError(f"declared header length {length} is over {MAX_HEADER_BYTES}")
    return length


_Spec = tuple[np.dtype, tuple[int, ...], int]


def _parse_header(raw: bytes, max_bytes: int) -> tuple[dict[str, Any], list[_Spec]]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ProtocolError(f"the header is not valid JSON: {str(e)[:200]}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"the header is a JSON {type(header).__name__}, not an object")
    entries = header.pop("arrays", [])
    if not isinstance(entries, list):
        raise ProtocolError('"arrays" must be a list')
    specs, total = [], 0
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape"}:
            raise ProtocolError(f'array {i}: expected {{"dtype": ..., "shape": [...]}}')
        dtype = DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
        if dtype is None:
            raise ProtocolError(f"array {i}: dtype {str(entry['dtype'])[:40]!r} is not allowed")
        shape = entry["shape"]
        if not isinstance(shape, list) or len(shape) > MAX_NDIM:
            raise ProtocolError(f"array {i}: the shape must be a list of at most {MAX_NDIM} ints")
        size = 1
        for n in shape:
            # bool is an int subclass in Python; true/false are not dimensions
            if type(n) is not int or not 0 <= n <= MAX_DIM:
                raise ProtocolError(f"array {i}: bad dimension {str(n)[:40]} in the shape")
            size *= n
        total += size * dtype.itemsize
        if total > max_bytes:
            raise ProtocolError(f"the arrays declare more than {max_bytes} bytes")
        specs.append((dtype, tuple(shape), size * dtype.itemsize))
    return header, specs


def _to_array(buf: bytes | bytearray | memoryview, offset: int, spec: _Spec) -> np.ndarray:
    dtype, shape, nbytes = spec
    if dtype.kind == "b":  # any nonzero byte is True; never build a bool holding 2..255
        flat = np.frombuffer(buf, np.uint8, nbytes, offset) != 0
    else:
        flat = np.frombuffer(buf, dtype, nbytes // dtype.itemsize, offset)
        flat = flat.astype(dtype.newbyteorder("="))  # a fresh, writable, native-endian copy
    return flat.reshape(shape)


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    parts, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise ProtocolError(f"truncated message: the stream ended inside the {what}")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_message(
    stream: BinaryIO, *, max_bytes: int = MAX_MESSAGE_BYTES
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Read one message: ``(header without "arrays", arrays)``. Raises :class:`EOFError` when
    the stream ends cleanly before a message starts, :class:`ProtocolError` for anything else
    that is not a well-formed message."""
    first = stream.read(_PREFIX.size)
    if not first:
        raise EOFError("the stream ended")
    prefix = first + _read_exact(stream, _PREFIX.size - len(first), "prefix")
    raw = _read_exact(stream, _parse_prefix(prefix), "header")
    header, specs = _parse_header(raw, max_bytes)
    arrays = [_to_array(_read_exact(stream, s[2], f"array {i}"), 0, s) for i, s in enumerate(specs)]
    return header, arrays


class MessageDecoder:
    """Incremental reader for a non-blocking channel: :meth:`feed` bytes as they arrive, then
    :meth:`next_message` returns a message once it is complete (else None). Sizes are checked
    as soon as the header is in, so a hostile writer cannot make the reader buffer more than
    ``max_bytes`` plus one header."""

    def __init__(self, *, max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._parsed: tuple[int, dict[str, Any], list[_Spec]] | None = None

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def pending(self) -> int:
        """Bytes received and not yet returned as part of a message."""
        return len(self._buf)

    def next_message(self) -> tuple[dict[str, Any], list[np.ndarray]] | None:
        if self._parsed is None:
            if len(self._buf) < _PREFIX.size:
                return None
            length = _parse_prefix(bytes(self._buf[: _PREFIX.size]))
            end = _PREFIX.size + length
            if len(self._buf) < end:
                return None
            header, specs = _parse_header(bytes(self._buf[_PREFIX.size : end]), self.max_bytes)
            self._parsed = (end, header, specs)
        start, header, specs = self._parsed
        end = start + sum(s[2] for s in specs)
        if len(self._buf) < end:
            return None
        arrays, offset = [], start
        for spec in specs:
            arrays.append(_to_array(self._buf, offset, spec))
            offset += spec[2]
        del self._buf[:end]
        self._parsed = None
        return header, arrays

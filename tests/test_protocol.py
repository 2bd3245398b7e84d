"""The worker protocol: round trips, and hostile bytes that must raise ProtocolError."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest

from autograder.worker.protocol import (
    DTYPES,
    MAGIC,
    MessageDecoder,
    ProtocolError,
    encode_message,
    read_message,
    write_message,
)

ALL_DTYPES = [
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64,
]  # fmt: skip
SHAPES = [(), (0,), (3,), (2, 0, 4), (3, 4), (1, 2, 3, 1)]


def _sample(dtype: type, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if dtype is np.bool_:
        return np.asarray(rng.random(shape) < 0.5)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else np.finfo(dtype)
    values = rng.uniform(float(info.min) / 4, float(info.max) / 4, shape)
    return np.asarray(values).astype(dtype)


def _frame(header: bytes) -> bytes:
    return MAGIC + struct.pack(">I", len(header)) + header


def _read(data: bytes, **kw: int) -> tuple[dict, list[np.ndarray]]:
    return read_message(io.BytesIO(data), **kw)


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda t: np.dtype(t).name)
def test_round_trip_every_dtype_and_shape(dtype: type) -> None:
    rng = np.random.default_rng(0)
    arrays = [_sample(dtype, shape, rng) for shape in SHAPES]
    stream = io.BytesIO()
    write_message(stream, {"type": "t", "nested": {"x": [1, 2.5, None]}}, arrays)
    stream.seek(0)
    header, back = read_message(stream)
    assert header == {"type": "t", "nested": {"x": [1, 2.5, None]}}
    assert len(back) == len(arrays)
    for a, b in zip(arrays, back, strict=True):
        assert b.dtype == a.dtype and b.shape == a.shape
        assert b.flags.writeable and b.flags.c_contiguous and b.dtype.isnative
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_big_endian_and_special_values() -> None:
    a = np.arange(24.0).reshape(4, 6)[:, ::2].T  # a strided view
    b = np.array([1.5, -2.0, 3.25], dtype=">f8")
    c = np.array([np.nan, np.inf, -np.inf, -0.0])
    header, (a2, b2, c2) = _read(encode_message({}, [a, b, c]))
    np.testing.assert_array_equal(a2, a)
    assert b2.dtype == np.float64 and b2.dtype.isnative
    np.testing.assert_array_equal(b2, b)
    np.testing.assert_array_equal(c2, c)
    assert np.signbit(c2[3])


def test_several_messages_on_one_stream_then_eof() -> None:
    stream = io.BytesIO(encode_message({"i": 1}, [np.ones(3)]) + encode_message({"i": 2}))
    assert read_message(stream)[0] == {"i": 1}
    assert read_message(stream)[0] == {"i": 2}
    with pytest.raises(EOFError):
        read_message(stream)


def test_decoder_byte_by_byte() -> None:
    data = encode_message({"a": 1}, [np.arange(5, dtype=np.int32)]) + encode_message({"b": 2})
    decoder, got = MessageDecoder(), []
    for i in range(len(data)):
        decoder.feed(data[i : i + 1])
        while (message := decoder.next_message()) is not None:
            got.append(message)
    assert [h for h, _ in got] == [{"a": 1}, {"b": 2}]
    np.testing.assert_array_equal(got[0][1][0], np.arange(5))
    assert decoder.pending == 0


def test_bool_bytes_other_than_0_and_1_become_true() -> None:
    header = json.dumps({"arrays": [{"dtype": "|b1", "shape": [3]}]}).encode()
    (a,) = _read(_frame(header) + b"\x00\x02\xff")[1]
    assert a.tolist() == [False, True, True]


@pytest.mark.parametrize(
    "value",
    [np.array([object()]), np.array(["text"]), np.zeros(2, dtype="V8"), np.zeros(2, np.complex128),
     [1.0, 2.0], np.float64(1.0)],
    ids=["object", "str", "void", "complex", "list", "numpy-scalar"],
)  # fmt: skip
def test_writer_refuses_what_cannot_cross(value: object) -> None:
    with pytest.raises(ProtocolError):
        encode_message({}, [value])  # type: ignore[list-item]


def test_writer_refuses_reserved_key_and_non_json() -> None:
    with pytest.raises(ProtocolError, match="reserved"):
        encode_message({"arrays": []})
    with pytest.raises(ProtocolError, match="JSON"):
        encode_message({"x": object()})


def _arrays_header(*specs: object) -> bytes:
    return _frame(json.dumps({"arrays": list(specs)}).encode())


HOSTILE = {
    "empty-after-partial-prefix": MAGIC[:2],
    "bad magic": b"XXXX" + struct.pack(">I", 2) + b"{}",
    "huge header length": MAGIC + struct.pack(">I", 2**32 - 1),
    "truncated header": MAGIC + struct.pack(">I", 100) + b'{"a": 1',
    "not utf-8": _frame(b'{"a": "\xff\xfe"}'),
    "not json": _frame(b"{not json"),
    "json list": _frame(b"[1, 2, 3]"),
    "json string": _frame(b'"hello"'),
    "deep nesting": _frame(b"[" * 100_000 + b"]" * 100_000),
    "huge int": _frame(b'{"a": ' + b"9" * 10_000 + b"}"),
    "arrays not a list": _frame(b'{"arrays": {"dtype": "<f8"}}'),
    "entry not a dict": _arrays_header([1, 2]),
    "extra key": _arrays_header({"dtype": "<f8", "shape": [1], "offset": 5}),
    "object dtype": _arrays_header({"dtype": "|O", "shape": [1]}),
    "void dtype": _arrays_header({"dtype": "|V8", "shape": [1]}),
    "str dtype": _arrays_header({"dtype": "<U4", "shape": [1]}),
    "big-endian dtype": _arrays_header({"dtype": ">f8", "shape": [1]}),
    "dtype not a string": _arrays_header({"dtype": 8, "shape": [1]}),
    "negative shape": _arrays_header({"dtype": "<f8", "shape": [-1]}),
    "float shape": _arrays_header({"dtype": "<f8", "shape": [2.0]}),
    "bool shape": _arrays_header({"dtype": "<f8", "shape": [True]}),
    "shape not a list": _arrays_header({"dtype": "<f8", "shape": 3}),
    "too many dims": _arrays_header({"dtype": "<f8", "shape": [1] * 9}),
    "absurd zero-size": _arrays_header({"dtype": "<f8", "shape": [0, 10**30]}),
    "huge declared size": _arrays_header({"dtype": "<f8", "shape": [2**20, 2**20]}),
    "sum over the cap": _arrays_header(*[{"dtype": "<f8", "shape": [2**24]}] * 3),
    "truncated body": _arrays_header({"dtype": "<f8", "shape": [4]}) + b"\0" * 31,
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bytes_raise_protocol_error(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        _read(data)
    decoder = MessageDecoder()  # the incremental reader rejects, or waits for more bytes
    decoder.feed(data)
    try:
        assert decoder.next_message() is None
    except ProtocolError:
        pass


def test_size_checked_before_the_body_arrives() -> None:
    decoder = MessageDecoder(max_bytes=1000)
    decoder.feed(_arrays_header({"dtype": "<f8", "shape": [126]}))  # 1008 bytes
    with pytest.raises(ProtocolError, match="more than 1000 bytes"):
        decoder.next_message()


def test_truncated_message_says_so() -> None:
    with pytest.raises(ProtocolError, match="truncated"):
        _read(encode_message({}, [np.ones(10)])[:-1])


def test_allowed_dtypes_are_exactly_the_whitelist() -> None:
    assert sorted(DTYPES) == sorted(np.dtype(t).newbyteorder("<").str for t in ALL_DTYPES)

"""Datasets and mini-batches: an MNIST reader and a small ``DataLoader``.

MNIST (and Fashion-MNIST, which uses the same files) comes as four files in the IDX format::

    train-images-idx3-ubyte   train-labels-idx1-ubyte     (60,000 records in full MNIST)
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte      (10,000 records, the test split)

each either gzip-compressed (``.gz``) or raw. An IDX file is a big-endian header followed by the
values in row-major (C) order::

    bytes 0-1   0x00 0x00
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
                0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    then        d sizes, each a big-endian uint32
    then        the values: prod(sizes) elements

So an image file starts with the magic number 0x00000803 (uint8, 3 dimensions: N, 28, 28) and a
label file with 0x00000801 (uint8, 1 dimension: N).

Typical use::

    images, labels = load_mnist(split="train")          # uint8 [N, 28, 28], uint8 [N]
    x = images.reshape(len(images), -1).astype("float32") / 255.0
    for xb, yb in DataLoader((x, labels), batch_size=64, shuffle=True, seed=0):
        ...                                             # plain NumPy arrays: wrap them in Tensors
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# IDX type byte -> big-endian NumPy dtype.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_SPLITS = {"train": "train", "test": "t10k", "t10k": "t10k"}


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip or raw, told apart by its first bytes) into a NumPy array.

    The result has the shape and element type the header declares, in native byte order.
    Raises FileNotFoundError if the file is missing and ValueError, naming the file, if it is
    not a valid IDX file: bad magic number, corrupt gzip stream, or a payload whose size does
    not match the header (a truncated download, say).
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # the gzip signature; an IDX file starts with 0x00 0x00
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise ValueError(f"{path}: corrupt gzip stream ({e})") from None

    if len(raw) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    type_byte, ndim = raw[2], raw[3]
    if raw[:2] != b"\x00\x00" or type_byte not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file: bad magic number 0x{magic:08X} (expected 0x0000TTDD, "
            "TT a type byte such as 0x08 for uint8, DD the number of dimensions)"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header: {ndim} dimensions need {header} bytes")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[type_byte]
    expected = math.prod(shape) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "too long"
        dims = "x".join(map(str, shape))
        raise ValueError(
            f"{path}: {problem}: header says {dims} {dtype.name} values = {expected} bytes, "
            f"found {found}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _default_dir() -> Path:
    """``$MNIST_DIR`` if set, else the bundled ``data/mnist-sample`` found above this file."""
    env = os.environ.get("MNIST_DIR")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "data" / "mnist-sample"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"cannot find the bundled data/mnist-sample directory above {Path(__file__).parent}; "
        "pass load_mnist(path=...) or set the MNIST_DIR environment variable"
    )


def _find_file(directory: Path, stem: str) -> Path:
    """``directory/stem`` raw or gzipped, also accepting the ``train-images.idx3-ubyte`` spelling
    that some unpackers produce."""
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory / stem}: no such file (nor {stem}.gz)")


def load_mnist(
    path: str | os.PathLike[str] | None = None, split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of MNIST (or Fashion-MNIST) from a directory of IDX files.

    Args:
        path: the directory holding the files. None means ``$MNIST_DIR`` if set, else the small
            sample bundled with the kit (``data/mnist-sample``: 4,000 train, 1,000 test).
        split: "train" or "test" ("t10k", the files' own name for it, works too).

    Returns:
        ``(images, labels)``: uint8 arrays of shape [N, 28, 28] (0 = background, 255 = ink)
        and [N] (class indices 0..9).
    """
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test' (or 't10k'), got {split!r}")
    prefix = _SPLITS[split]
    directory = Path(path) if path is not None else _default_dir()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"MNIST directory {directory} does not exist; "
            "pass load_mnist(path=...) or set MNIST_DIR"
        )
    image_path = _find_file(directory, f"{prefix}-images-idx3-ubyte")
    label_path = _find_file(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(image_path), read_idx(label_path)

    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{image_path}: expected uint8 images of shape [N, 28, 28] (magic 0x00000803), "
            f"found {images.dtype} of shape {list(images.shape)}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{label_path}: expected uint8 labels of shape [N] (magic 0x00000801), "
            f"found {labels.dtype} of shape {list(labels.shape)}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels"
        )
    if len(labels) and labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise ValueError(f"{label_path}: label {labels[i]} at index {i} is outside 0..9")
    return images, labels


class DataLoader:
    """Iterate over aligned arrays in mini-batches.

    ``DataLoader((x, y), batch_size=64, shuffle=True, seed=0)`` yields tuples ``(xb, yb)`` of
    NumPy arrays holding up to 64 consecutive samples (rows) each. The last batch may be smaller,
    unless ``drop_last=True``. With ``shuffle=True`` every new iteration (epoch) draws a new
    order from one ``numpy.random.default_rng(seed)``, so a given seed gives the same sequence
    of epochs every run. Arrays may also be tapegrad Tensors (their ``.data`` array is used).
    Without shuffling the batches are views into the arrays: copy them before writing to them.
    """

    def __init__(
        self,
        arrays: Sequence[Any],
        batch_size: int,
        shuffle: bool = False,
        seed: int | None = None,
        *,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(arrays, (tuple, list)) or not arrays:
            raise TypeError("arrays must be a non-empty tuple or list of arrays, e.g. (x, y)")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
            raise TypeError(f"batch_size must be a positive int, got {batch_size!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size}")
        self.arrays = [
            np.asarray(a if isinstance(a, np.ndarray) else getattr(a, "data", a)) for a in arrays
        ]
        lengths = [len(a) if a.ndim else None for a in self.arrays]
        if None in lengths or len(set(lengths)) != 1:
            raise ValueError(f"arrays must have the same first dimension, got lengths {lengths}")
        self.n: int = int(lengths[0] or 0)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        if self.drop_last:
            return self.n // self.batch_size
        return -(-self.n // self.batch_size)  # ceil division

    def __iter__(self) -> Iterator[tuple[np.ndarray, ...]]:
        arrays = self.arrays
        if self.shuffle:  # drawn here, so each iter() is a new epoch
            order = self.rng.permutation(self.n)
            arrays = [a[order] for a in arrays]
        stop = len(self) * self.batch_size
        return (
            tuple(a[i : i + self.batch_size] for a in arrays)
            for i in range(0, min(stop, self.n), self.batch_size)
        )

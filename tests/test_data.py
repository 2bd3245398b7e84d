"""Tests for tapegrad.data: the IDX/MNIST reader and the DataLoader."""

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from tapegrad.data import DataLoader, load_mnist, read_idx

pytestmark = pytest.mark.hw2

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "mnist-sample"
FASHION = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
NAMES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_split(directory: Path, images: np.ndarray, labels: np.ndarray, prefix="train"):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{prefix}-images-idx3-ubyte").write_bytes(idx_bytes(images))
    (directory / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))


@pytest.fixture(autouse=True)
def no_mnist_dir(monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)


# --- load_mnist on the bundled sample -------------------------------------------------------


def test_bundled_train_split():
    images, labels = load_mnist()
    assert images.shape == (4000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (4000,) and labels.dtype == np.uint8
    assert set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0
    assert images.flags.writeable


def test_bundled_test_split_has_100_per_class():
    images, labels = load_mnist(split="test")
    assert images.shape == (1000, 28, 28) and labels.shape == (1000,)
    np.testing.assert_array_equal(np.bincount(labels, minlength=10), np.full(10, 100))
    alias_images, alias_labels = load_mnist(SAMPLE, split="t10k")
    np.testing.assert_array_equal(alias_images, images)
    np.testing.assert_array_equal(alias_labels, labels)


def test_raw_and_gzip_files_agree(tmp_path):
    for name in NAMES:
        (tmp_path / name).write_bytes(gzip.decompress((SAMPLE / f"{name}.gz").read_bytes()))
    for split in ("train", "test"):
        raw_x, raw_y = load_mnist(tmp_path, split=split)
        gz_x, gz_y = load_mnist(str(SAMPLE), split=split)
        np.testing.assert_array_equal(raw_x, gz_x)
        np.testing.assert_array_equal(raw_y, gz_y)
    assert read_idx(tmp_path / NAMES[1]).shape == (4000,)


def test_mnist_dir_env_var(tmp_path, monkeypatch):
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_split(tmp_path, images, np.array([7, 0, 9]))
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    x, y = load_mnist()
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [7, 0, 9])


def test_read_idx_other_types_and_byte_order(tmp_path):
    values = np.array([[1, -2, 300], [70000, 5, -6]], dtype=">i4")
    path = tmp_path / "ints-idx2-int"
    path.write_bytes(bytes([0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + values.tobytes())
    out = read_idx(path)
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


# --- errors ---------------------------------------------------------------------------------


def test_bad_split():
    with pytest.raises(ValueError, match=r"'train' or 'test'.*'valid'"):
        load_mnist(split="valid")


def test_missing_file(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28)), np.zeros(2))
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, split="test")


def test_missing_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere.*MNIST_DIR"):
        load_mnist()


def test_wrong_magic(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28)), np.zeros(2))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x56\x78" + path.read_bytes()[4:])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*magic number 0x12345678"):
        load_mnist(tmp_path)


def test_label_file_in_place_of_images(tmp_path):
    write_split(tmp_path, np.zeros((2, 28, 28)), np.zeros(2))
    shutil.copy(tmp_path / "train-labels-idx1-ubyte", tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.*0x00000803.*shape \[2\]"):
        load_mnist(tmp_path)


def test_truncated_file(tmp_path):
    write_split(tmp_path, np.zeros((4000, 28, 28)), np.zeros(4000))
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[: 16 + 1200])
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte: truncated.*4000x28x28.*3136000 bytes, found 1200",
    ):
        load_mnist(tmp_path)


def test_truncated_header(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(ValueError, match="x-idx3-ubyte: truncated header"):
        read_idx(path)


def test_corrupt_and_truncated_gzip(tmp_path):
    good = (SAMPLE / "train-labels-idx1-ubyte.gz").read_bytes()
    for name, content in [("cut.gz", good[: len(good) // 2]), ("junk.gz", good[:10] + b"x" * 50)]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: corrupt gzip stream"):
            read_idx(path)


def test_mismatched_counts(tmp_path):
    write_split(tmp_path, np.zeros((5, 28, 28)), np.zeros(4))
    with pytest.raises(ValueError, match=r"train-images.* 5 images .*train-labels.* 4 labels"):
        load_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    write_split(tmp_path, np.zeros((3, 28, 28)), np.array([1, 12, 3]))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: label 12 at index 1"):
        load_mnist(tmp_path)


# --- Fashion-MNIST (Debian's dataset-fashion-mnist package) ----------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"{FASHION} not present (apt install dataset-fashion-mnist)"
)
def test_fashion_mnist():
    x, y = load_mnist(FASHION, split="train")
    assert x.shape == (60000, 28, 28) and y.shape == (60000,)
    x, y = load_mnist(FASHION, split="test")
    assert x.shape == (10000, 28, 28) and x.dtype == np.uint8
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 1000))


# --- DataLoader -----------------------------------------------------------------------------


class FakeTensor:
    def __init__(self, data):
        self.data = data


def test_loader_batches_in_order_with_partial_last_batch():
    x = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    loader = DataLoader((x, y), batch_size=4)
    assert len(loader) == 3
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(batches[2][1], [8, 9])


def test_loader_drop_last():
    loader = DataLoader([np.arange(10)], batch_size=4, drop_last=True)
    assert len(loader) == 2
    assert [b[0].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert len(DataLoader([np.arange(8)], 4, drop_last=True)) == 2
    assert len(DataLoader([np.arange(3)], 4, drop_last=True)) == 0
    assert list(DataLoader([np.arange(3)], 4, drop_last=True)) == []


def test_loader_shuffle_sees_each_sample_once_and_keeps_pairs():
    x = np.arange(103) * 10
    y = np.arange(103)
    loader = DataLoader((x, y), batch_size=16, shuffle=True, seed=1)
    for _ in range(3):
        xs, ys = zip(*loader, strict=True)
        xs, ys = np.concatenate(xs), np.concatenate(ys)
        assert sorted(ys.tolist()) == list(range(103))
        np.testing.assert_array_equal(xs, ys * 10)


def epoch_orders(loader, epochs=3):
    return [np.concatenate([b[0] for b in loader]).tolist() for _ in range(epochs)]


def test_loader_seed_reproducible_and_epochs_differ():
    make = lambda seed: DataLoader([np.arange(50)], batch_size=8, shuffle=True, seed=seed)  # noqa: E731
    first = epoch_orders(make(0))
    assert first == epoch_orders(make(0))
    assert first != epoch_orders(make(1))
    assert first[0] != first[1] != first[2]
    assert first[0] != list(range(50))


def test_loader_accepts_tensor_like_objects():
    loader = DataLoader((FakeTensor(np.ones((5, 2))), np.zeros(5)), batch_size=2)
    xb, yb = next(iter(loader))
    assert type(xb) is np.ndarray and xb.shape == (2, 2) and yb.shape == (2,)


def test_loader_errors():
    with pytest.raises(ValueError, match=r"\[5, 4\]"):
        DataLoader((np.zeros(5), np.zeros(4)), batch_size=2)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="positive int"):
            DataLoader([np.zeros(5)], batch_size=bad)
    for bad in (2.0, "4", True):
        with pytest.raises(TypeError, match="positive int"):
            DataLoader([np.zeros(5)], batch_size=bad)
    with pytest.raises(TypeError, match="tuple or list"):
        DataLoader(np.zeros((5, 2)), batch_size=2)

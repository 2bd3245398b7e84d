"""The judge half of the training checks (``kind = "train"``): send the training data and the
test images to the worker (:mod:`autograder.worker.training` trains the recipe there), and
judge the returned predictions against the test labels, which stay in this process.

The data comes from ``$MNIST_DIR`` or the bundled sample, read by a small IDX reader of the
grader's own: this process must not import tapegrad, whose ``data.read_idx`` is the students'
version of it.
"""

from __future__ import annotations

import gzip
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from autograder.config import CheckConfig
from autograder.paths import BUNDLED_MNIST, SAMPLE
from autograder.worker.training import CLASSES, RECIPES

from .cases import Request, RequestFailed
from .results import CaseOutcome

__all__ = ["load_dataset", "read_idx", "run_train_check"]

Arrays = list[np.ndarray]


def run_train_check(
    request: Request,
    check: CheckConfig,
    dataset_name: str,
    train: tuple[np.ndarray, np.ndarray],
    test_images: np.ndarray,
    test_labels: np.ndarray,
    timeout: float | None = None,
) -> tuple[list[CaseOutcome], dict[str, Any]]:
    """Train in the worker, judge the test accuracy here. ``request(header, arrays)`` talks to
    the worker (with the check's time limit, ``timeout`` seconds, which only the messages
    mention) and raises :class:`~autograder.grading.cases.RequestFailed` when the student's code
    fails. Returns one outcome and the extra figures for the result (``accuracy``,
    ``threshold``, ``dataset``, ``seconds``, ``losses``)."""
    recipe = RECIPES.get(check.recipe or "")
    if recipe is None:
        raise KeyError(
            f"check {check.id}: no training recipe {check.recipe!r}; known: "
            f"{', '.join(sorted(RECIPES))}"
        )
    if dataset_name not in check.thresholds:
        raise KeyError(
            f"check {check.id} has no threshold for dataset {dataset_name!r} (it has "
            f"{', '.join(check.thresholds) or 'none'}): add one under "
            "[checks.thresholds] in assignment.toml"
        )
    threshold = float(check.thresholds[dataset_name])
    epochs = int(check.epochs or 1)
    header = {
        "type": "train",
        "recipe": recipe.name,
        "epochs": epochs,
        "seed": int(check.seed or 0),
        "batch_size": int(check.batch_size or recipe.batch_size),
        "lr": float(check.lr or recipe.lr),
    }
    extra: dict[str, Any] = {"accuracy": None, "threshold": threshold, "dataset": dataset_name}
    label = f"{recipe.name} on {dataset_name}"
    start = time.perf_counter()
    try:
        _, arrays = request(header, [train[0], train[1], test_images])
    except RequestFailed as exc:
        extra["seconds"] = round(time.perf_counter() - start, 2)
        message = f"training failed: {exc}"
        if exc.bug_class == "timeout" and timeout:
            message += (f" (the limit for training {epochs} epochs is {timeout:g} s: is a layer "
                        "or an op much slower than it should be?)")  # fmt: skip
        return [CaseOutcome(label, False, message, exc.bug_class)], extra
    seconds = time.perf_counter() - start
    extra["seconds"] = round(seconds, 2)
    problem = _check_reply(arrays, len(test_labels), epochs)
    if problem is not None:
        return [CaseOutcome(label, False, problem[0], problem[1])], extra
    predicted, losses = arrays
    extra["losses"] = [round(float(v), 6) for v in losses]
    accuracy = float(np.mean(predicted == test_labels)) if len(test_labels) else 0.0
    extra["accuracy"] = round(accuracy, 4)
    message = (
        f"test accuracy {accuracy:.3f} on {dataset_name} (threshold {threshold:.2f}), "
        f"trained {epochs} epoch{'s' if epochs != 1 else ''} in {seconds:.1f} s"
    )
    passed = accuracy >= threshold
    if not passed:
        message += f"; final training loss {losses[-1]:.3f}" if len(losses) else ""
        message += ": check the layers, cross_entropy and the optimizer with the module checks"
    return [CaseOutcome(label, passed, message, None if passed else "wrong_forward")], extra


def _check_reply(arrays: Arrays, count: int, epochs: int) -> tuple[str, str] | None:
    """(message, bug class) when the worker's answer is unusable, else None."""
    if len(arrays) != 2:
        return "the worker's reply was incomplete", "crash"
    predicted, losses = arrays
    if losses.ndim != 1 or not 1 <= len(losses) <= epochs or losses.dtype.kind != "f":
        return f"the training losses came back with shape {losses.shape}", "crash"
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        return (
            f"the training loss became {losses[bad[0]]} in epoch {bad[0] + 1}: training "
            "diverged (check cross_entropy's stability and the gradients)",
            "nan_inf",
        )
    if predicted.shape != (count,) or predicted.dtype.kind not in "iu":
        return (
            f"predictions of shape {predicted.shape} and dtype {predicted.dtype}, expected "
            f"({count},) integers",
            "wrong_shape",
        )
    if count and (predicted.min() < 0 or predicted.max() >= CLASSES):
        return f"predicted labels outside 0..{CLASSES - 1}", "wrong_forward"
    return None


# ---- the data, in the parent --------------------------------------------------------------------

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """One IDX file, gzip or raw, validated (magic number, dimensions, payload size)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(shape) * dtype.itemsize:
        raise ValueError(f"{path}: {len(raw) - header} bytes of data, the header says {shape}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _idx_file(directory: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory / stem}: no such file (nor {stem}.gz)")


def load_dataset(
    directory: str | os.PathLike[str] | None = None, default: Path = BUNDLED_MNIST
) -> tuple[str, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(name, (train_images, train_labels), (test_images, test_labels))`` from ``directory``,
    else ``$MNIST_DIR``, else ``default`` (the bundled ``data/mnist-sample`` of the kit whose
    assignments are graded). The name is a dataset of the thresholds: "mnist-sample" (a folder
    of that name), "fashion-mnist" for a path that says fashion, else "mnist"."""
    if directory is None and os.environ.get("MNIST_DIR"):
        directory = os.environ["MNIST_DIR"]
    path = Path(directory) if directory is not None else default
    if path.name == SAMPLE.name:
        name = "mnist-sample"
    else:
        name = "fashion-mnist" if "fashion" in str(path).lower() else "mnist"
    splits = []
    for prefix in ("train", "t10k"):
        images = read_idx(_idx_file(path, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_file(path, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or images.dtype != np.uint8 or labels.shape != (len(images),):
            raise ValueError(
                f"{path}: {prefix} images {images.shape} {images.dtype} and labels "
                f"{labels.shape} do not match: expected uint8 (N, 28, 28) and (N,)"
            )
        splits.append((images, labels.astype(np.uint8)))
    return name, splits[0], splits[1]

"""The training recipes (autograder/recipes.py): the reference reaches the hw2 threshold, the
parent judges accuracy and reports failures clearly, the data loads without tapegrad, and a
short training runs end to end through a real worker."""

from __future__ import annotations

import gzip
import shutil
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
import tapegrad as tg

from autograder.config import CheckConfig, load_assignment
from autograder.grading.cases import RequestFailed
from autograder.grading.session import WorkerSession
from autograder.grading.training import load_dataset, read_idx, run_train_check
from autograder.paths import BUNDLED_MNIST
from autograder.worker.training import RECIPES, train_handler

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data() -> tuple[str, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return load_dataset(BUNDLED_MNIST)


def _check(recipe: str = "mlp", epochs: int = 1, **fields: Any) -> CheckConfig:
    base = CheckConfig(
        id=f"mnist.{recipe}", name=recipe, kind="train", points=10.0, visibility="public",
        timeout=600.0, recipe=recipe, epochs=epochs, seed=0, batch_size=64,
        thresholds=MappingProxyType({"mnist-sample": 0.5}),
    )  # fmt: skip
    return replace(base, **fields)


def _in_process(sent: list[Any] | None = None) -> Any:
    """A request function that trains with the reference in this process."""

    def request(header: dict[str, Any], arrays: list[np.ndarray]):
        if sent is not None:
            sent.append((header, arrays))
        return train_handler(tg, header, [a.copy() for a in arrays])  # type: ignore[arg-type]

    return request


def _fake(*arrays: np.ndarray) -> Any:
    return lambda header, sent: ({}, list(arrays))


def test_every_recipe_named_in_the_assignments_exists() -> None:
    named = {
        c.recipe
        for hw in ("hw2", "hw3")
        for c in load_assignment(hw, REPO).checks
        if c.kind == "train"
    }
    assert named == set(RECIPES)


def test_the_hw2_recipe_reaches_its_threshold(data: Any) -> None:
    """The real check (10 epochs on the bundled sample, about a second): 0.914-0.930 over
    seeds 0-4 against a threshold of 0.88."""
    name, train, (test_x, test_y) = data
    check = load_assignment("hw2", REPO).check("mnist.mlp")
    sent: list[Any] = []
    outcomes, extra = run_train_check(_in_process(sent), check, name, train, test_x, test_y, 600)
    assert outcomes[0].passed, outcomes[0].message
    assert extra["accuracy"] >= check.thresholds[name] + 0.02
    assert extra["dataset"] == "mnist-sample" and extra["threshold"] == 0.88
    assert len(extra["losses"]) == 10 and extra["losses"][-1] < extra["losses"][0]
    assert outcomes[0].message.startswith("test accuracy 0.9")
    assert "on mnist-sample (threshold 0.88), trained 10 epochs in" in outcomes[0].message
    header, arrays = sent[0]
    assert header == {"type": "train", "recipe": "mlp", "epochs": 10, "seed": 0,
                      "batch_size": 64, "lr": 0.1}  # fmt: skip
    assert len(arrays) == 3 and not any(a is test_y for a in arrays)  # no test labels sent


def test_the_cnn_recipe_learns(data: Any) -> None:
    """One epoch on 1,000 images (under a second; the hw3 check, 3 epochs on 4,000, gives
    0.935-0.949 over seeds 0-4 in 6-10 s)."""
    name, (train_x, train_y), (test_x, test_y) = data
    check = _check("cnn", thresholds=MappingProxyType({"mnist-sample": 0.4}))
    outcomes, extra = run_train_check(
        _in_process(), check, name, (train_x[:1000], train_y[:1000]), test_x[:300], test_y[:300]
    )
    assert outcomes[0].passed, outcomes[0].message
    assert outcomes[0].label == "cnn on mnist-sample"


def test_training_is_reproducible(data: Any) -> None:
    _, (train_x, train_y), (test_x, _) = data
    header = {"recipe": "mlp", "epochs": 1, "seed": 3, "batch_size": 32, "lr": 0.05}
    arrays = [train_x[:500], train_y[:500], test_x[:100]]
    first = train_handler(tg, header, arrays)[1]  # type: ignore[arg-type]
    second = train_handler(tg, header, arrays)[1]  # type: ignore[arg-type]
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert first[0].dtype == np.int64 and first[0].shape == (100,)
    assert first[1].dtype == np.float64 and first[1].shape == (1,)


def test_below_the_threshold_fails_with_the_numbers() -> None:
    labels = np.arange(10) % 10
    predicted = labels.copy()
    predicted[:3] = (predicted[:3] + 1) % 10
    check = _check(thresholds=MappingProxyType({"mnist-sample": 0.8}))
    outcomes, extra = run_train_check(
        _fake(predicted, np.array([2.0, 1.5])), _check(epochs=2, thresholds=check.thresholds),
        "mnist-sample", (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)),
        np.zeros((10, 28, 28), np.uint8), labels,
    )  # fmt: skip
    assert not outcomes[0].passed and extra["accuracy"] == 0.7
    assert "test accuracy 0.700 on mnist-sample (threshold 0.80), trained 2 epochs" in (
        outcomes[0].message
    )


@pytest.mark.parametrize(
    ("reply", "words", "bug_class"),
    [
        ((np.zeros(5, np.int64), np.array([1.0, np.nan])), "became nan in epoch 2", "nan_inf"),
        ((np.full(5, 10, np.int64), np.array([1.0])), "outside 0..9", "wrong_forward"),
        ((np.zeros(4, np.int64), np.array([1.0])), "predictions of shape (4,)", "wrong_shape"),
        ((np.zeros(5), np.array([1.0])), "dtype float64", "wrong_shape"),
        ((np.zeros(5, np.int64),), "incomplete", "crash"),
        ((np.zeros(5, np.int64), np.ones(3)), "losses came back with shape (3,)", "crash"),
    ],
)
def test_unusable_replies_fail_clearly(reply: Any, words: str, bug_class: str) -> None:
    outcomes, extra = run_train_check(
        _fake(*reply), _check(epochs=2), "mnist-sample",
        (np.zeros((4, 28, 28), np.uint8), np.zeros(4, np.uint8)),
        np.zeros((5, 28, 28), np.uint8), np.zeros(5, np.uint8),
    )  # fmt: skip
    assert not outcomes[0].passed and outcomes[0].bug_class == bug_class
    assert words in outcomes[0].message
    assert extra["accuracy"] is None and extra["threshold"] == 0.5


def test_a_failed_request_is_a_failed_outcome() -> None:
    def request(header: dict[str, Any], arrays: list[np.ndarray]):
        raise RequestFailed("no answer within 600 s", "timeout", fatal=True)

    outcomes, extra = run_train_check(
        request, _check(), "mnist-sample", (np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8)),
        np.zeros((1, 28, 28), np.uint8), np.zeros(1, np.uint8), 600,
    )  # fmt: skip
    assert not outcomes[0].passed and outcomes[0].bug_class == "timeout"
    assert outcomes[0].message.startswith("training failed: no answer within 600 s (the limit")
    assert "seconds" in extra


def test_a_dataset_without_a_threshold_is_a_config_error() -> None:
    with pytest.raises(KeyError, match="no threshold for dataset 'fashion-mnist'"):
        run_train_check(_fake(), _check(), "fashion-mnist", (np.zeros(1), np.zeros(1)),
                        np.zeros(1), np.zeros(1))  # fmt: skip


# ---- data ---------------------------------------------------------------------------------------


def test_load_dataset_bundled(data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    name, (train_x, train_y), (test_x, test_y) = data
    assert name == "mnist-sample"
    assert train_x.shape == (4000, 28, 28) and train_x.dtype == np.uint8
    assert train_y.shape == (4000,) and test_x.shape == (1000, 28, 28) and test_y.shape == (1000,)
    assert set(np.unique(test_y)) == set(range(10))
    monkeypatch.delenv("MNIST_DIR", raising=False)
    assert load_dataset()[0] == "mnist-sample"


@pytest.mark.parametrize(
    ("folder", "name"), [("full", "mnist"), ("Fashion_MNIST", "fashion-mnist")]
)
def test_load_dataset_from_mnist_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str, name: str
) -> None:
    target = tmp_path / folder
    shutil.copytree(BUNDLED_MNIST, target)
    raw = target / "t10k-labels-idx1-ubyte"  # a raw (not gzipped) file is read too
    raw.write_bytes(gzip.decompress((target / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    (target / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv("MNIST_DIR", str(target))
    got_name, train, test = load_dataset()
    assert got_name == name and len(train[0]) == 4000 and test[1].shape == (1000,)


def test_read_idx_rejects_broken_files(tmp_path: Path) -> None:
    good = gzip.decompress((BUNDLED_MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())
    for data_, words in ((good[:-1], "the header says"), (b"\x00\x00\x07\x01" + good[4:], "magic")):
        path = tmp_path / "broken"
        path.write_bytes(data_)
        with pytest.raises(ValueError, match=words):
            read_idx(path)
    with pytest.raises(FileNotFoundError):
        load_dataset(tmp_path)


# ---- end to end ---------------------------------------------------------------------------------


def test_end_to_end_one_epoch(reference_session: WorkerSession, data: Any) -> None:
    name, (train_x, train_y), (test_x, test_y) = data
    outcomes, extra = run_train_check(
        reference_session.request,
        _check(),
        name,
        (train_x[:1000], train_y[:1000]),
        test_x[:300],
        test_y[:300],
        60,
    )
    assert outcomes[0].passed, outcomes[0].message
    assert set(extra) >= {"accuracy", "threshold", "dataset", "seconds"}
    assert extra["accuracy"] > 0.5 and extra["seconds"] > 0

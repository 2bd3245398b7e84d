"""Training for real: an MLP and a small CNN on the bundled MNIST sample, an MLP on full-size
Fashion-MNIST, learning curves, early stopping, and no graph kept alive across steps."""

from __future__ import annotations

import gc
import io
import os
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn, optim
from tapegrad.data import load_mnist
from tapegrad.train import cnn, evaluate, fit, mlp, plot_history, predict, prepare_images

pytestmark = pytest.mark.hw2
FASHION = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.fixture(scope="module")
def mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    (train_x, train_y), (test_x, test_y) = load_mnist(split="train"), load_mnist(split="test")
    return (train_x, train_y.astype(np.int64)), (test_x, test_y.astype(np.int64))


def test_mlp_reaches_90_percent_on_the_bundled_sample(mnist, tmp_path: Path) -> None:
    (train_x, train_y), (test_x, test_y) = mnist
    tg.manual_seed(0)
    model = mlp((784, 128, 10))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    log = io.StringIO()
    start = time.perf_counter()
    history = fit(
        model,
        opt,
        (prepare_images(train_x), train_y),
        (prepare_images(test_x), test_y),
        epochs=8,
        batch_size=64,
        seed=0,
        stream=log,
    )
    seconds = time.perf_counter() - start
    accuracy = history["test_acc"][-1]
    assert accuracy >= 0.90, f"test accuracy {accuracy:.3f} after 8 epochs"
    assert history["train_loss"][-1] < history["train_loss"][0]
    assert log.getvalue().count("epoch") == 8 and "test loss" in log.getvalue()
    print(f"MLP: test accuracy {accuracy:.4f} in {seconds:.1f} s")
    # predictions and evaluation agree, and the curves are saved as a PNG
    _, acc = evaluate(model, prepare_images(test_x), test_y)
    assert acc == pytest.approx(np.mean(predict(model, prepare_images(test_x)) == test_y))
    assert plot_history(history, str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_small_cnn_trains_on_the_bundled_sample(mnist) -> None:
    (train_x, train_y), (test_x, test_y) = mnist
    tg.manual_seed(1)
    model = cnn(channels=4)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    train = (prepare_images(train_x[:2000], flatten=False), train_y[:2000])
    test = (prepare_images(test_x, flatten=False), test_y)
    history = fit(model, opt, train, test, epochs=2, batch_size=32, seed=1, verbose=False)
    assert history["test_acc"][-1] >= 0.80, history.epochs


def test_early_stopping_ends_training(mnist) -> None:
    (train_x, train_y), (test_x, test_y) = mnist
    tg.manual_seed(2)
    model = mlp((784, 32, 10))
    opt = optim.SGD(model.parameters(), lr=1e-9)  # too small to improve the test loss
    stopper = optim.EarlyStopping(patience=2, min_delta=1e-3)
    history = fit(
        model,
        opt,
        (prepare_images(train_x[:500]), train_y[:500]),
        (prepare_images(test_x[:200]), test_y[:200]),
        epochs=20,
        early_stopping=stopper,
        verbose=False,
    )
    assert history.stopped_early and len(history.epochs) == 3


def test_training_keeps_no_graph_alive_across_steps() -> None:
    """Each step's loss (and with it the whole tape) is freed once the loop moves on."""
    tg.manual_seed(3)
    model = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    rng = np.random.default_rng(0)
    refs = []
    for _ in range(5):
        x = tg.Tensor(rng.standard_normal((8, 20)).astype(np.float32))
        loss = nn.functional.cross_entropy(model(x), rng.integers(0, 3, 8))
        opt.zero_grad()
        loss.backward()
        opt.step()
        refs.append(weakref.ref(loss))
        del loss
    gc.disable()  # freed by reference counting alone: no cycles through the tape
    try:
        assert all(r() is None for r in refs)
    finally:
        gc.enable()
    assert all(p.grad is not None and p.grad._ctx is None for p in model.parameters())


@pytest.mark.slow
@pytest.mark.skipif(
    not FASHION.is_dir(), reason=f"{FASHION} not present: apt-get install dataset-fashion-mnist"
)
def test_mlp_reaches_85_percent_on_fashion_mnist() -> None:
    (train_x, train_y), (test_x, test_y) = load_mnist(FASHION, "train"), load_mnist(FASHION, "test")
    tg.manual_seed(0)
    model = mlp((784, 128, 10))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    start = time.perf_counter()
    history = fit(
        model,
        opt,
        (prepare_images(train_x), train_y.astype(np.int64)),
        (prepare_images(test_x), test_y.astype(np.int64)),
        epochs=5,
        batch_size=128,
        verbose=False,
    )
    accuracy = history["test_acc"][-1]
    print(
        f"Fashion-MNIST MLP: test accuracy {accuracy:.4f} after 5 epochs, "
        f"{time.perf_counter() - start:.1f} s"
    )
    assert accuracy >= 0.85

"""Training utilities: the minibatch loop, evaluation, a progress bar, learning curves.

Used by the demo, the notebooks and students' own experiments::

    python -m tapegrad.train --model mlp --epochs 5            # bundled MNIST sample
    MNIST_DIR=/path/to/mnist python -m tapegrad.train --model cnn --plot curves.png

Everything here is written with tapegrad's public API only (Tensor, nn, optim, data).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

from . import nn, optim
from .data import DataLoader, load_mnist
from .random import manual_seed
from .tensor import Tensor, no_grad

__all__ = [
    "History",
    "prepare_images",
    "mlp",
    "cnn",
    "accuracy",
    "evaluate",
    "predict",
    "train_epoch",
    "fit",
    "plot_history",
    "main",
]

Loss = Callable[[Tensor, Any], Tensor]


@dataclass
class History:
    """Per-epoch figures of a :func:`fit` run."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    def __getitem__(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs if key in e]


def prepare_images(images: np.ndarray, flatten: bool = True, dtype: Any = np.float32) -> np.ndarray:
    """uint8 images [N, 28, 28] -> floats in [0, 1], flattened to [N, 784] or as [N, 1, 28, 28]."""
    x = images.astype(dtype) / 255.0
    return x.reshape(len(x), -1) if flatten else x.reshape(len(x), 1, *images.shape[1:])


def mlp(sizes: Iterable[int] = (784, 128, 10)) -> nn.Sequential:
    """Linear layers with ReLU between them."""
    sizes = list(sizes)
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def cnn(channels: int = 8, classes: int = 10) -> nn.Sequential:
    """A small CNN for 28x28 digits: conv-relu-pool twice, then a linear classifier."""
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * channels * 7 * 7, classes),
    )


def accuracy(logits: Tensor, labels: Any) -> float:
    """Fraction of rows of ``logits`` [N, C] whose largest entry is at the index ``labels[n]``,
    as a Python float."""
    raise NotImplementedError("hw2: accuracy")


def predict(
    model: nn.Module, images: np.ndarray, batch_size: int = 1000, device: str = "cpu"
) -> np.ndarray:
    """Predicted labels for ``images`` (already prepared), in eval mode, without a tape."""
    was_training = model.training
    model.eval()
    out = []
    with no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(Tensor(images[start : start + batch_size], device=device))
            out.append(np.argmax(logits.numpy(), axis=1))
    model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def evaluate(
    model: nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int = 1000,
    loss_fn: Loss = nn.functional.cross_entropy,
    device: str = "cpu",
) -> tuple[float, float]:
    """(mean loss, accuracy) on a whole dataset, in eval mode."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    with no_grad():
        for start in range(0, len(images), batch_size):
            x = Tensor(images[start : start + batch_size], device=device)
            y = labels[start : start + batch_size]
            logits = model(x)
            total_loss += loss_fn(logits, Tensor(y, device=device)).item() * len(y)
            correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == y))
    model.train(was_training)
    return total_loss / max(len(images), 1), correct / max(len(images), 1)


class _Progress:
    """A one-line progress bar on a terminal; silent elsewhere (logs get per-epoch lines)."""

    def __init__(self, total: int, prefix: str, stream: TextIO = sys.stderr) -> None:
        self.total, self.prefix, self.stream = total, prefix, stream
        self.enabled = stream.isatty()

    def update(self, done: int, loss: float) -> None:
        if not self.enabled or (done % 10 and done != self.total):
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"\r{self.prefix} [{bar}] {done}/{self.total} loss {loss:.4f}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 80 + "\r")


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: Any,
    loss_fn: Loss = nn.functional.cross_entropy,
    device: str = "cpu",
    clip: float | None = None,
    progress: _Progress | None = None,
) -> tuple[float, float]:
    """One pass over ``loader``: forward, loss, backward, (clip), step. Returns the mean
    training loss and accuracy. The loss is read back with ``.item()`` once per batch; each
    step's graph is dropped when ``loss`` is rebound, so memory stays flat."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for i, (xb, yb) in enumerate(loader, 1):
        x, y = Tensor(xb, device=device), Tensor(yb, device=device)
        logits = model(x)
        loss = loss_fn(logits, y)
        optimizer.zero_grad()
        loss.backward()
        if clip is not None:
            optim.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        value = loss.item()
        total_loss += value * len(yb)
        correct += int(np.sum(np.argmax(logits.numpy(), axis=1) == yb))
        seen += len(yb)
        if progress is not None:
            progress.update(i, value)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def fit(
    model: nn.Module,
    optimizer: Any,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    seed: int | None = 0,
    device: str = "cpu",
    loss_fn: Loss = nn.functional.cross_entropy,
    clip: float | None = None,
    early_stopping: optim.EarlyStopping | None = None,
    verbose: bool = True,
    stream: TextIO = sys.stdout,
) -> History:
    """Train for ``epochs`` (or until ``early_stopping`` says stop, watching the test loss),
    printing one line per epoch. ``train``/``test`` are (prepared images, labels) arrays."""
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, seed=seed)
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        bar = _Progress(len(loader), f"epoch {epoch}/{epochs}") if verbose else None
        loss, acc = train_epoch(model, loader, optimizer, loss_fn, device, clip, bar)
        if bar is not None:
            bar.close()
        row = {
            "epoch": epoch,
            "train_loss": loss,
            "train_acc": acc,
            "seconds": time.perf_counter() - start,
        }
        if test is not None:
            row["test_loss"], row["test_acc"] = evaluate(
                model, *test, loss_fn=loss_fn, device=device
            )
        history.epochs.append(row)
        if verbose:
            line = f"epoch {epoch:>3}: train loss {loss:.4f} acc {acc:.4f}"
            if test is not None:
                line += f" | test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}"
            stream.write(line + f" ({row['seconds']:.1f} s)\n")
            stream.flush()
        if (
            early_stopping is not None
            and test is not None
            and early_stopping.step(row["test_loss"])
        ):
            history.stopped_early = True
            if verbose:
                stream.write(
                    f"early stopping: no improvement for {early_stopping.patience} epochs\n"
                )
            break
    return history


def plot_history(history: History, path: str) -> bool:
    """Save loss and accuracy curves to ``path`` (PNG); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"]
    for key, ax in (("loss", ax_loss), ("acc", ax_acc)):
        for split in ("train", "test"):
            values = history[f"{split}_{key}"]
            if values:
                ax.plot(epochs, values, marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if key == "acc" else "cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("tapegrad training curves")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tapegrad.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", choices=("mlp", "cnn"), default="mlp")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--data",
        default=None,
        help="directory of IDX files (default: MNIST_DIR or the bundled sample)",
    )
    parser.add_argument("--plot", default=None, help="save learning curves to this PNG")
    args = parser.parse_args(argv)

    manual_seed(args.seed)
    flat = args.model == "mlp"
    train_x, train_y = load_mnist(args.data, "train")
    test_x, test_y = load_mnist(args.data, "test")
    train = (prepare_images(train_x, flat), train_y.astype(np.int64))
    test = (prepare_images(test_x, flat), test_y.astype(np.int64))
    model = (mlp() if flat else cnn()).to(args.device)
    opt = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    print(
        f"{args.model} on {len(train[0])} training / {len(test[0])} test images, "
        f"device {args.device}"
    )
    history = fit(
        model,
        opt,
        train,
        test,
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
    )
    if args.plot and plot_history(history, args.plot):
        print(f"learning curves saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

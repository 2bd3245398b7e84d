"""Training an MLP with tapegrad versus the same network written by hand, in one process.

    python bench/bench_mlp.py                 # CPU: tapegrad on NumPy vs hand-written NumPy
    python bench/bench_mlp.py --quick         # fewer epochs
    python bench/bench_mlp.py --device cuda   # GPU: tapegrad on CuPy vs hand-written CuPy

The network: 784-256-10, ReLU, float32, batch 128, mean cross-entropy, plain SGD (lr 0.1), on
the MNIST sample bundled with the kit (``tg.data.load_mnist()``, images scaled to [0, 1]).
tapegrad uses ``tg.nn.Sequential(Linear, ReLU, Linear)``, ``tg.nn.functional.cross_entropy``
and ``tg.optim.SGD``; the hand-written version computes the same forward pass, the backward
formulas and the SGD update with bare arrays. Both start from the same weights and see the
same batches in the same order, so their accuracies should agree closely.

CPU: seconds per epoch (median over the epochs after a warm-up epoch, the two versions
alternating so that machine noise hits both), their ratio (target: tapegrad <= 1.3x), test
accuracy, and memory: resident set size and live Tensor objects after every epoch (flat means
no graph outlives its step), plus the peak RSS.

GPU: milliseconds per training step (CUDA events around a run of steps, median of several
runs), beside reference figures measured on an H100.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solution"))

import numpy as np  # noqa: E402
import tapegrad as tg  # noqa: E402

HIDDEN, CLASSES, BATCH, LR = 256, 10, 128, 0.1
TARGET_RATIO = 1.3
TARGET_COMPILED = 1.05
REFERENCE_GPU_MS = {"PyTorch eager": 1.04, "hand-written CuPy": 0.82}  # per step, on an H100


# ------------------------------------------------------------------------------------ data


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    def prepare(split: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = tg.data.load_mnist(split=split)
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
        return x, labels.astype(np.int64)

    return *prepare("train"), *prepare("test")


# --------------------------------------------------------------------------------- models


def make_tapegrad_model(seed: int) -> Any:
    tg.random.manual_seed(seed)
    nn = tg.nn
    return nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, CLASSES))


def weights_of(model: Any, layout: str = "in_out") -> list[np.ndarray]:
    """The model's parameters as host arrays [w1, b1, w2, b2]: with ``layout="in_out"``
    w1 is (784, H) and w2 (H, 10), so the forward pass is ``x @ w1``; with ``"out_in"`` they
    are as ``nn.Linear`` keeps them (PyTorch's layout: (H, 784) and (10, H), ``x @ w1.T``)."""
    w1, b1, w2, b2 = (p.numpy().copy() for p in model.parameters())
    if (w1.shape == (HIDDEN, 784)) != (layout == "out_in"):
        w1, w2 = w1.T.copy(), w2.T.copy()
    return [w1, b1.reshape(HIDDEN), w2, b2.reshape(CLASSES)]


class HandWritten:
    """The same MLP with bare arrays of the module ``xp`` (NumPy or CuPy): forward,
    cross-entropy, the backward formulas and the SGD update, written out, with the weights
    in either layout (see :func:`weights_of`)."""

    def __init__(self, weights: list[np.ndarray], xp: Any, layout: str = "in_out") -> None:
        self.xp = xp
        self.w1, self.b1, self.w2, self.b2 = (xp.asarray(w) for w in weights)
        self.out_in = layout == "out_in"

    def _mm(self, a: Any, w: Any) -> Any:
        return a @ w.T if self.out_in else a @ w

    def logits(self, x: Any) -> Any:
        return self._mm(self.xp.maximum(self._mm(x, self.w1) + self.b1, 0), self.w2) + self.b2

    def step(self, x: Any, y: Any) -> Any:
        xp = self.xp
        n = len(y)
        rows = xp.arange(n)
        h = self._mm(x, self.w1) + self.b1
        a = xp.maximum(h, 0)
        z = self._mm(a, self.w2) + self.b2
        m = z.max(axis=1, keepdims=True)
        e = xp.exp(z - m)
        s = e.sum(axis=1, keepdims=True)
        loss = (xp.log(s[:, 0]) + m[:, 0] - z[rows, y]).mean()  # left on the device
        dz = e / s  # softmax; d(loss)/dz = (softmax - onehot) / n
        dz[rows, y] -= 1.0
        dz *= np.float32(1.0 / n)
        if self.out_in:
            dw2 = dz.T @ a
            dh = (dz @ self.w2) * (h > 0)
            dw1 = dh.T @ x
        else:
            dw2 = a.T @ dz
            dh = (dz @ self.w2.T) * (h > 0)
            dw1 = x.T @ dh
        db2 = dz.sum(axis=0)
        db1 = dh.sum(axis=0)
        lr = np.float32(LR)
        self.w1 -= lr * dw1
        self.b1 -= lr * db1
        self.w2 -= lr * dw2
        self.b2 -= lr * db2
        return loss


class Tapegrad:
    """tapegrad's nn/optim doing the same; ``step`` returns the loss Tensor (not synced)."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        self.model = model
        self.device = device
        self.opt = tg.optim.SGD(list(model.parameters()), lr=LR)
        self.cross_entropy = tg.nn.functional.cross_entropy

    def logits(self, x: Any) -> Any:
        with tg.no_grad():
            return self.model(tg.Tensor(x, device=self.device)).data

    def step(self, x: Any, y: Any) -> Any:
        x, y = tg.Tensor(x, device=self.device), tg.Tensor(y, device=self.device)
        loss = self.cross_entropy(self.model(x), y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


class TapegradCompiled(Tapegrad):
    """The same, with the loss compiled (``tg.compile``): forward and backward run as
    generated array code, one node on the tape."""

    def __init__(self, model: Any, device: str = "cpu") -> None:
        super().__init__(model, device)
        self.loss = tg.compile(lambda x, y: self.cross_entropy(self.model(x), y))

    def step(self, x: Any, y: Any) -> Any:
        x, y = tg.Tensor(x, device=self.device), tg.Tensor(y, device=self.device)
        loss = self.loss(x, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss


class TorchEager:
    """PyTorch eager on CUDA, the same network, weights and SGD (when PyTorch is installed)."""

    def __init__(self, torch: Any, weights: list[np.ndarray]) -> None:
        self.torch = torch
        w1, b1, w2, b2 = (torch.tensor(w, device="cuda") for w in weights)
        self.model = torch.nn.Sequential(
            torch.nn.Linear(784, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, CLASSES)
        ).cuda()
        with torch.no_grad():
            for p, w in zip(self.model.parameters(), (w1, b1, w2, b2)):
                p.copy_(w)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)

    def _tensor(self, a: Any) -> Any:
        return self.torch.as_tensor(a, device="cuda")  # CuPy arrays via __cuda_array_interface__

    def logits(self, x: Any) -> Any:
        import cupy

        with self.torch.no_grad():
            return cupy.asarray(self.model(self._tensor(x)))

    def step(self, x: Any, y: Any) -> Any:
        loss = self.torch.nn.functional.cross_entropy(
            self.model(self._tensor(x)), self._tensor(y).long()
        )
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss


def make_torch(weights: list[np.ndarray]) -> Any:
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return TorchEager(torch, weights)


def accuracy(net: Any, x: Any, y: np.ndarray, to_host: Callable[[Any], np.ndarray]) -> float:
    return float((to_host(net.logits(x)).argmax(axis=1) == y).mean())


# ------------------------------------------------------------------------------------- CPU


def rss_mb() -> float:
    """The current resident set size (Linux); elsewhere the peak, the best available."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def live_tensors() -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, tg.Tensor))


BLOCK = 8  # batches each version runs in a row before the next takes over


def run_epoch(
    nets: dict[str, Any],
    x: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    steps: dict[str, list[float]],
) -> None:
    """One epoch for every network, interleaved in blocks of :data:`BLOCK` batches (each
    version runs the same block in turn, who goes first rotating), so that slow drifts of the
    machine hit all versions alike while each keeps its own data in cache within a block;
    every step is timed on its own into ``steps``."""
    xs, ys = x[order], y[order]
    names = list(nets)
    starts = list(range(0, len(ys), BATCH))
    for k, first in enumerate(range(0, len(starts), BLOCK)):
        block = starts[first : first + BLOCK]
        turn = names[k % len(names) :] + names[: k % len(names)]
        for name in turn:
            for i in block:
                xb, yb = xs[i : i + BATCH], ys[i : i + BATCH]
                start = time.perf_counter()
                loss = nets[name].step(xb, yb)
                steps[name].append(time.perf_counter() - start)
                del loss


def run_cpu(epochs: int, seed: int) -> int:
    x, y, x_test, y_test = load_data()
    print(f"data: {len(y)} train / {len(y_test)} test images (bundled MNIST sample)")
    model = make_tapegrad_model(seed)
    nets = {
        "tapegrad": Tapegrad(model),
        "compiled": TapegradCompiled(make_tapegrad_model(seed)),
        "numpy": HandWritten(weights_of(model, "out_in"), np, "out_in"),
        "numpy (in, out)": HandWritten(weights_of(model), np),
    }
    rng = np.random.default_rng(seed)
    steps = -(-len(y) // BATCH)
    print(f"{epochs} epochs of {steps} steps, the versions interleaved in blocks of {BLOCK} "
          "batches; epoch 0 is a warm-up, excluded\n")  # fmt: skip
    print(f"  {'epoch':>5} {'tapegrad ms':>12} {'compiled ms':>12} {'numpy ms':>9} "
          f"{'(in, out)':>10} {'RSS MB':>8} {'live Tensors':>13}")  # fmt: skip
    kept: dict[str, list[float]] = {name: [] for name in nets}
    for epoch in range(epochs):
        order = rng.permutation(len(y))  # the same batches for all
        row: dict[str, list[float]] = {name: [] for name in nets}
        run_epoch(nets, x, y, order, row)
        if epoch > 0:
            for name, times in row.items():
                kept[name] += times
        gc.collect()
        med = {name: statistics.median(t) * 1e3 for name, t in row.items()}
        print(f"  {epoch:5d} {med['tapegrad']:12.3f} {med['compiled']:12.3f} "
              f"{med['numpy']:9.3f} {med['numpy (in, out)']:10.3f} {rss_mb():8.1f} "
              f"{live_tensors():13d}")  # fmt: skip

    ms = {name: statistics.median(t) * 1e3 for name, t in kept.items()}
    print(f"\nmedian step over {len(kept['numpy'])} steps: tapegrad {ms['tapegrad']:.3f} ms, "
          f"compiled {ms['compiled']:.3f} ms, numpy {ms['numpy']:.3f} ms "
          f"(weights (in, out): {ms['numpy (in, out)']:.3f} ms)")  # fmt: skip
    for name, target in (("tapegrad", TARGET_RATIO), ("compiled", TARGET_COMPILED)):
        ratio = ms[name] / ms["numpy"]
        verdict = "ok" if ratio <= target else "OVER"
        print(
            f"ratio {name} / numpy: {ratio:.3f}x   (target <= {target}x: {verdict}); "
            f"against numpy with (in, out) weights {ms[name] / ms['numpy (in, out)']:.3f}x"
        )
    compiled = nets["compiled"].loss
    counts = compiled.op_counts()
    print(f"compiled: {counts['traced']} array operations traced, {counts['compiled']} after "
          f"the passes; {compiled.stats.traces} traces, {compiled.stats.eager_calls} eager "
          "calls")  # fmt: skip
    acc = {name: accuracy(net, x_test, y_test, np.asarray) for name, net in nets.items()}
    print(
        f"test accuracy after {epochs} epochs: "
        + ", ".join(f"{name} {a:.3f}" for name, a in acc.items())
    )
    print(f"peak RSS: {peak_rss_mb():.1f} MB")
    return 0


# ------------------------------------------------------------------------------------- GPU


def cuda_problem() -> str | None:
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "no CUDA GPU found"
        int(cupy.arange(2).sum())
    except Exception as exc:  # CuPy's own error types for a missing driver or runtime
        return f"CUDA is not usable ({type(exc).__name__}: {exc})"
    return None


def run_cuda(epochs: int, seed: int, steps: int, trials: int) -> int:
    problem = cuda_problem()
    if problem is not None:
        print(f"--device cuda: {problem}; skipping the GPU benchmark.")
        return 0
    import cupy

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"GPU: {name}, CuPy {cupy.__version__}, CUDA runtime "
          f"{cupy.cuda.runtime.runtimeGetVersion()}")  # fmt: skip

    x, y, x_test, y_test = load_data()
    model = make_tapegrad_model(seed)
    weights = weights_of(model, "out_in")
    model.to("cuda")
    assert all(p.device == "cuda" for p in model.parameters())
    compiled_model = make_tapegrad_model(seed).to("cuda")
    nets: dict[str, Any] = {
        "tapegrad": Tapegrad(model, "cuda"),
        "compiled": TapegradCompiled(compiled_model, "cuda"),
        "cupy": HandWritten(weights, cupy, "out_in"),
    }
    torch_net = make_torch(weights)
    if torch_net is not None:
        nets["torch"] = torch_net
    else:
        print("PyTorch with CUDA is not available: no side-by-side PyTorch figure")
    xg, yg = cupy.asarray(x), cupy.asarray(y)
    n_batches = len(y) // BATCH  # full batches only: every step has the same shape
    batches = [(xg[i * BATCH : (i + 1) * BATCH], yg[i * BATCH : (i + 1) * BATCH])
               for i in range(n_batches)]  # fmt: skip

    def timed(net: Any, count: int) -> float:
        """ms per step over ``count`` steps (CUDA events; the stream is drained first)."""
        cupy.cuda.Device().synchronize()
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        for i in range(count):
            net.step(*batches[i % n_batches])
        end.record()
        end.synchronize()
        return cupy.cuda.get_elapsed_time(start, end) / count

    for net in nets.values():  # warm-up: kernel compilation, memory pool, the trace
        timed(net, n_batches)
    results: dict[str, list[float]] = {name: [] for name in nets}
    wall: dict[str, list[float]] = {name: [] for name in nets}
    for trial in range(trials):
        order = list(nets)[trial % len(nets) :] + list(nets)[: trial % len(nets)]
        for name in order:
            t0 = time.perf_counter()
            results[name].append(timed(nets[name], steps))
            wall[name].append((time.perf_counter() - t0) * 1e3 / steps)
    for _ in range(max(epochs - 1, 0)):  # a little more training, for the accuracy check
        for net in nets.values():
            timed(net, n_batches)

    ms = {name: statistics.median(v) for name, v in results.items()}
    print(f"\nms per training step (784-{HIDDEN}-{CLASSES}, batch {BATCH}, float32), "
          f"median of {trials} runs of {steps} steps:")  # fmt: skip
    labels = {"tapegrad": "tapegrad on CuPy", "compiled": "tapegrad compiled",
              "cupy": "hand-written CuPy", "torch": "PyTorch eager"}  # fmt: skip
    for key, value in ms.items():
        print(f"  {labels[key]:<20} {value:7.3f} ms   (host wall clock "
              f"{statistics.median(wall[key]):.3f} ms)")  # fmt: skip
    ratio = ms["tapegrad"] / ms["cupy"]
    print(f"  eager tapegrad / hand-written CuPy: {ratio:.2f}x (target <= 1.15x: "
          f"{'ok' if ratio <= 1.15 else 'OVER'})")  # fmt: skip
    if "torch" in ms:
        ratio = ms["compiled"] / ms["torch"]
        print(f"  compiled tapegrad / PyTorch eager: {ratio:.2f}x (target <= 1.0x: "
              f"{'ok' if ratio <= 1.0 else 'OVER'})")  # fmt: skip
    print("reference, H100: " + ", ".join(f"{k} {v:.2f} ms" for k, v in REFERENCE_GPU_MS.items()))
    xt = cupy.asarray(x_test)
    acc = {name: accuracy(net, xt, y_test, cupy.asnumpy) for name, net in nets.items()}
    print("test accuracy: " + ", ".join(f"{labels[k]} {a:.3f}" for k, a in acc.items()))
    return 0


# ------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer epochs / steps")
    parser.add_argument("--epochs", type=int, help="epochs (default 12; 4 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs or (4 if args.quick else 12)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    print(f"machine: {platform.machine()}, CPUs: {os.cpu_count()} ({usable} usable), "
          f"Python {platform.python_version()}, NumPy {np.__version__}")  # fmt: skip
    try:
        import tapegrad.nn  # noqa: F401  (also makes tg.nn, tg.optim, tg.random attributes)
        import tapegrad.optim  # noqa: F401
        import tapegrad.random  # noqa: F401
    except ImportError as exc:
        print(f"tapegrad.nn / tapegrad.optim are not available yet: {exc}")
        return 1
    if args.device == "cuda":
        steps, trials = (100, 3) if args.quick else (300, 7)
        return run_cuda(epochs, args.seed, steps, trials)
    return run_cpu(max(epochs, 2), args.seed)


if __name__ == "__main__":
    sys.exit(main())

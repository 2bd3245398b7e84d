"""Per-op overhead of tapegrad's tape: forward + backward of small ops, next to raw NumPy.

    python bench/bench_ops.py            # about 10-20 s
    python bench/bench_ops.py --quick    # a few seconds, noisier

What it measures, on 16x16 float32 tensors (so the array math itself is tiny and the figure is
the framework's own cost: Function objects, the tape, topological sort, gradient bookkeeping):

* single op: ``y = op(a, b)`` then ``y.backward(g)`` (a and b require grad; their ``.grad`` is
  reset each time so nothing accumulates), in microseconds per forward+backward. Beside it, the
  same array math in raw NumPy (forward value plus the backward formulas). Nothing is
  subtracted from either figure.
* deep chain: 1,000 successive elementwise ops, then one ``backward``; microseconds per op
  (forward + its share of the backward), again beside raw NumPy doing the same math.

Each figure is the median over several trials of many repetitions. Target: <= 10 us per op.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "solution"))

import numpy as np  # noqa: E402
import tapegrad as tg  # noqa: E402

TARGET_US = 10.0
N = 16
CHAIN = 1000


def time_us(fn: Callable[[], object], reps: int, trials: int) -> float:
    """Median over ``trials`` of the mean time of one call of ``fn`` (``reps`` calls each)."""
    fn()  # warm-up (imports, caches, first allocations)
    results = []
    for _ in range(trials):
        gc.collect()
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        results.append((time.perf_counter() - start) / reps * 1e6)
    return statistics.median(results)


def machine_info() -> str:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    try:
        load = f"load average {os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        load = "load average n/a"
    return (
        f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", CPUs: {os.cpu_count()} ({usable} usable), {load}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, tapegrad {tg.__version__}"
    )


def single_op_cases(rng: np.random.Generator) -> list[tuple[str, Callable, Callable]]:
    """(name, tapegrad fwd+bwd, NumPy fwd+bwd) for each op."""
    an = rng.standard_normal((N, N)).astype(np.float32)
    bn = rng.standard_normal((N, N)).astype(np.float32)
    gn = rng.standard_normal((N, N)).astype(np.float32)
    a = tg.Tensor(an, requires_grad=True)
    b = tg.Tensor(bn, requires_grad=True)
    g = tg.Tensor(gn)

    def tape(op: Callable[[tg.Tensor, tg.Tensor], tg.Tensor]) -> Callable[[], None]:
        def run() -> None:
            a.grad = None
            b.grad = None
            op(a, b).backward(g)

        return run

    def np_mul() -> None:
        _ = an * bn
        _ = gn * bn, gn * an

    def np_add() -> None:
        _ = an + bn
        _ = gn, gn  # d(a+b) passes the cotangent through: no math

    def np_exp() -> None:
        y = np.exp(an)
        _ = gn * y

    def np_tanh() -> None:
        y = np.tanh(an)
        _ = gn * (1.0 - y * y)

    def np_matmul() -> None:
        _ = an @ bn
        _ = gn @ bn.T, an.T @ gn

    return [
        ("a * b", tape(lambda x, y: x * y), np_mul),
        ("a + b", tape(lambda x, y: x + y), np_add),
        ("exp(a)", tape(lambda x, y: x.exp()), np_exp),
        ("tanh(a)", tape(lambda x, y: x.tanh()), np_tanh),
        ("a @ b", tape(lambda x, y: x @ y), np_matmul),
    ]


def chain_cases(rng: np.random.Generator) -> list[tuple[str, Callable, Callable, Callable]]:
    """(name, tapegrad forward-only, tapegrad forward+backward, NumPy fwd+bwd) for chains of
    ``CHAIN`` elementwise ops on a 16x16 tensor that requires grad."""
    x0n = rng.uniform(-1, 1, (N, N)).astype(np.float32)
    bn = rng.uniform(0.9, 1.1, (N, N)).astype(np.float32)
    cn = rng.uniform(-0.01, 0.01, (N, N)).astype(np.float32)
    x0 = tg.Tensor(x0n, requires_grad=True)
    b, c = tg.Tensor(bn), tg.Tensor(cn)

    def mul_add_forward() -> tg.Tensor:  # x = x * b, x = x + c, alternating
        x = x0
        for _ in range(CHAIN // 2):
            x = x * b
            x = x + c
        return x

    def mul_add_full() -> None:
        x0.grad = None
        mul_add_forward().sum().backward()

    def mul_add_numpy() -> None:
        x = x0n
        for _ in range(CHAIN // 2):
            x = x * bn
            x = x + cn
        g = np.ones_like(x)
        for _ in range(CHAIN // 2):  # backward: + passes g through, * multiplies by b
            g = g * bn

    def tanh_forward() -> tg.Tensor:
        x = x0
        for _ in range(CHAIN):
            x = x.tanh()
        return x

    def tanh_full() -> None:
        x0.grad = None
        tanh_forward().sum().backward()

    def tanh_numpy() -> None:
        x = x0n
        ys = []
        for _ in range(CHAIN):
            x = np.tanh(x)
            ys.append(x)
        g = np.ones_like(x)
        for y in reversed(ys):
            g = g * (1.0 - y * y)

    return [
        ("x*b, x+c alternating", mul_add_forward, mul_add_full, mul_add_numpy),
        ("x = tanh(x)", tanh_forward, tanh_full, tanh_numpy),
    ]


def verdict(us: float) -> str:
    return "ok" if us <= TARGET_US else "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (noisier)")
    args = parser.parse_args(argv)
    reps, trials, chain_reps = (500, 3, 3) if args.quick else (4000, 9, 15)

    print(machine_info())
    print(f"16x{N} float32, median of {trials} trials; target <= {TARGET_US:g} us per op\n")
    rng = np.random.default_rng(0)
    start = time.perf_counter()

    print("single op, forward + backward (us per op)")
    print(f"  {'op':<10} {'tapegrad':>9} {'numpy':>8} {'ratio':>7}  target")
    for name, tape_fn, np_fn in single_op_cases(rng):
        t_tape = time_us(tape_fn, reps, trials)
        t_np = time_us(np_fn, reps, trials)
        print(
            f"  {name:<10} {t_tape:9.2f} {t_np:8.2f} {t_tape / t_np:6.1f}x  "
            f"<= {TARGET_US:g} {verdict(t_tape)}"
        )

    print(f"\ndeep chain: {CHAIN} elementwise ops, then one backward (us per op)")
    print(f"  {'chain':<22} {'forward':>8} {'fwd+bwd':>8} {'numpy':>7} {'ratio':>7}  target")
    for name, fwd, full, np_fn in chain_cases(rng):
        t_fwd = time_us(fwd, chain_reps, trials) / CHAIN
        t_full = time_us(full, chain_reps, trials) / CHAIN
        t_np = time_us(np_fn, chain_reps, trials) / CHAIN
        print(
            f"  {name:<22} {t_fwd:8.2f} {t_full:8.2f} {t_np:7.2f} {t_full / t_np:6.1f}x  "
            f"<= {TARGET_US:g} {verdict(t_full)}"
        )
    print(f"\n(total {time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

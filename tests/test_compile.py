"""tg.compile: the generated code computes what eager tapegrad computes (values, gradients,
random draws, running statistics), the guards retrace or fall back when they must, and
each pass keeps results while doing less."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tapegrad as tg
from tapegrad import nn
from tapegrad.backend import Backend, install_cuda_backend
from tapegrad.compiler import kernel_source
from tapegrad.nn import functional as F
from tapegrad.passes import PASSES

from autograder.worker.opspecs import SPECS, make_inputs


def _batch(n: int = 16, features: int = 20, classes: int = 5, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = tg.Tensor(rng.standard_normal((n, features)).astype(np.float32))
    y = tg.Tensor(rng.integers(0, classes, n))
    return x, y


def _grads(model: nn.Module) -> list[np.ndarray]:
    return [p.grad.numpy().copy() for p in model.parameters()]


def _step(loss_fn, model, x, y):  # type: ignore[no-untyped-def]
    model.zero_grad()
    loss = loss_fn(x, y)
    loss.backward()
    return float(loss), _grads(model)


def _twins(make):  # type: ignore[no-untyped-def]
    tg.manual_seed(3)
    a = make()
    tg.manual_seed(3)
    b = make()
    return a, b


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5))


def test_an_mlp_step_equals_eager_and_runs_compiled() -> None:
    eager, model = _twins(_mlp)
    compiled = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    for seed in range(4):
        x, y = _batch(seed=seed)
        want_loss, want_grads = _step(lambda x, y: F.cross_entropy(eager(x), y), eager, x, y)
        loss, grads = _step(compiled, model, x, y)
        assert loss == pytest.approx(want_loss, rel=1e-6)
        for g, w in zip(grads, want_grads):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)
    assert compiled.stats.traces == 1 and compiled.stats.compiled_calls == 3
    assert compiled.stats.eager_calls == 0
    source = compiled.source()
    assert source.startswith("def forward(x, y,") and "def backward(dy," in source
    assert "@" in source and "xp.maximum" in source


def test_training_with_the_compiled_loss_follows_eager_training() -> None:
    eager, model = _twins(_mlp)
    opts = [tg.optim.SGD(list(m.parameters()), lr=0.5, momentum=0.9) for m in (eager, model)]
    fns = [
        lambda x, y: F.cross_entropy(eager(x), y),
        tg.compile(lambda x, y: F.cross_entropy(model(x), y)),
    ]
    for step in range(20):
        x, y = _batch(seed=step % 5)
        for fn, opt in zip(fns, opts):
            opt.zero_grad()
            fn(x, y).backward()
            opt.step()
    for p, q in zip(eager.parameters(), model.parameters()):
        np.testing.assert_allclose(q.numpy(), p.numpy(), rtol=1e-4, atol=1e-6)


def test_dropout_draws_the_same_masks_and_batch_norm_updates_its_buffers() -> None:
    def make() -> nn.Module:
        return nn.Sequential(
            nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 5)
        )

    eager, model = _twins(make)
    compiled = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    tg.manual_seed(11)
    x, y = _batch()
    want = [_step(lambda x, y: F.cross_entropy(eager(x), y), eager, x, y) for _ in range(3)]
    tg.manual_seed(11)
    got = [_step(compiled, model, x, y) for _ in range(3)]
    for (loss, grads), (want_loss, want_grads) in zip(got, want):
        assert loss == pytest.approx(want_loss, rel=1e-5)
        for g, w in zip(grads, want_grads):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    for b, c in zip(eager.buffers(), model.buffers()):
        np.testing.assert_allclose(c.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)
    assert compiled.stats.compiled_calls == 2
    assert "draw(" in compiled.source()  # a fresh mask per call, not a constant


def test_switching_to_eval_retraces_and_matches_eager() -> None:
    def make() -> nn.Module:
        return nn.Sequential(
            nn.Linear(20, 32), nn.BatchNorm1d(32), nn.Dropout(0.5), nn.Linear(32, 5)
        )

    eager, model = _twins(make)
    compiled = tg.compile(lambda x: model(x))
    x, _ = _batch()
    with tg.no_grad():
        for m in (eager, model):
            m(x)  # one training-mode pass moves the running statistics
        compiled(x)
        eager(x)  # keep the twins' buffers in step
        eager.eval()
        model.eval()
        for _ in range(2):
            np.testing.assert_allclose(compiled(x).numpy(), eager(x).numpy(), rtol=1e-5, atol=1e-6)
    assert compiled.stats.traces == 2  # training mode, then evaluation mode


def test_a_new_shape_or_dtype_is_a_new_trace() -> None:
    w = tg.Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    f = tg.compile(lambda x: tg.tanh(x @ w).sum())
    for rows in (2, 5, 2, 5):
        x = tg.Tensor(np.ones((rows, 4)))
        w.grad = None
        f(x).backward()
        got = w.grad.numpy()
        w.grad = None
        tg.tanh(x @ w).sum().backward()
        np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-12)
    assert f.stats.traces == 2 and f.stats.compiled_calls == 2


def test_gradients_reach_arguments_and_captured_tensors() -> None:
    rng = np.random.default_rng(1)
    w = tg.Tensor(rng.standard_normal((3, 3)), requires_grad=True)

    def f(a, b):  # type: ignore[no-untyped-def]
        return (tg.exp(a) * b + (a @ w) ** 2 - tg.logsumexp(b, axis=1).reshape(-1, 1)).mean()

    compiled = tg.compile(f)
    for _ in range(2):
        a = tg.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
        b = tg.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
        w.grad = None
        compiled(a, b).backward()
        got = [a.grad.numpy(), b.grad.numpy(), w.grad.numpy()]
        a.grad = b.grad = w.grad = None
        f(a, b).backward()
        for g, t in zip(got, (a, b, w)):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12)
    assert compiled.stats.compiled_calls == 1


@pytest.mark.parametrize("s", SPECS, ids=lambda s: s.name)
def test_every_op_spec_compiles_to_the_same_values_and_gradients(s) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    for case in s.cases:
        xs = make_inputs(s, case, rng)

        def f(*ts, kwargs=case.kwargs):  # type: ignore[no-untyped-def]
            return s.call(tg, *ts, **kwargs)

        compiled = tg.compile(f)
        tensors = [tg.Tensor(x, requires_grad=True) for x in xs]
        out = f(*tensors)
        cot = rng.standard_normal(out.shape)
        loss = (f(*tensors) * tg.Tensor(cot)).sum()
        loss.backward()
        want = [t.grad.numpy() for t in tensors]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback: every op traces
            for _ in range(2):  # the first call is eager, the second compiled
                ts = [tg.Tensor(x, requires_grad=True) for x in xs]
                y = compiled(*ts)
                np.testing.assert_allclose(y.numpy(), out.numpy(), rtol=1e-12, atol=1e-12)
                (y * tg.Tensor(cot)).sum().backward()
                for t, w in zip(ts, want):
                    np.testing.assert_allclose(t.grad.numpy(), w, rtol=1e-10, atol=1e-12)
        assert compiled.stats.compiled_calls == 1, s.name


def test_a_conv_net_compiles() -> None:
    def make() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(4 * 4 * 4, 3),
        )

    eager, model = _twins(make)
    compiled = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((5, 1, 8, 8)).astype(np.float32))
    y = tg.Tensor(rng.integers(0, 3, 5))
    for _ in range(2):
        loss, grads = _step(compiled, model, x, y)
    want_loss, want_grads = _step(lambda x, y: F.cross_entropy(eager(x), y), eager, x, y)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)
    assert compiled.stats.compiled_calls == 1


def test_reading_a_value_falls_back_to_eager_with_a_message() -> None:
    def f(x):  # type: ignore[no-untyped-def]
        scale = float(x.sum())
        return x * scale

    compiled = tg.compile(f)
    x = tg.Tensor(np.arange(3.0))
    with pytest.warns(UserWarning, match="running eagerly.*float"):
        compiled(x)
    for _ in range(2):
        np.testing.assert_allclose(compiled(x).numpy(), f(x).numpy())
    assert compiled.stats.compiled_calls == 0 and compiled.stats.eager_calls == 3
    assert len(compiled.stats.fallbacks) == 1


def test_a_branch_on_a_value_is_guarded() -> None:
    def f(x):  # type: ignore[no-untyped-def]
        if (x.sum() > 0).data:  # Python control flow on a value
            return x * 2.0
        return x - 1.0

    compiled = tg.compile(f)
    pos, neg = tg.Tensor(np.ones(3)), tg.Tensor(-np.ones(3))
    compiled(pos)  # eager, traced on the positive branch
    np.testing.assert_allclose(compiled(pos).numpy(), f(pos).numpy())
    with pytest.warns(UserWarning, match="branch went the other way"):
        np.testing.assert_allclose(compiled(neg).numpy(), f(neg).numpy())
    assert compiled.stats.compiled_calls == 1 and compiled.stats.eager_calls == 1
    assert "raise Diverged" in compiled.source()


def test_backward_inside_and_higher_order_are_refused_clearly() -> None:
    w = tg.Tensor(np.ones(3), requires_grad=True)

    def with_backward(x):  # type: ignore[no-untyped-def]
        loss = (x * w).sum()
        loss.backward()
        return loss

    compiled = tg.compile(with_backward)
    with pytest.warns(UserWarning, match=r"calls \.backward\(\)"):
        compiled(tg.Tensor(np.ones(3)))
    tg.manual_seed(0)
    drop = tg.nn.Dropout(0.5)
    noisy = tg.compile(lambda x: (drop(x) * w).sum())
    x = tg.Tensor(np.ones(3), requires_grad=True)
    noisy(x)
    y = noisy(x)
    with pytest.raises(RuntimeError, match="draws random numbers"):
        y.backward(create_graph=True)


def test_gradients_of_gradients_replay_the_function_eagerly() -> None:
    def f(x):  # type: ignore[no-untyped-def]
        return (tg.sin(x) * x * x).sum()

    compiled = tg.compile(f)
    x = np.array([0.3, -1.2, 2.0])

    def second(fn):  # type: ignore[no-untyped-def]
        return tg.grad(lambda x: tg.grad(fn)(x).sum())(x).numpy()

    for _ in range(3):  # eager, then compiled: tg.grad records its backward (create_graph)
        np.testing.assert_allclose(second(compiled), second(f), rtol=1e-12)
        np.testing.assert_allclose(tg.grad(compiled)(x).numpy(), tg.grad(f)(x).numpy())
    assert compiled.stats.compiled_calls > 0


def test_the_passes_keep_results_and_cut_operations() -> None:
    def f(x, w):  # type: ignore[no-untyped-def]
        _ = tg.exp(x) * 3.0  # computed, never used: dead
        h = tg.relu(x @ w) * 2.0 + 1.0
        return (tg.tanh(h) * tg.sigmoid(h)).sum()

    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((8, 6)))
    w = tg.Tensor(rng.standard_normal((6, 4)), requires_grad=True)
    results = {}
    for passes in ((), ("fold",), ("fold", "dce"), ("fold", "dce", "fuse"), tuple(PASSES)):
        fn = tg.compile(passes=passes)(f)
        fn(x, w)
        w.grad = None
        y = fn(x, w)
        y.backward()
        results[passes] = (y.item(), w.grad.numpy(), fn.op_counts()["compiled"], fn.source())
    base_value, base_grad, base_count, base_source = results[()]
    assert "xp.exp" in base_source and "xp.exp" not in results[("fold", "dce")][3]
    counts = [r[2] for r in results.values()]
    assert counts[2] < counts[1] <= counts[0] and counts[3] < counts[2]
    for value, grad, _, _ in results.values():
        assert value == pytest.approx(base_value, rel=1e-12)
        np.testing.assert_allclose(grad, base_grad, rtol=1e-12)
    assert "out=" in results[tuple(PASSES)][3]  # buffers reused


def test_a_fused_chain_has_one_c_expression_per_member() -> None:
    x = tg.Tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    fn = tg.compile(passes=("fold", "dce", "fuse"))(lambda x: tg.exp(tg.tanh(x) * 2.0 + 1.0))
    fn(x)
    np.testing.assert_allclose(fn(x).numpy(), np.exp(np.tanh(x.numpy()) * 2 + 1), rtol=1e-6)
    fused = [i for i in fn._entry().forward.program.instrs if i.fused is not None]
    assert len(fused) == 1 and [m.name for m in fused[0].fused] == [
        "tanh",
        "multiply",
        "add",
        "exp",
    ]
    params, out, body = kernel_source(fused[0])
    assert params == "float32 x0" and out == "float32 y"
    assert body == (
        "float t0 = tanh(x0); float t1 = (t0 * ((float)2.0)); float t2 = (t1 + ((float)1.0)); "
        "float t3 = exp(t2); y = t3;"
    )


def test_the_cuda_path_with_numpy_standing_in() -> None:
    previous = install_cuda_backend(Backend("cuda", np, np.asarray, np.add.at))
    try:
        tg.manual_seed(0)
        model = _mlp().to("cuda")
        compiled = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
        x, y = (t.to("cuda") for t in _batch())
        results = [_step(compiled, model, x, y) for _ in range(2)]
        want = _step(lambda x, y: F.cross_entropy(model(x), y), model, x, y)
        assert results[1][0] == pytest.approx(want[0], rel=1e-6)
        assert all(p.grad.device == "cuda" for p in model.parameters())
        assert compiled.stats.compiled_calls == 1
    finally:
        install_cuda_backend(previous)


def test_backward_on_the_output_accumulates_as_eager() -> None:
    rng = np.random.default_rng(4)
    w = tg.Tensor(rng.standard_normal((3, 2)), requires_grad=True)
    x = tg.Tensor(rng.standard_normal((5, 3)))
    f = tg.compile(lambda x: tg.tanh(x @ w))
    f(x)
    y = f(x)  # compiled, a (5, 2) output
    cot = rng.standard_normal((5, 2))
    y.backward(cot)
    y.backward(tg.Tensor(cot))  # twice: gradients add up, as in eager mode
    (f(x) * 2.0).sum().backward()  # used further: the tape's general path
    got = w.grad.numpy()
    w.grad = None
    z = tg.tanh(x @ w)
    z.backward(cot)
    z.backward(cot)
    (tg.tanh(x @ w) * 2.0).sum().backward()
    np.testing.assert_allclose(got, w.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="one-element"):
        f(x).backward()
    assert f.stats.compiled_calls == 3


def test_state_the_trace_cannot_see_is_refused_not_frozen() -> None:
    scratch = np.zeros(3)
    w = tg.Tensor(np.ones(3), requires_grad=True)

    def f(x):  # type: ignore[no-untyped-def]
        y = x * w
        np.multiply(y.data, 2.0, out=scratch)  # a side effect on an array outside the trace
        return y.sum()

    compiled = tg.compile(f)
    with pytest.warns(
        UserWarning, match="running eagerly.*writes into an array that is not traced"
    ):
        compiled(tg.Tensor(np.arange(3.0)))
    compiled(tg.Tensor(np.arange(3.0) + 1))
    np.testing.assert_allclose(scratch, 2 * (np.arange(3.0) + 1))  # eager: updated each call


def test_a_failing_pass_is_an_error_not_a_silent_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    import tapegrad.passes

    def unfinished(program):  # type: ignore[no-untyped-def]
        raise NotImplementedError("hw4: eliminate_dead_values")

    monkeypatch.setitem(tapegrad.passes.PASSES, "dce", unfinished)
    compiled = tg.compile(lambda x: (x * 2.0).sum())
    with pytest.raises(NotImplementedError, match="eliminate_dead_values"):
        compiled(tg.Tensor(np.ones(3)))


CHAINS = {
    "exp(tanh(x) * 2 + 1)": (lambda x: tg.exp(tg.tanh(x) * 2.0 + 1.0), 1),
    "relu(x * y + y) / (1 + |x|)": (lambda x, y: tg.relu(x * y + y) / (tg.abs(x) + 1.0), 2),
    "sqrt(x * x + 1) - sin(y) * cos(x)": (
        lambda x, y: tg.sqrt(x * x + 1.0) - tg.sin(y) * tg.cos(x),
        2,
    ),
}


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_fused_kernel_source_computes_what_numpy_computes(name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The C of each fused chain (CuPy's ElementwiseKernel body), compiled here by a C++
    compiler with CUDA's overloads stood in by <cmath>, against the chain run by NumPy."""
    import shutil
    import subprocess

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        pytest.skip("no C++ compiler on this machine")
    f, arity = CHAINS[name]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(arity)]
    fn = tg.compile(passes=("fold", "dce", "fuse"))(f)
    fn(*[tg.Tensor(x) for x in xs])
    want = fn(*[tg.Tensor(x) for x in xs]).numpy()
    program = fn._entry().forward.program
    fused = [i for i in program.instrs if i.fused is not None]
    assert len(fused) == 1 and fused[0].out is program.outputs[0], program.instrs
    params, _, body = kernel_source(fused[0])
    operands = fused[0].args
    lines = [
        "#include <cmath>", "#include <cstdio>", "using std::abs; using std::max; using std::min;",
        "using std::exp; using std::log; using std::sqrt; using std::tanh; using std::sin;",
        "using std::cos; using std::pow; typedef float float32; typedef double float64;",
        "int main() {",
    ]  # fmt: skip
    for k, v in enumerate(operands):
        values = ", ".join(
            f"{float(a)!r}f" for a in np.broadcast_to(v.concrete, want.shape).ravel()
        )
        lines.append(f"  const float32 X{k}[] = {{{values}}};")
    lines.append(f"  for (int i = 0; i < {want.size}; i++) {{")
    lines += [f"    float32 x{k} = X{k}[i];" for k in range(len(operands))]
    lines += ["    float32 y;", f"    {body}", '    std::printf("%.9g\\n", (double)y);', "  }"]
    lines.append("}")
    source = tmp_path / "kernel.cpp"
    source.write_text("\n".join(lines))
    subprocess.run([compiler, "-O1", "-o", str(tmp_path / "kernel"), str(source)], check=True)
    out = subprocess.run([str(tmp_path / "kernel")], capture_output=True, text=True, check=True)
    got = np.array([float(v) for v in out.stdout.split()]).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert params.count("float32") == len(operands)


def _random_program(rng: np.random.Generator):  # type: ignore[no-untyped-def]
    """A random elementwise function of a (3, 4) and a broadcast (4,) input, with values used
    several times: what fusion and buffer reuse must get right."""
    unary = [tg.tanh, tg.sin, tg.cos, tg.sigmoid, tg.relu, lambda v: tg.sqrt(v * v + 1.0)]
    binary = [lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a - b, lambda a, b: a * 0.5 + b]
    steps = [
        (int(rng.integers(0, 2)), int(rng.integers(0, 10**6)), int(rng.integers(0, 10**6)))
        for _ in range(int(rng.integers(3, 12)))
    ]

    def f(x, b):  # type: ignore[no-untyped-def]
        values = [x, b]
        for kind, i, j in steps:
            a = values[i % len(values)]
            if kind == 0:
                values.append(unary[j % len(unary)](a))
            else:
                values.append(binary[j % len(binary)](a, values[j % len(values)]))
        return (values[-1] * values[-2]).sum() if values[-1].ndim == 2 else values[-1].sum()

    return f


def test_random_elementwise_programs_compile_to_eager_values_and_gradients() -> None:
    for seed in range(150):
        rng = np.random.default_rng(seed)
        f = _random_program(rng)
        x, b = rng.standard_normal((3, 4)), rng.standard_normal(4)
        compiled = tg.compile(f)
        for _ in range(2):
            xt, bt = tg.Tensor(x, requires_grad=True), tg.Tensor(b, requires_grad=True)
            y = compiled(xt, bt)
            y.backward()
        xe, be = tg.Tensor(x, requires_grad=True), tg.Tensor(b, requires_grad=True)
        ye = f(xe, be)
        ye.backward()
        assert y.item() == pytest.approx(ye.item(), rel=1e-12, abs=1e-12), seed
        for got, want in ((xt.grad, xe.grad), (bt.grad, be.grad)):
            assert (got is None) == (want is None), seed  # an input the result ignores
            if want is not None:
                np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-11, atol=1e-12)
        assert compiled.stats.compiled_calls == 1, (seed, compiled.stats.fallbacks)


def test_argument_names_never_clash_with_the_generated_names() -> None:
    def f(v1, c0, xp, dy):  # type: ignore[no-untyped-def]
        return (v1 * c0 + xp - dy).sum()

    compiled = tg.compile(f)
    args = [tg.Tensor(np.full(2, float(k + 1)), requires_grad=True) for k in range(4)]
    for _ in range(2):
        y = compiled(*args)
    assert y.item() == f(*args).item() and compiled.stats.compiled_calls == 1
    assert compiled.source().startswith("def forward(arg1, arg2, arg3, arg4)")


def test_numbers_lifted_to_tensors_are_constants_not_inputs() -> None:
    w = tg.Tensor(np.ones((3, 2)), requires_grad=True)
    f = tg.compile(lambda x: (tg.tanh(x @ w) ** 2.0 * 0.5).sum())
    f(tg.Tensor(np.ones((4, 3))))
    assert f.source().splitlines()[0] == "def forward(x, w0):"


# ---- what a review of the compiler found, each now a test --------------------------------------


def test_an_argument_in_another_memory_layout_gives_eager_values_and_stays_untouched() -> None:
    def f(x):  # type: ignore[no-untyped-def]
        e = x * 2.0
        return tg.sin(e.T.reshape(12)).sum() + e.sum()

    a = np.arange(12.0).reshape(3, 4) / 10
    compiled = tg.compile(f)
    compiled(tg.Tensor(a))
    compiled(tg.Tensor(a))
    z = tg.Tensor(a.T.copy()).T  # the same values, Fortran-ordered
    before = z.numpy().copy()
    assert compiled(z).item() == pytest.approx(f(z).item(), rel=1e-12)
    np.testing.assert_array_equal(z.numpy(), before)


def test_a_boolean_mask_from_the_arguments_runs_eagerly() -> None:
    compiled = tg.compile(lambda x, m: x[m].mean())
    x = tg.Tensor(np.array([1.0, 2.0, 3.0, 4.0]), requires_grad=True)
    masks = [np.array([True, True, True, False]), np.array([True, False, False, True])]
    with pytest.warns(UserWarning, match="boolean mask"):
        compiled(x, tg.Tensor(masks[0]))
    assert compiled(x, tg.Tensor(masks[1])).item() == 2.5


def test_structures_with_none_and_two_layers_of_one_class() -> None:
    l1, l2 = tg.nn.Linear(3, 3), tg.nn.Linear(3, 2)
    compiled = tg.compile(lambda x: {"loss": (l2(l1(x)) ** 2.0).sum(), "aux": None})
    x = tg.Tensor(np.ones((2, 3), np.float32))
    for _ in range(2):
        out = compiled(x)
    assert out["aux"] is None and compiled.stats.compiled_calls == 1, compiled.stats.fallbacks
    assert "linear_bias_2" in compiled.source()


def test_a_failed_guard_leaves_buffers_and_random_draws_as_eager_would() -> None:
    def make():  # type: ignore[no-untyped-def]
        bn = tg.nn.BatchNorm1d(3)

        def f(x):  # type: ignore[no-untyped-def]
            h = tg.nn.functional.dropout(bn(x), 0.5, training=True)
            if (x.sum() > 0).data:
                return (h * 2.0).sum()
            return (h * 3.0).sum()

        return bn, f

    (bn_e, f_e), (bn_c, f_c) = make(), make()
    f_c = tg.compile(f_c)
    pos = np.abs(np.random.default_rng(0).standard_normal((4, 3))) + 1
    results = []
    for fn in (f_e, f_c):
        tg.manual_seed(5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results.append([fn(tg.Tensor(x)).item() for x in (pos, pos, -pos, pos)])
    assert results[0] == pytest.approx(results[1], rel=1e-12)
    np.testing.assert_allclose(bn_c.running_mean.numpy(), bn_e.running_mean.numpy(), rtol=1e-6)


def test_forward_mode_through_a_compiled_function_runs_eagerly() -> None:
    compiled = tg.compile(lambda x: (x * x).sum())
    x, t = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert [tg.jvp(compiled, (x,), (t,))[1].item() for _ in range(3)] == [2.0, 2.0, 2.0]


def test_gradients_are_writable_and_labels_are_checked() -> None:
    compiled = tg.compile(lambda x: x.sum() ** 2.0)
    for _ in range(2):
        x = tg.Tensor(np.ones((3, 4)), requires_grad=True)
        compiled(x).backward()
    assert x.grad.data.flags.writeable
    loss = tg.compile(lambda z, y: F.cross_entropy(z, y))
    z = tg.Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    ok = tg.Tensor(np.array([0, 1, 2]))
    loss(z, ok)
    loss(z, ok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="class indices"):
            loss(z, tg.Tensor(np.array([0, 1, -1])))


def test_captured_tensors_without_gradient_are_constants_and_modules_are_guarded() -> None:
    x = tg.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    mask = tg.Tensor(np.array([1.0, 0.0, 1.0]))
    compiled = tg.compile(lambda x: (x * mask).sum())
    compiled(x)
    compiled(x)
    assert "def forward(x):" in compiled.source()  # mask is a constant, as documented
    tg.manual_seed(0)
    net = tg.nn.Sequential(tg.nn.Linear(4, 4), tg.nn.Dropout(0.5))
    fn = tg.compile(lambda x: net(x).sum())
    xb = tg.Tensor(np.ones((2, 4), np.float32))
    fn(xb)
    fn(xb)
    for m in net.modules():
        if isinstance(m, tg.nn.Dropout):
            m.p = 0.0
    assert fn(xb).item() == pytest.approx(net(xb).sum().item(), rel=1e-6)
    assert fn.stats.traces == 2  # the new setting was seen


def test_numbers_are_keyed_by_their_bits() -> None:
    compiled = tg.compile(lambda x, s: x / s)
    x = tg.Tensor(np.ones(2))
    with np.errstate(divide="ignore"):
        compiled(x, 0.0)
        compiled(x, 0.0)
        assert list(compiled(x, -0.0).numpy()) == [-np.inf, -np.inf]
    for _ in range(3):
        compiled(x, float("nan"))
    assert compiled.stats.traces == 3

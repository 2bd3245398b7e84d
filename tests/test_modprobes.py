"""The module probes (autograder/modprobes/): the reference passes every probe for many
seeds, planted bugs fail the right probe with the right bug class, the parent-side check
handles failures, and the probes run end to end through a real worker."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import numpy as np
import pytest
import tapegrad as tg
import tapegrad.train  # noqa: F401 - tg.train, which the accuracy probe uses
from conftest import worker_session

from autograder.config import assignment_ids, load_assignment
from autograder.grading.cases import RequestFailed
from autograder.grading.diagnose import BUG_CLASSES, Verdict
from autograder.grading.modules import PROBES, run_module_check
from autograder.grading.session import WorkerSession
from autograder.worker.modules import RUNS, module_handler

REPO = Path(__file__).resolve().parents[1]
STATISTICAL = ("dropout", "xavier", "kaiming")


def _judge_all(t: Any, name: str, seed: int) -> list[tuple[str, Verdict]]:
    """Every variant of probe ``name`` run with ``t`` (a tapegrad, maybe patched) in-process."""
    probe = PROBES[name]
    rng = np.random.default_rng(seed)
    verdicts = []
    for v, label in enumerate(probe.variants):
        params, arrays = probe.make_case(rng, v)
        with np.errstate(all="ignore"):
            got = RUNS[name](t, dict(params), [a.copy() for a in arrays])
        verdicts.append((label, probe.verdict(params, arrays, got)))
    return verdicts


def _patched(**changes: Any) -> SimpleNamespace:
    """tapegrad with attributes replaced: ``_patched(**{"nn.Dropout": Buggy})``."""
    root = SimpleNamespace(**vars(tg))
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        holder = root
        for name in parents:
            copy = SimpleNamespace(**vars(getattr(holder, name)))
            setattr(holder, name, copy)
            holder = copy
        setattr(holder, leaf, value)
    return root


# ---- the table --------------------------------------------------------------------------------


def test_every_probe_named_in_the_assignments_exists() -> None:
    named = {
        c.probe
        for hw in assignment_ids(REPO)
        for c in load_assignment(hw, REPO).checks
        if c.kind == "module"
    }
    assert named <= set(PROBES), f"no probe for {named - set(PROBES)}"
    assert named == set(PROBES), f"probes no assignment uses: {set(PROBES) - named}"


def test_every_probe_has_both_halves() -> None:
    """The judge half (PROBES, in the grading zone) and the worker half (RUNS) name the same
    probes, so a check never reaches a worker that cannot run it."""
    assert set(PROBES) == set(RUNS)


def test_bug_classes_are_known() -> None:
    known = set(BUG_CLASSES)
    used = {sig.bug_class for p in PROBES.values() for sig in p.signatures}
    assert used <= known


@pytest.mark.parametrize("name", sorted(PROBES))
def test_reference_passes(name: str) -> None:
    seeds = range(12) if name in STATISTICAL else range(4)
    for seed in seeds:
        for label, verdict in _judge_all(tg, name, seed):
            assert verdict.ok, f"{name} seed {seed} ({label}): {verdict}"


def test_cases_are_reproducible_and_json() -> None:
    import json

    for probe in PROBES.values():
        for v in range(len(probe.variants)):
            a = probe.make_case(np.random.default_rng(5), v)
            b = probe.make_case(np.random.default_rng(5), v)
            assert json.loads(json.dumps(a[0])) == a[0] == b[0]
            assert all(np.array_equal(x, y, equal_nan=True) for x, y in zip(a[1], b[1]))
            assert len(a[0]["outputs"]) == len(probe.reference(a[0], a[1]))


# ---- planted bugs -----------------------------------------------------------------------------


class NoScaleDropout(tg.nn.Dropout):
    def forward(self, x: Any) -> Any:
        if not self.training:
            return x
        keep = np.random.default_rng().random(x.shape) >= self.p
        return x * tg.Tensor(keep.astype(x.dtype))


class EvalDropout(tg.nn.Dropout):
    def forward(self, x: Any) -> Any:
        return tg.nn.functional.dropout(x, self.p, True)


class BatchStatsInEval(tg.nn.BatchNorm1d):
    def forward(self, x: Any) -> Any:
        F = tg.nn.functional
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True)


class UnbiasedBatchNorm(tg.nn.BatchNorm1d):
    def forward(self, x: Any) -> Any:
        if not self.training:
            return super().forward(x)
        mean = x.mean(axis=0)
        c = x - mean
        var = (c * c).sum(axis=0) / (x.shape[0] - 1)
        self.running_mean.data = 0.9 * self.running_mean.data + 0.1 * mean.data
        self.running_var.data = 0.9 * self.running_var.data + 0.1 * var.data
        return c / tg.sqrt(var + self.eps) * self.weight + self.bias


class UnbiasedLayerNorm(tg.nn.LayerNorm):
    def forward(self, x: Any) -> Any:
        c = x - x.mean(axis=-1, keepdims=True)
        var = (c * c).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)
        return c / tg.sqrt(var + self.eps) * self.weight + self.bias


class NoCorrectionAdam(tg.optim.Adam):
    def step(self) -> None:
        b1, b2 = self.betas
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data + self.weight_decay * p.data
            m = self.m[i] if self.m[i] is not None else np.zeros_like(g)
            v = self.v[i] if self.v[i] is not None else np.zeros_like(g)
            self.m[i], self.v[i] = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            p.data = p.data - self.lr * self.m[i] / (np.sqrt(self.v[i]) + self.eps)


class DampedSGD(tg.optim.SGD):
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data + self.weight_decay * p.data
            if self.momentum:
                buf = self.buffers[i] if self.buffers[i] is not None else np.zeros_like(g)
                g = self.buffers[i] = self.momentum * buf + (1 - self.momentum) * g
            p.data = p.data - self.lr * g


class NoDecaySGD(tg.optim.SGD):
    def __init__(self, params: Any, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, momentum, 0.0)


class NoZeroGradSGD(tg.optim.SGD):
    def zero_grad(self) -> None:
        pass


class DetachedBiasLinear(tg.nn.Linear):
    def forward(self, x: Any) -> Any:
        y = x @ self.weight.T
        return y if self.bias is None else y + tg.Tensor(self.bias.data)


class ZeroInitLinear(tg.nn.Linear):
    def reset_parameters(self) -> None:
        self.weight.data[...] = 0.0


class NumpyLinear(tg.nn.Linear):
    def forward(self, x: Any) -> Any:
        return (x @ self.weight.T + self.bias).numpy()


class FlippedConv(tg.nn.Conv2d):
    def forward(self, x: Any) -> Any:
        w = self.weight[:, :, ::-1, ::-1]
        return tg.nn.functional.conv2d(x, w, self.bias, self.stride, self.padding)


class AverageGradientPool(tg.nn.MaxPool2d):
    def forward(self, x: Any) -> Any:
        k = self.kernel_size[0]
        n, c, h, w = x.shape
        windows = x[:, :, : h // k * k, : w // k * k].reshape(n, c, h // k, k, w // k, k)
        mean = windows.mean(axis=(3, 5))  # forward: the max; backward: the mean's gradient
        return mean + tg.Tensor(windows.data.max(axis=(3, 5)) - mean.data)


class ShallowModule(tg.nn.Module):
    """parameters() sees direct attributes and attribute modules only (no lists, no dedupe);
    train()/eval() set this module's flag only."""

    def parameters(self) -> Iterator[Any]:
        for value in vars(self).values():
            if isinstance(value, tg.nn.Parameter):
                yield value
            elif isinstance(value, tg.nn.Module):
                yield from value.parameters()

    def train(self, mode: bool = True) -> Any:
        self.training = mode
        return self


def _unstable_cross_entropy(z: Any, labels: Any) -> Any:
    labels = labels.data if isinstance(labels, tg.Tensor) else labels
    return -tg.log(tg.softmax(z, 1))[np.arange(z.shape[0]), labels].mean()


def _sum_mse(x: Any, target: Any) -> Any:
    d = x - target
    return (d * d).sum()


def _clip_each(params: Any, max_norm: float) -> float:
    params = [p for p in params if p.grad is not None]
    total = math.sqrt(sum(float((p.grad.data**2).sum()) for p in params))
    for p in params:
        norm = math.sqrt(float((p.grad.data**2).sum()))
        if norm > max_norm:
            p.grad = tg.Tensor(p.grad.data * (max_norm / (norm + 1e-6)))
    return total


def _fans(t: Any) -> tuple[int, int]:
    field = math.prod(t.shape[2:])
    return t.shape[1] * field, t.shape[0] * field


def _xavier_fan_in(t: Any, gain: float = 1.0) -> Any:
    bound = gain * math.sqrt(3.0 / _fans(t)[0])
    return tg.nn.init.uniform_(t, -bound, bound)


def _kaiming_no_gain(t: Any, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "") -> Any:
    fan_in, fan_out = _fans(t)
    bound = math.sqrt(3.0 / (fan_in if mode == "fan_in" else fan_out))
    return tg.nn.init.uniform_(t, -bound, bound)


def _forward_difference(f: Any, x: Any, v: Any, eps: float) -> Any:
    return (f(x + eps * v) - f(x)) / eps


def _not_halved(f: Any, x: Any, v: Any, eps: float) -> Any:
    return (f(x + eps * v) - f(x - eps * v)) / eps


def _accuracy_count(logits: Any, labels: Any) -> float:
    return float(np.sum(np.argmax(logits.numpy(), axis=1) == np.asarray(labels)))


class TiesImproveStopping(tg.optim.EarlyStopping):
    def step(self, metric: Any) -> bool:
        value = float(metric)
        sign = 1.0 if self.mode == "min" else -1.0
        if sign * value <= sign * (self.best - sign * self.min_delta):
            self.best, self.num_bad_steps = value, 0
        else:
            self.num_bad_steps += 1
        return self.should_stop


PLANTED = [  # probe, patches, expected bug class, words in the message
    ("dropout", {"nn.Dropout": NoScaleDropout}, "dropout_scaling", "not scaled"),
    ("dropout", {"nn.Dropout": EvalDropout}, "train_eval_mode", "eval mode"),
    ("batchnorm1d", {"nn.BatchNorm1d": BatchStatsInEval}, "train_eval_mode", "running_mean"),
    ("batchnorm1d", {"nn.BatchNorm1d": UnbiasedBatchNorm}, "wrong_variance", "unbiased"),
    ("layernorm", {"nn.LayerNorm": UnbiasedLayerNorm}, "wrong_variance", "unbiased"),
    ("adam", {"optim.Adam": NoCorrectionAdam}, "no_bias_correction", "bias correction"),
    ("sgd", {"optim.SGD": DampedSGD}, "wrong_momentum", "damped"),
    ("sgd", {"optim.SGD": NoDecaySGD}, "wrong_weight_decay", "weight decay is ignored"),
    ("sgd", {"optim.SGD": NoZeroGradSGD}, "wrong_gradient", "zero_grad"),
    ("linear", {"nn.Linear": DetachedBiasLinear}, "no_gradient", "gradient of bias"),
    ("linear", {"nn.Linear": ZeroInitLinear}, "wrong_init_scale", "all initial weights"),
    ("cross_entropy", {"nn.functional.cross_entropy": _unstable_cross_entropy},
     "unstable_softmax", "NaN or inf"),
    ("mse", {"nn.functional.mse_loss": _sum_mse}, "constant_factor", "summed"),
    ("clip_grad_norm", {"optim.clip_grad_norm_": _clip_each}, "wrong_forward", "its own norm"),
    ("xavier", {"nn.init.xavier_uniform_": _xavier_fan_in}, "wrong_init_scale", "fan_in alone"),
    ("kaiming", {"nn.init.kaiming_uniform_": _kaiming_no_gain}, "wrong_init_scale", "gain"),
    ("conv2d", {"nn.Conv2d": FlippedConv}, "wrong_forward", "flipped"),
    ("maxpool2d", {"nn.MaxPool2d": AverageGradientPool}, "wrong_gradient", "whole window"),
    ("module", {"nn.Module": ShallowModule}, "module_structure", "missed blocks.0.lin.bias"),
    ("module", {"nn.Module": ShallowModule}, "train_eval_mode", "after eval()"),
    ("accuracy", {"train.accuracy": _accuracy_count}, "constant_factor", "fraction"),
    ("early_stopping", {"optim.EarlyStopping": TiesImproveStopping}, "wrong_forward",
     "strictly better"),
    ("central_difference", {"gradcheck.central_difference": _forward_difference},
     "forward_difference", "O(eps)"),
    ("central_difference", {"gradcheck.central_difference": _not_halved},
     "constant_factor", "2 * eps"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "patches", "bug_class", "words"),
    PLANTED,
    ids=[f"{p[0]}-{p[2]}" for p in PLANTED],
)
def test_planted_bug_fails_the_right_probe(
    name: str, patches: dict[str, Any], bug_class: str, words: str
) -> None:
    buggy = _patched(**patches)
    for seed in range(3):
        verdicts = _judge_all(buggy, name, seed)
        failed = [(label, v) for label, v in verdicts if not v.ok]
        assert failed, f"{name} seed {seed}: the planted bug passed every case"
        named = [v for _, v in failed if v.bug_class == bug_class and words in v.message]
        assert named, f"{name} seed {seed}: expected {bug_class} ({words!r}), got {failed}"


def test_planted_bugs_leave_other_probes_alone() -> None:
    """A bug in one component fails only the probes that use it."""
    buggy = _patched(**{"nn.Dropout": NoScaleDropout, "optim.Adam": NoCorrectionAdam})
    for name in ("linear", "batchnorm1d", "sgd", "cross_entropy"):
        assert all(v.ok for _, v in _judge_all(buggy, name, 0)), name


def test_a_result_that_is_not_a_tensor_is_a_clear_type_error() -> None:
    probe = PROBES["linear"]
    params, arrays = probe.make_case(np.random.default_rng(0), 0)
    with pytest.raises(TypeError, match="Linear returned ndarray, expected a tapegrad Tensor"):
        RUNS["linear"](_patched(**{"nn.Linear": NumpyLinear}), params, arrays)


class VelocitySGD(tg.optim.SGD):
    """v = momentum * v - lr * g; p += v: PyTorch's SGD in another form."""

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data + self.weight_decay * p.data
            v = self.buffers[i] if self.buffers[i] is not None else np.zeros_like(g)
            self.buffers[i] = self.momentum * v - self.lr * g
            p.data = p.data + self.buffers[i]


class PaperAdam(tg.optim.Adam):
    """Kingma and Ba's efficient form (the bias corrections folded into the step size) with
    one step counter for all parameters."""

    t = 0

    def step(self) -> None:
        b1, b2 = self.betas
        self.t += 1
        lr = self.lr * math.sqrt(1 - b2**self.t) / (1 - b1**self.t)
        for i, p in enumerate(self.params):
            g = p.grad.data + self.weight_decay * p.data
            m = self.m[i] if self.m[i] is not None else np.zeros_like(g)
            v = self.v[i] if self.v[i] is not None else np.zeros_like(g)
            self.m[i], self.v[i] = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
            p.data = p.data - lr * self.m[i] / (np.sqrt(self.v[i]) + self.eps)


class KeepMaskDropout(tg.nn.Dropout):
    """Keeps where uniform < 1 - p, one multiplication by mask / (1 - p)."""

    def forward(self, x: Any) -> Any:
        if not self.training:
            return x
        keep = np.random.default_rng().random(x.shape) < 1 - self.p
        return x * tg.Tensor(keep / (1 - self.p))


class PyTorchOrderModule(tg.nn.Module):
    """parameters() in PyTorch's order: each module's own parameters, then its children's."""

    def parameters(self) -> Iterator[Any]:
        seen: set[int] = set()

        def visit(module: Any) -> Iterator[Any]:
            members = list(module._members())
            for kind_wanted in ("parameter", "module"):
                for _, value, kind in members:
                    if kind == kind_wanted and id(value) not in seen:
                        seen.add(id(value))
                        yield from (visit(value) if kind == "module" else [value])

        yield from visit(self)


EQUIVALENT = [  # correct implementations written differently: they must pass
    ("module", {"nn.Module": PyTorchOrderModule}),
    ("sgd", {"optim.SGD": VelocitySGD}),
    ("adam", {"optim.Adam": PaperAdam}),
    ("dropout", {"nn.Dropout": KeepMaskDropout}),
]


@pytest.mark.parametrize(("name", "patches"), EQUIVALENT, ids=[e[0] for e in EQUIVALENT])
def test_equivalent_implementations_pass(name: str, patches: dict[str, Any]) -> None:
    for seed in range(5):
        for label, verdict in _judge_all(_patched(**patches), name, seed):
            assert verdict.ok, f"{name} seed {seed} ({label}): {verdict}"


# ---- the parent-side check ----------------------------------------------------------------------


def _in_process(t: ModuleType | SimpleNamespace = tg) -> Any:
    """A request function that answers with the handler, in this process."""

    def request(header: dict[str, Any], arrays: list[np.ndarray]) -> Any:
        assert header["type"] == "module"
        return module_handler(t, header, arrays)  # type: ignore[arg-type]

    return request


def test_run_module_check_passes_the_reference() -> None:
    outcomes = run_module_check(_in_process(), "batchnorm1d", np.random.default_rng(0), cases=2)
    assert len(outcomes) == 2 * len(PROBES["batchnorm1d"].variants)
    assert all(o.passed and o.message == "" for o in outcomes)
    assert outcomes[0].label == PROBES["batchnorm1d"].variants[0]


def test_run_module_check_names_module_shapes_and_bug() -> None:
    request = _in_process(_patched(**{"nn.BatchNorm1d": BatchStatsInEval}))
    outcomes = run_module_check(request, "batchnorm1d", np.random.default_rng(0))
    failed = [o for o in outcomes if not o.passed]
    assert [o.label for o in failed] == [PROBES["batchnorm1d"].variants[1]]
    message = failed[0].message
    assert message.startswith("BatchNorm1d (BatchNorm1d(4), 3 training batches of (6, 4)")
    assert "expected" in message and "got" in message and failed[0].bug_class == "train_eval_mode"
    assert len(message) < 600 and "[[" not in message  # a summary, not a dump


def test_not_implemented_skips_the_remaining_cases() -> None:
    calls = []

    def request(header: dict[str, Any], arrays: list[np.ndarray]) -> Any:
        calls.append(header)
        raise RequestFailed("NotImplementedError: hw2: Linear.reset_parameters", "not_implemented")

    outcomes = run_module_check(request, "linear", np.random.default_rng(0), cases=2)
    assert len(calls) == 1 and len(outcomes) == 2 * len(PROBES["linear"].variants)
    assert all(not o.passed and o.bug_class == "not_implemented" for o in outcomes)
    assert outcomes[1].message.startswith("not run: NotImplementedError")


def test_a_crash_fails_that_case_only() -> None:
    def request(header: dict[str, Any], arrays: list[np.ndarray]) -> Any:
        if header["params"]["variant"] == 1:
            raise RequestFailed("ValueError: shapes do not match", "crash")
        return module_handler(tg, header, arrays)  # type: ignore[arg-type]

    outcomes = run_module_check(request, "linear", np.random.default_rng(0))
    assert [o.passed for o in outcomes] == [True, False, True, True]
    assert outcomes[1].bug_class == "crash" and "Linear" in outcomes[1].message


@pytest.mark.parametrize(
    "reply",
    [({"none": [9]}, []), ({"none": "x"}, []), ({}, [np.zeros(1)]), ({"none": [True]}, [])],
)
def test_an_incomplete_reply_is_a_crash(reply: Any) -> None:
    outcomes = run_module_check(lambda h, a: reply, "mse", np.random.default_rng(0))
    assert all(not o.passed and o.bug_class == "crash" for o in outcomes)


def test_odd_arrays_from_the_worker_are_judged_not_raised() -> None:
    def request(header: dict[str, Any], arrays: list[np.ndarray]) -> Any:
        count = len(header["params"]["outputs"])
        return {}, [np.zeros((2, 0, 3), dtype=np.uint8)] * count

    for name in PROBES:
        outcomes = run_module_check(request, name, np.random.default_rng(0))
        assert outcomes and all(not o.passed and o.bug_class for o in outcomes), name


def test_unknown_probe() -> None:
    with pytest.raises(KeyError, match="no module probe 'lstm'"):
        run_module_check(_in_process(), "lstm", np.random.default_rng(0))


# ---- end to end, through a real worker ----------------------------------------------------------


@pytest.mark.parametrize("name", ["module", "linear", "batchnorm1d", "dropout", "adam", "conv2d"])
def test_end_to_end_reference_passes(reference_session: WorkerSession, name: str) -> None:
    outcomes = run_module_check(reference_session.request, name, np.random.default_rng(7))
    assert outcomes and all(o.passed for o in outcomes), [o for o in outcomes if not o.passed]


def test_end_to_end_starter_is_not_implemented() -> None:
    with worker_session(REPO / "starter", 120.0) as session:
        if not session.start()["ok"]:
            pytest.skip(f"the starter does not import: {session.hello['error']}")
        outcomes = run_module_check(session.request, "sgd", np.random.default_rng(0))
    assert outcomes[0].bug_class == "not_implemented"
    assert "not implemented: hw2: SGD.step" in outcomes[0].message  # the grader's own wording
    assert all(o.message.startswith("not run: ") for o in outcomes[1:])

"""Compare: judge what a worker returned against the trusted reference, and name the likely
bug when the mismatch has a recognisable shape.

Everything here runs in the trusted parent on plain NumPy arrays that the protocol already
validated. Feedback summarises (shapes, worst entry, the bug class); it never dumps the hidden
case's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .numeric import allclose

__all__ = ["BUG_CLASSES", "GATES", "Verdict", "compare_values", "classify_gradient", "hint"]

# bug class -> what to tell the student (the likely cause and what to look at)
BUG_CLASSES: dict[str, str] = {
    "not_implemented": "not implemented yet (the stub raises NotImplementedError)",
    "wrong_forward": "the forward value is wrong",
    "wrong_dtype": "the result has the wrong dtype (float32 in should give float32 out)",
    "wrong_shape": "the result has the wrong shape",
    "missing_broadcast_reduction": (
        "the gradient has the broadcast shape instead of the input's: sum it back over the "
        "broadcast axes (sum_to)"
    ),
    "transposed_gradient": (
        "the gradient is transposed: for y = a @ b, grad_a = g @ b.T and grad_b = a.T @ g"
    ),
    "no_accumulation": (
        "the gradient is off by the contribution of a reused node: when a tensor is used more "
        "than once, add up (+=) the gradients from every use instead of overwriting"
    ),
    "ignored_upstream": (
        "the upstream gradient is ignored: multiply the local derivative by the incoming "
        "cotangent (chain rule)"
    ),
    "sign_flipped": "the gradient has the wrong sign",
    "factor_of_two": (
        "off by a factor of 2 (or 1/2): a missing 1/2 (d sqrt(x) = 1 / (2 sqrt(x))) or a "
        "missing 2 (d x**2 = 2 x), or a term counted twice"
    ),
    "constant_factor": "the gradient is off by a constant factor",
    "swapped_operands": (
        "the operands are swapped: the result is right for the other operand (b - a for "
        "a - b, the gradient meant for b sent to a); reflected operators (3.0 - x calls "
        "x.__rsub__(3.0)) take the Python scalar as the left operand"
    ),
    "missing_term": (
        "a term is missing: with several inputs, the tangent (and the gradient of a reused "
        "value) is the sum of every input's contribution (product rule: d(ab) = da b + a db)"
    ),
    "wrong_local_derivative": (
        "the chain rule is applied, but the local derivative f'(x) of this elementwise op is "
        "wrong: compare yours and the right one at the point shown, and write f' in terms of "
        "the input x or the output y as your formula needs"
    ),
    "detached_backward": (
        "the gradient is right but cannot be differentiated again: the backward rule computes "
        "with raw arrays (.data, NumPy, detach()), so backward(create_graph=True) sees a "
        "constant. Build the gradient from Tensor ops on the saved Tensors"
    ),
    "numerical_gradient": (
        "the gradient is computed by finite differences (forward evaluated once or twice per "
        "input element), not by a backward rule: the check's points are withheld"
    ),
    "forward_difference": (
        "a forward difference (f(x + eps v) - f(x)) / eps, whose error is O(eps): use the "
        "central difference (f(x + eps v) - f(x - eps v)) / (2 eps), whose error is O(eps**2)"
    ),
    "nan_inf": "NaN or inf in the result",
    "unstable_softmax": (
        "NaN or inf from an unstable softmax/logsumexp: subtract the maximum before exp"
    ),
    "no_gradient": "no gradient reached this input (.grad is None)",
    "wrong_gradient": "the gradient is wrong",
    "not_deterministic": "a second backward pass on a fresh graph gives a different gradient",
    "mutated_input": "the op changed its input arrays in place",
    "crash": "the code raised an exception",
    "timeout": "no answer in time (an infinite loop, or far too slow)",
    # modules, optimizers and initializers (modprobes/)
    "train_eval_mode": (
        "training and evaluation mode are mixed up: Dropout must be the identity and BatchNorm "
        "must use its running statistics after eval(), and train()/eval() must reach every "
        "sub-module"
    ),
    "dropout_scaling": (
        "inverted dropout scales the kept entries by 1/(1-p), so that the expected value of "
        "every entry is unchanged"
    ),
    "wrong_variance": (
        "the wrong variance: normalise with the biased variance (divide by N); BatchNorm's "
        "running_var is updated with the unbiased one (divide by N-1)"
    ),
    "wrong_momentum": "the momentum (or Adam's betas) is applied the wrong way",
    "wrong_weight_decay": (
        "weight decay is missing or applied the wrong way: SGD and Adam add weight_decay * p "
        "to the gradient (L2), before the momentum / moment updates"
    ),
    "no_bias_correction": (
        "Adam without bias correction: divide m by (1 - beta1**t) and v by (1 - beta2**t)"
    ),
    "wrong_init_scale": (
        "the initial weights have the wrong scale: check the fans (fan_in, fan_out, times "
        "the receptive field for conv weights), the gain and the bound of the uniform"
    ),
    "module_structure": (
        "parameters(), train()/eval() or state_dict() do not reach every sub-module, "
        "parameter and buffer exactly once (sub-modules, lists of modules, shared parameters)"
    ),
    "wrong_trace": "the trace is not the run's Wengert list: one input node per argument, "
    "first; each op of the run once (a value used twice is one node)",
    "wrong_order": "a node comes before a value it reads: list values after their inputs "
    "(the post-order of a depth-first search, as topological_order)",
    "not_compiled": "tg.compile ran the function eagerly: a pass raised or tracing failed "
    "(call the compiled function yourself to see its warning)",
    "dead_values_kept": "dead-value elimination keeps operations whose results nothing "
    "reads: walk the instructions backwards from the outputs",
}

# bug classes that withhold the whole check's points, not only their case's share: the other
# cases of such a check pass without the work the check grades
GATES = frozenset({"numerical_gradient"})

ATOL = 1e-6
RTOL = 1e-5

# (bug class, the answer that bug gives), computed only once a result is known to be wrong
Alternatives = Callable[[], list[tuple[str, np.ndarray]]]


@dataclass
class Verdict:
    ok: bool
    message: str = ""
    bug_class: str | None = None


def _worst(got: np.ndarray, expected: np.ndarray) -> str:
    """Where the largest error is, and the two values there (a summary, not a dump)."""
    err = np.abs(got - expected)
    err = np.where(np.isnan(err), np.inf, err)
    idx = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    where = f" at index {list(map(int, idx))}" if err.ndim else ""
    return f"largest error{where}: expected {expected[idx]:.6g}, got {got[idx]:.6g}"


def compare_values(
    what: str,
    got: np.ndarray,
    expected: np.ndarray,
    *,
    atol: float = ATOL,
    rtol: float = RTOL,
    softmax_family: bool = False,
    alternatives: Alternatives | None = None,
) -> Verdict:
    """Forward values: shape, finiteness, closeness; a wrong value equal to one of the
    ``alternatives`` (known bugs' answers) is named by that bug's class."""
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        return Verdict(
            False, f"{what}: shape {got.shape}, expected {expected.shape}", "wrong_shape"
        )
    got64 = got.astype(np.float64)
    if not np.all(np.isfinite(got64)) and np.all(np.isfinite(expected)):
        cls = "unstable_softmax" if softmax_family else "nan_inf"
        return Verdict(False, f"{what}: contains NaN or inf where the exact value is finite", cls)
    if not allclose(got64, expected, atol, rtol):
        for bug_class, answer in alternatives() if alternatives else ():
            if answer.shape == got64.shape and allclose(got64, answer, atol, rtol):
                return Verdict(False, f"{what}: {_worst(got64, expected)}", bug_class)
        return Verdict(False, f"{what}: {_worst(got64, expected)}", "wrong_forward")
    return Verdict(True)


def _scale(got: np.ndarray, expected: np.ndarray) -> float | None:
    """k if got is (close to) k * expected for a constant k, else None."""
    denom = float(np.sum(expected * expected))
    if denom == 0 or expected.size < 2:
        return None
    k = float(np.sum(got * expected)) / denom
    if allclose(got, k * expected, 1e-6, 1e-4):
        return k
    return None


def classify_gradient(
    what: str,
    got: np.ndarray | None,
    expected: np.ndarray,
    *,
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    expected_with_ones: np.ndarray | None = None,
    reused_node: bool = False,
    softmax_family: bool = False,
    alternatives: Alternatives | None = None,
    elementwise: tuple[np.ndarray, np.ndarray] | None = None,
    if_zero: str | None = None,
    atol: float = ATOL,
    rtol: float = RTOL,
) -> Verdict:
    """Judge a full gradient ``got`` against ``expected`` (same shape as the input); on a
    mismatch, try the known bug shapes in order, most specific first.

    ``expected_with_ones`` is the gradient for an all-ones cotangent: a student gradient equal
    to it ignored the (random) upstream cotangent. ``alternatives`` gives, only when needed,
    the answers known bugs give, each with its class (the other operand's gradient, the
    tangent without one input's term). ``elementwise`` is ``(x, u)`` when the op is elementwise,
    ``got = u * f'(x)``: a mismatch there is a wrong local derivative, shown at one point.
    ``if_zero`` names the class of an all-zero ``got`` where ``expected`` is not.
    """
    if got is None:
        return Verdict(
            False, f"{what}: no gradient reached this input (.grad is None)", "no_gradient"
        )
    if got.shape != input_shape:
        if (
            _broadcastable(input_shape, got.shape)
            and np.broadcast_shapes(input_shape, got.shape) == got.shape
            and int(np.prod(got.shape)) > int(np.prod(input_shape))
        ):
            return Verdict(
                False,
                f"{what}: gradient shape {got.shape}, but the input has shape {input_shape}",
                "missing_broadcast_reduction",
            )
        if len(got.shape) >= 2 and got.shape == input_shape[:-2] + input_shape[::-1][:2]:
            return Verdict(
                False,
                f"{what}: gradient shape {got.shape} is the input's {input_shape} transposed",
                "transposed_gradient",
            )
        return Verdict(
            False, f"{what}: gradient shape {got.shape}, expected {input_shape}", "wrong_shape"
        )
    got64 = got.astype(np.float64)
    if not np.all(np.isfinite(got64)):
        cls = "unstable_softmax" if softmax_family else "nan_inf"
        return Verdict(False, f"{what}: the gradient contains NaN or inf", cls)
    if allclose(got64, expected, atol, rtol):
        return Verdict(True)
    summary = f"{what}: {_worst(got64, expected)}"
    if got64.ndim >= 2 and got64.shape[-1] == got64.shape[-2]:
        if allclose(np.swapaxes(got64, -1, -2), expected, atol, rtol):
            return Verdict(False, summary, "transposed_gradient")
    if expected_with_ones is not None and not allclose(expected_with_ones, expected, atol, rtol):
        if allclose(got64, expected_with_ones, atol, rtol):
            return Verdict(False, summary, "ignored_upstream")
    if if_zero and not np.any(got64) and np.any(expected):
        return Verdict(False, f"{summary} (every entry is 0)", if_zero)
    for bug_class, answer in alternatives() if alternatives else ():
        if answer.shape == got64.shape and allclose(got64, answer, atol, rtol):
            return Verdict(False, summary, bug_class)
    k = _scale(got64, expected)
    if k is not None and abs(k + 1) < 1e-3:
        return Verdict(False, summary, "sign_flipped")
    if k is not None and min(abs(k - 2), abs(k - 0.5)) < 1e-3:
        return Verdict(False, f"{summary} (off by a factor of {k:.3g})", "factor_of_two")
    if k is not None and abs(k) > 1e-3:
        return Verdict(False, f"{summary} (off by a factor of {k:.3g})", "constant_factor")
    if reused_node:
        return Verdict(False, summary, "no_accumulation")
    if elementwise is not None:
        return _local_derivative(what, got64, expected, *elementwise)
    return Verdict(False, summary, "wrong_gradient")


def _local_derivative(
    what: str, got: np.ndarray, expected: np.ndarray, x: np.ndarray, u: np.ndarray
) -> Verdict:
    """An elementwise op's gradient (or tangent) is u * f'(x): show f'(x) and the student's at
    the worst entry whose u is not small (the ratio is meaningless where u is near 0)."""
    x, u = np.broadcast_to(x, got.shape), np.broadcast_to(u, got.shape)
    usable = np.abs(u) > 0.1
    if not usable.any():
        return Verdict(False, f"{what}: {_worst(got, expected)}", "wrong_local_derivative")
    err = np.where(usable, np.abs(got - expected), -1.0)
    err = np.where(np.isnan(err), np.inf, err)
    i = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    return Verdict(
        False,
        f"{what}: at x = {x[i]:.4g}, your f'(x) is {got[i] / u[i]:.6g}, the right one is "
        f"{expected[i] / u[i]:.6g}",
        "wrong_local_derivative",
    )


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def hint(bug_class: str | None) -> str:
    """The plain-words explanation of a bug class ('' when unknown)."""
    return BUG_CLASSES.get(bug_class or "", "")

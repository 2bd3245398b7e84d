"""Compare: judge what a worker returned against the trusted reference, and name the likely
bug when the mismatch has a recognisable shape.

Everything here runs in the trusted parent on plain NumPy arrays that the protocol already
validated. Feedback summarises (shapes, worst entry, the bug class); it never dumps the hidden
case's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .numeric import allclose

__all__ = ["BUG_CLASSES", "Verdict", "compare_values", "classify_gradient", "hint"]

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
    "constant_factor": "the gradient is off by a constant factor",
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
}

ATOL = 1e-6
RTOL = 1e-5


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
) -> Verdict:
    """Forward values: shape, finiteness, closeness."""
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
    atol: float = ATOL,
    rtol: float = RTOL,
) -> Verdict:
    """Judge a full gradient ``got`` against ``expected`` (same shape as the input); on a
    mismatch, try the known bug shapes in order, most specific first.

    ``expected_with_ones`` is the gradient for an all-ones cotangent: a student gradient equal
    to it ignored the (random) upstream cotangent.
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
    k = _scale(got64, expected)
    if k is not None and abs(k + 1) < 1e-3:
        return Verdict(False, summary, "sign_flipped")
    if k is not None and abs(k) > 1e-3:
        return Verdict(False, f"{summary} (off by a factor of {k:.3g})", "constant_factor")
    if reused_node:
        return Verdict(False, summary, "no_accumulation")
    return Verdict(False, summary, "wrong_gradient")


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
        return True
    except ValueError:
        return False


def hint(bug_class: str | None) -> str:
    """The plain-words explanation of a bug class ('' when unknown)."""
    return BUG_CLASSES.get(bug_class or "", "")

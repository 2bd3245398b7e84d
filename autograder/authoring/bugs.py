"""The catalogue of classic student bugs, each a textual patch of the reference package.

Every entry of :data:`CATALOGUE` is a :class:`Bug`: a few ``(file under tapegrad/, old, new)``
replacements of ``solution/tapegrad/`` text, each ``old`` occurring exactly once, with the hw1
check that must lose points, the bug class the grader should name, and checks that must stay
at full marks. It is used by the kit's tests (``tests/test_grader_bugs.py`` grades every entry
end to end), by ``make demo``'s sample buggy submission (:data:`DEMO_BUGS`, planted with
:func:`apply_patches`) and later by ``kit audit``.

This module imports only the standard library.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BY_ID", "CATALOGUE", "DEMO_BUGS", "Bug", "apply_patches"]

PACKAGE = "tapegrad"  # the patched files are under <submission>/tapegrad/


@dataclass(frozen=True)
class Bug:
    """One student bug: ``patches`` are (file under tapegrad/, old, new), each ``old``
    occurring exactly once in the reference file."""

    id: str
    description: str
    patches: tuple[tuple[str, str, str], ...]
    check: str  # the check that must lose points
    expected: str  # the bug class the grader should name (a key of BUG_CLASSES)
    ops: tuple[str, ...] = ()  # narrow a multi-op check to these op specs (speed)
    unaffected: tuple[str, ...] = ()  # other checks, graded too, that must stay at full marks


def _bug(
    id: str,
    description: str,
    file: str,
    old: str,
    new: str,
    check: str,
    expected: str,
    **kw: object,
) -> Bug:
    return Bug(id, description, ((file, old, new),), check, expected, **kw)  # type: ignore[arg-type]


CATALOGUE: tuple[Bug, ...] = (
    # ---- missing broadcast reduction ---------------------------------------------------------
    _bug(
        "add_missing_sum_to",
        "Add.backward returns gy for both inputs without sum_to",
        "ops.py",
        "return _grad_for(a, gy), _grad_for(b, gy)",
        "return gy, gy",
        "ops.add",
        "missing_broadcast_reduction",
        unaffected=("ops.exp",),
    ),
    _bug(
        "mul_missing_sum_to",
        "Mul.backward: ga = gy * b without sum_to",
        "ops.py",
        "ga = sum_to(gy * b, a.shape) if a.requires_grad_ else None",
        "ga = gy * b if a.requires_grad_ else None",
        "ops.mul",
        "missing_broadcast_reduction",
    ),
    _bug(
        "div_missing_sum_to",
        "Div.backward: gb = -gy * a / b**2 without sum_to",
        "ops.py",
        "gb = sum_to(-gy * a / (b * b), b.shape) if b.requires_grad_ else None",
        "gb = -gy * a / (b * b) if b.requires_grad_ else None",
        "ops.div",
        "missing_broadcast_reduction",
    ),
    _bug(
        "broadcast_to_backward_no_sum",
        "BroadcastTo.backward returns gy unreduced",
        "ops.py",
        "return (sum_to(gy, self.inputs[0].shape),)",
        "return (gy,)",
        "ops.broadcast_to",
        "missing_broadcast_reduction",
    ),
    # ---- matmul --------------------------------------------------------------------------------
    _bug(
        "matmul_grad_a_transposed",
        "MatMul.backward: ga = b @ gy.T (the transpose of gy @ b.T)",
        "ops.py",
        "ga = sum_to(gy @ swapaxes(b, -1, -2), a.shape) if a.requires_grad_ else None",
        "ga = b @ swapaxes(gy, -1, -2) if a.requires_grad_ else None",
        "ops.matmul",
        "transposed_gradient",
        unaffected=("ops.mul",),
    ),
    _bug(
        "matmul_grad_b_swapped",
        "MatMul.backward: gb = gy.T @ a instead of a.T @ gy",
        "ops.py",
        "gb = swapaxes(a, -1, -2) @ gy\n            gb = sum_to(gb, b.shape)",
        "gb = swapaxes(gy, -1, -2) @ a",
        "ops.matmul",
        "transposed_gradient",
    ),
    _bug(
        "matmul_batch_no_sum_to",
        "MatMul.backward: gb = a.T @ gy not summed over the broadcast batch axes",
        "ops.py",
        "            gb = sum_to(gb, b.shape)\n",
        "",
        "ops.matmul",
        "missing_broadcast_reduction",
    ),
    _bug(
        "matmul_grad_a_no_transpose",
        "MatMul.backward: ga = gy @ b (b not transposed): raises on non-square shapes",
        "ops.py",
        "sum_to(gy @ swapaxes(b, -1, -2), a.shape)",
        "sum_to(gy @ b, a.shape)",
        "ops.matmul",
        "crash",
    ),
    # ---- the tape --------------------------------------------------------------------------------
    _bug(
        "backprop_overwrites",
        "backprop overwrites a reused node's gradient instead of +=",
        "tensor.py",
        "grads[id(x)] = gx if previous is None else previous + gx",
        "grads[id(x)] = gx",
        "ops.reused_node",
        "no_accumulation",
        unaffected=("ops.exp",),
    ),
    Bug(
        "topological_order_preorder",
        "topological_order appends a node before its inputs (DFS pre-order, reversed): right on "
        "chains, wrong on fan-out",
        (
            (
                "tensor.py",
                "        if inputs_done:\n            order.append(node)\n            continue\n"
                "        if id(node) in visited:\n            continue\n"
                "        visited.add(id(node))\n",
                "        if inputs_done:\n            continue\n"
                "        if id(node) in visited:\n            continue\n"
                "        visited.add(id(node))\n        order.append(node)\n",
            ),
            (
                "tensor.py",
                "    return order\n    ### END SOLUTION",
                "    return order[::-1]\n    ### END SOLUTION",
            ),
        ),
        "ops.fanout",
        "no_accumulation",
        unaffected=("ops.exp",),
    ),
    # ---- ignored upstream gradient ---------------------------------------------------------
    _bug(
        "exp_ignores_upstream",
        "Exp.backward returns the output instead of gy * output",
        "ops.py",
        "return (gy * self.output,)",
        "return (self.output,)",
        "ops.exp",
        "ignored_upstream",
        unaffected=("ops.sin",),
    ),
    _bug(
        "sin_ignores_upstream",
        "Sin.backward returns cos(a) without gy",
        "ops.py",
        "return (gy * cos(self.inputs[0]),)",
        "return (cos(self.inputs[0]),)",
        "ops.sin",
        "ignored_upstream",
    ),
    _bug(
        "sigmoid_ignores_upstream",
        "Sigmoid.backward returns y * (1 - y) without gy",
        "ops.py",
        "return (gy * y * (1.0 - y),)",
        "return (y * (1.0 - y),)",
        "ops.sigmoid",
        "ignored_upstream",
    ),
    _bug(
        "logsumexp_ignores_upstream",
        "LogSumExp.backward returns softmax(a) without gy",
        "ops.py",
        "return (_expand_reduced(gy, a.shape, self.axis) * exp(a - y),)",
        "return (exp(a - y),)",
        "ops.logsumexp",
        "ignored_upstream",
    ),
    # ---- sign errors -------------------------------------------------------------------------
    _bug(
        "sub_b_sign",
        "Sub.backward gives b the gradient +gy",
        "ops.py",
        "return _grad_for(a, gy), _grad_for(b, -gy)",
        "return _grad_for(a, gy), _grad_for(b, gy)",
        "ops.sub",
        "sign_flipped",
        unaffected=("ops.add",),
    ),
    _bug(
        "cos_sign",
        "Cos.backward uses +sin(a)",
        "ops.py",
        "return (-gy * sin(self.inputs[0]),)",
        "return (gy * sin(self.inputs[0]),)",
        "ops.cos",
        "sign_flipped",
    ),
    _bug(
        "neg_sign",
        "Neg.backward passes gy through unchanged",
        "ops.py",
        "return (-gy,)",
        "return (gy,)",
        "ops.neg",
        "sign_flipped",
    ),
    _bug(
        "div_b_sign",
        "Div.backward: gb = +gy * a / b**2",
        "ops.py",
        "gb = sum_to(-gy * a / (b * b), b.shape)",
        "gb = sum_to(gy * a / (b * b), b.shape)",
        "ops.div",
        "sign_flipped",
    ),
    # ---- constant factors ----------------------------------------------------------------------
    _bug(
        "sqrt_missing_two",
        "Sqrt.backward: gy / sqrt(a), the 2 forgotten",
        "ops.py",
        "return (gy / (2.0 * self.output),)",
        "return (gy / self.output,)",
        "ops.sqrt",
        "constant_factor",
    ),
    _bug(
        "sigmoid_inner_factor",
        "Sigmoid.backward via tanh forgets the inner 1/2: 0.5 * (1 - t**2)",
        "ops.py",
        "return (gy * y * (1.0 - y),)",
        "t = 2.0 * y - 1.0\n        return (gy * 0.5 * (1.0 - t * t),)",
        "ops.sigmoid",
        "constant_factor",
    ),
    _bug(
        "pow_forgets_exponent",
        "Pow.backward: ga = gy * a**(b-1), the factor b forgotten",
        "ops.py",
        "ga = sum_to(gy * b * a ** (b - 1), a.shape)",
        "ga = sum_to(gy * a ** (b - 1), a.shape)",
        "ops.pow_scalar",
        "constant_factor",
    ),
    _bug(
        "rpow_missing_log",
        "Pow.backward: gb = gy * a**b without the log(a) factor (2.0**a)",
        "ops.py",
        "gb = sum_to(gy * self.output * log(where(a.data > 0, a, 1.0)), b.shape)",
        "gb = sum_to(gy * self.output, b.shape)",
        "ops.rpow",
        "constant_factor",
    ),
    _bug(
        "mean_wrong_count",
        "mean divides by the total element count whatever the axis",
        "ops.py",
        "count = x.size if axes is None else int(np.prod([x.shape[i] for i in axes]))",
        "count = x.size",
        "ops.mean",
        "wrong_forward",
        unaffected=("ops.sum",),
    ),
    # ---- unstable softmax family ----------------------------------------------------------------
    _bug(
        "softmax_no_max_shift",
        "Softmax.forward exponentiates the raw logits",
        "ops.py",
        "e = self.xp.exp(a - a.max(axis=self.axis, keepdims=True))",
        "e = self.xp.exp(a)",
        "ops.stable_softmax_extreme",
        "unstable_softmax",
        unaffected=("ops.softmax",),
    ),
    _bug(
        "logsumexp_no_max_shift",
        "LogSumExp.forward with the shift m set to 0",
        "ops.py",
        "m = xp.where(xp.isfinite(m), m, 0)",
        "m = 0.0 * m",
        "ops.stable_softmax_extreme",
        "unstable_softmax",
        unaffected=("ops.logsumexp",),
    ),
    _bug(
        "log_softmax_no_max_shift",
        "LogSoftmax.forward without subtracting the max",
        "ops.py",
        "shifted = a - a.max(axis=self.axis, keepdims=True)",
        "shifted = a",
        "ops.stable_softmax_extreme",
        "unstable_softmax",
    ),
    # ---- wrong local derivatives ---------------------------------------------------------------
    _bug(
        "log_backward_times_a",
        "Log.backward: gy * a instead of gy / a",
        "ops.py",
        "return (gy / self.inputs[0],)",
        "return (gy * self.inputs[0],)",
        "ops.log",
        "wrong_gradient",
    ),
    _bug(
        "tanh_backward_one_minus_y",
        "Tanh.backward: gy * (1 - y) instead of gy * (1 - y**2)",
        "ops.py",
        "return (gy * (1.0 - y * y),)",
        "return (gy * (1.0 - y),)",
        "ops.tanh",
        "wrong_gradient",
    ),
    _bug(
        "sigmoid_backward_gy_y",
        "Sigmoid.backward: gy * y",
        "ops.py",
        "return (gy * y * (1.0 - y),)",
        "return (gy * y,)",
        "ops.sigmoid",
        "wrong_gradient",
    ),
    _bug(
        "relu_inverted_mask",
        "ReLU mask a < 0 instead of a > 0",
        "ops.py",
        "Tensor._make(a.data > 0, a.device)",
        "Tensor._make(a.data < 0, a.device)",
        "ops.relu",
        "wrong_gradient",
    ),
    _bug(
        "abs_backward_no_sign",
        "Abs.backward passes gy without sign(a)",
        "ops.py",
        "return (gy * self._sign(),)",
        "return (gy,)",
        "ops.abs",
        "wrong_gradient",
    ),
    _bug(
        "softmax_backward_missing_term",
        "Softmax.backward: y * gy, the -sum(gy * y) term forgotten",
        "ops.py",
        "return (y * (gy - sum(gy * y, self.axis, keepdims=True)),)",
        "return (y * gy,)",
        "ops.softmax",
        "wrong_gradient",
    ),
    _bug(
        "max_grad_to_all",
        "Max.backward sends the gradient to every element, not the argmax",
        "ops.py",
        "return (_expand_reduced(gy, a.shape, self.axis) * weights,)",
        "return (_expand_reduced(gy, a.shape, self.axis),)",
        "ops.max",
        "wrong_gradient",
    ),
    _bug(
        "mul_no_grad_b",
        "Mul.backward returns None for b",
        "ops.py",
        "gb = sum_to(gy * a, b.shape) if b.requires_grad_ else None",
        "gb = None",
        "ops.mul",
        "no_gradient",
    ),
    _bug(
        "rsub_swapped",
        "3.0 - a computed as a - 3.0 (__rsub__ operands swapped)",
        "ops.py",
        "return sub(b, a)",
        "return sub(a, b)",
        "ops.scalar_ops",
        "wrong_forward",
    ),
    # ---- shapes and indexing -------------------------------------------------------------------
    _bug(
        "sum_backward_no_expand",
        "Sum.backward returns gy as is (reduced shape)",
        "ops.py",
        "return (_expand_reduced(gy, self.inputs[0].shape, self.axis),)",
        "return (gy,)",
        "ops.sum",
        "wrong_shape",
    ),
    _bug(
        "sum_backward_no_reshape",
        "Sum.backward broadcasts gy without the keepdims reshape "
        "(raises for axis tuples and axis=1)",
        "ops.py",
        "return (_expand_reduced(gy, self.inputs[0].shape, self.axis),)",
        "return (broadcast_to(gy, self.inputs[0].shape),)",
        "ops.sum",
        "crash",
    ),
    _bug(
        "reshape_backward_noop",
        "Reshape.backward returns gy in the output's shape",
        "ops.py",
        "return (reshape(gy, self.inputs[0].shape),)",
        "return (gy,)",
        "ops.reshape",
        "wrong_shape",
    ),
    _bug(
        "transpose_same_permutation",
        "Transpose.backward applies the same permutation again "
        "(not the inverse; wrong for (1, 2, 0))",
        "ops.py",
        "return (transpose(gy, *np.argsort(self.axes).tolist()),)",
        "return (transpose(gy, *self.axes),)",
        "ops.transpose",
        "wrong_shape",
        unaffected=("ops.T",),
    ),
    _bug(
        "getitem_overwrite",
        "ScatterAdd with out[idx] = g: repeated indices keep one gradient",
        "ops.py",
        "get_backend(self.inputs[0].device).scatter_add(out, self.index, g)",
        "out[self.index] = g",
        "ops.getitem",
        "no_accumulation",
    ),
    _bug(
        "concatenate_off_by_one",
        "Concatenate.backward: the next slice starts one too early",
        "ops.py",
        "grads.append(gy[lead + (slice(start, stop),)])\n            start = stop\n",
        "grads.append(gy[lead + (slice(start, stop),)])\n            start = stop - 1\n",
        "ops.concatenate",
        "wrong_gradient",
    ),
    Bug(
        "where_swapped",
        "Where.backward sends gy to b where cond holds and to a elsewhere",
        (
            (
                "ops.py",
                "ga = sum_to(where(self.cond, gy, 0.0), a.shape)",
                "ga = sum_to(where(self.cond, 0.0, gy), a.shape)",
            ),
            (
                "ops.py",
                "gb = sum_to(where(self.cond, 0.0, gy), b.shape)",
                "gb = sum_to(where(self.cond, gy, 0.0), b.shape)",
            ),
        ),
        "ops.where",
        "wrong_gradient",
    ),
    # ---- forward mode ----------------------------------------------------------------------------
    _bug(
        "mul_jvp_missing_term",
        "Mul.jvp: ta * b, the a * tb term forgotten",
        "ops.py",
        "return ta * b + a * tb",
        "return ta * b",
        "autodiff.jvp",
        "wrong_gradient",
        ops=("mul", "exp"),
        unaffected=("ops.mul",),
    ),
    _bug(
        "sin_jvp_sign",
        "Sin.jvp: -cos(a) * ta",
        "ops.py",
        "return cos(self.inputs[0]) * ta",
        "return -cos(self.inputs[0]) * ta",
        "autodiff.jvp",
        "sign_flipped",
        ops=("sin",),
    ),
    # ---- second order: backward rules that are not differentiable -----------------------------
    _bug(
        "sin_backward_raw_array",
        "Sin.backward builds cos(a) from raw arrays (Tensor._make(np.cos(...))): "
        "first order right, grad of grad wrong",
        "ops.py",
        "return (gy * cos(self.inputs[0]),)",
        "return (gy * Tensor._make(np.cos(self.inputs[0].data), gy.device),)",
        "autodiff.second_order",
        "wrong_gradient",
        ops=("sin", "exp"),
        unaffected=("ops.sin",),
    ),
    _bug(
        "exp_backward_detached",
        "Exp.backward uses the detached output",
        "ops.py",
        "return (gy * self.output,)",
        "return (gy * self.output.detach(),)",
        "autodiff.second_order",
        "wrong_gradient",
        ops=("exp",),
        unaffected=("ops.exp",),
    ),
    _bug(
        "tanh_backward_raw_array",
        "Tanh.backward computes 1 - y*y on raw arrays",
        "ops.py",
        "return (gy * (1.0 - y * y),)",
        "return (gy * Tensor._make(1.0 - y.data * y.data, gy.device),)",
        "autodiff.second_order",
        "wrong_gradient",
        ops=("tanh",),
        unaffected=("ops.tanh",),
    ),
    # ---- purity, determinism, dtype ------------------------------------------------------------
    _bug(
        "exp_mutates_input",
        "Exp.forward writes exp(a) into its input (np.exp(a, out=a))",
        "ops.py",
        "return self.xp.exp(a)\n",
        "return self.xp.exp(a, out=a)\n",
        "ops.exp",
        "mutated_input",
    ),
    _bug(
        "sin_state_between_calls",
        "Sin.backward scales by a module-level call counter (every second backward is doubled)",
        "ops.py",
        "return (gy * cos(self.inputs[0]),)",
        "Sin.calls = getattr(Sin, 'calls', 0) + 1\n"
        "        return (gy * cos(self.inputs[0]) * (2.0 - Sin.calls % 2),)",
        "ops.sin",
        "not_deterministic",
    ),
    _bug(
        "tanh_forward_float64",
        "Tanh.forward casts to float64 (float32 in gives float64 out)",
        "ops.py",
        "return self.xp.tanh(a)\n",
        "return self.xp.tanh(a.astype(np.float64))\n",
        "ops.tanh",
        "wrong_dtype",
    ),
)

BY_ID: dict[str, Bug] = {b.id: b for b in CATALOGUE}

# The bugs planted in ``make demo``'s sample buggy submission of hw1: Mul.backward without
# sum_to, Sin.backward ignoring the upstream gradient, backprop overwriting instead of
# accumulating a reused node's gradient.
DEMO_BUGS: tuple[str, ...] = ("mul_missing_sum_to", "sin_ignores_upstream", "backprop_overwrites")


def apply_patches(reference: Path, target: Path, patches: Iterable[tuple[str, str, str]]) -> None:
    """Copy the submission directory ``reference`` to ``target`` (which must not exist), then
    apply each ``(file under tapegrad/, old, new)`` patch in turn, replacing ``old``, which
    must occur exactly once in the file, by ``new``.

    Raises ValueError naming the file when ``old`` occurs zero or several times (the reference
    changed, or the patch is ambiguous).
    """
    shutil.copytree(reference, target)
    for file, old, new in patches:
        path = Path(target) / PACKAGE / file
        text = path.read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise ValueError(
                f"cannot patch {PACKAGE}/{file}: {old!r} occurs {count} times in {path} "
                "(must be exactly once)"
            )
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

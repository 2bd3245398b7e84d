"""Op checks: the randomized gradient checks derived from the op-spec table.

For each shape case of the op (and each repetition), the parent draws inputs in the op's
domain and a random Gaussian cotangent, asks the worker to run the student's forward and
backward (twice, on fresh graphs) and a float32 forward, then judges in float64:

* the forward value against the NumPy reference; float32 in gives float32 out;
* each input's gradient against central differences of the reference (entry by entry for
  small inputs, along random directions for large ones), with the likely bug named;
* the second backward agrees with the first; the inputs are unchanged;
* optionally forward mode (jvp) and second derivatives (grad of grad, and the jvp of grad:
  forward over reverse);
* backward is a rule, not finite differences: on large inputs, backward must not run the
  op's forward once per input element (:func:`judge_backward_cost`). This case is a gate:
  shown only when it fails, and then the check scores 0 (:data:`~.diagnose.GATES`), since
  its other cases pass on a numerical gradient.

The worker sees inputs and cotangents only; expected values never leave the parent.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

from autograder.worker.opspecs import Case, OpSpec, make_inputs, spec

from .cases import CaseRun, Request, RequestFailed, run_cases, take
from .diagnose import GATES, Verdict, classify_gradient, compare_values
from .numeric import allclose, directional_derivative, gradient_of_projection
from .results import CaseOutcome

__all__ = ["COST_ELEMENTS", "COST_LABEL", "cost_case", "judge_backward_cost", "run_op_check"]

FULL_GRADIENT_LIMIT = 400  # input elements: up to this, compare the whole gradient
DIRECTIONS = 3
SECOND_ORDER_EPS = 1e-4
COST_ELEMENTS = 256  # the backward-cost case scales its inputs to at least this many elements
COST_LABEL = "backward is a rule (not finite differences)"


def run_op_check(
    request: Request,
    spec_name: str,
    rng: np.random.Generator,
    *,
    repeats: int = 1,
    forward: bool = True,
    vjp: bool = True,
    jvp: bool = False,
    second_order: bool = False,
) -> list[CaseOutcome]:
    """Every case of one op check. ``request(header, arrays)`` talks to the worker and raises
    :class:`~autograder.grading.cases.RequestFailed` when the student's code fails."""
    s = spec(spec_name)
    cases: list[tuple[str, CaseRun]] = []
    for index, case in enumerate(s.cases):
        for _ in range(repeats):
            if forward or vjp:
                cases.append(_case(case.label, partial(_judge_op, vjp=vjp), s, index, rng))
            if jvp and s.jvp:
                cases.append(_case(f"jvp: {case.label}", _judge_jvp, s, index, rng))
            if second_order and s.smooth and _size(case) <= FULL_GRADIENT_LIMIT // 4:
                cases.append(_case(f"hvp: {case.label}", _judge_hvp, s, index, rng))
                if s.jvp:
                    cases.append(_case(f"fvr: {case.label}", _judge_fvr, s, index, rng))
    cost = cost_case(s) if vjp else None
    if cost is not None:
        index, shapes = cost
        judge = partial(judge_backward_cost, s=s, index=index, shapes=shapes, rng=rng)
        cases.append((COST_LABEL, judge))
    outcomes = run_cases(request, s.name, cases)
    # the cost case is a gate, not a share of the points: it shows only when it withholds them
    return [o for o in outcomes if o.label != COST_LABEL or o.bug_class in GATES]


Judge = Callable[[Request, OpSpec, Case, int, np.random.Generator], Verdict]


def _case(
    label: str, judge: Judge, s: OpSpec, index: int, rng: np.random.Generator
) -> tuple[str, CaseRun]:
    case = s.cases[index]

    def run(request: Request) -> tuple[Verdict, str]:
        return judge(request, s, case, index, rng), f"{label}, input shapes {_shapes(case)}"

    return label, run


def _size(case: Case) -> int:
    return max(int(np.prod(shape)) for shape in case.shapes)


def _shapes(case: Case) -> str:
    return ", ".join(str(s) for s in case.shapes)


def _reference(s: OpSpec, case: Case) -> Callable[..., np.ndarray]:
    return lambda *xs: np.asarray(s.reference(*xs, **case.kwargs), dtype=np.float64)


def _judge_op(
    request: Request, s: OpSpec, case: Case, index: int, rng: np.random.Generator, vjp: bool = True
) -> Verdict:
    xs = make_inputs(s, case, rng)
    f = _reference(s, case)
    expected = f(*xs)
    u = rng.standard_normal(expected.shape)
    header, arrays = request(
        {"type": "op", "spec": s.name, "case": index, "repeat": True, "float32": True},
        [x.copy() for x in xs] + [u],
    )
    arrays = list(arrays)
    family = s.topic == "stable softmax"
    (out,) = take(arrays, 1)
    if out.dtype.kind != "f":
        return Verdict(
            False,
            f"forward: the result has dtype {out.dtype}, expected floating point",
            "wrong_dtype",
        )
    verdict = compare_values(
        "forward",
        out,
        expected,
        softmax_family=family,
        alternatives=partial(_wrong_forwards, s, case, xs),
    )
    if not verdict.ok:
        return verdict
    has = list(header.get("grads", []))
    if len(has) != len(xs):
        raise RequestFailed("the worker's reply did not list the gradients", "crash")
    grads = [(take(arrays, 1)[0] if h else None) for h in has]
    after = take(arrays, len(xs))
    sent_after = take(arrays, len(xs))
    has2 = list(header.get("grads2", []))
    grads2 = [(take(arrays, 1)[0] if h else None) for h in has2]
    (out32,) = take(arrays, 1)

    for i, g in enumerate(grads if vjp else ()):
        verdict = _judge_gradient(f, xs, i, g, u, expected.shape, rng, s, _repeats(case))
        if not verdict.ok:
            return verdict
    for i, (g1, g2) in enumerate(zip(grads, grads2) if vjp else ()):
        if g1 is not None and (
            g2 is None or g2.shape != g1.shape or not allclose(g1, g2, atol=1e-12, rtol=1e-9)
        ):
            return Verdict(
                False,
                f"input {i}: a second forward+backward on fresh tensors gave "
                "a different gradient (state kept between calls?)",
                "not_deterministic",
            )
    for i, (x, a, b) in enumerate(zip(xs, after, sent_after)):
        if (
            a.shape != x.shape
            or b.shape != x.shape
            or not (np.array_equal(a, x) and np.array_equal(b, x))
        ):
            return Verdict(
                False, f"input {i} was modified in place by forward or backward", "mutated_input"
            )
    if out32.dtype != np.float32:
        return Verdict(False, f"float32 inputs gave a {out32.dtype} result", "wrong_dtype")
    return compare_values(
        "forward in float32", out32, expected, atol=1e-3, rtol=1e-3, softmax_family=family
    )


def _judge_gradient(
    f: Callable[..., np.ndarray],
    xs: list[np.ndarray],
    i: int,
    g: np.ndarray | None,
    u: np.ndarray,
    out_shape: tuple[int, ...],
    rng: np.random.Generator,
    s: OpSpec,
    repeats: bool = False,
) -> Verdict:
    what = f"gradient of input {i}"
    x = xs[i]
    reused_node = s.topic.startswith("tape") or repeats
    softmax_family = s.topic == "stable softmax"
    if g is None or g.shape != x.shape or x.size <= FULL_GRADIENT_LIMIT:
        expected = (
            gradient_of_projection(f, xs, i, u)
            if x.size <= FULL_GRADIENT_LIMIT
            else np.zeros(x.shape)
        )
        ones = (
            gradient_of_projection(f, xs, i, np.ones(out_shape))
            if x.size <= FULL_GRADIENT_LIMIT
            else None
        )

        def swapped() -> list[tuple[str, np.ndarray]]:
            """The gradient meant for the other operand (when it has the same shape)."""
            return [
                ("swapped_operands", gradient_of_projection(f, xs, j, u))
                for j, other in enumerate(xs)
                if j != i and other.shape == x.shape and x.size <= FULL_GRADIENT_LIMIT
            ]

        return classify_gradient(
            what,
            g,
            expected,
            input_shape=x.shape,
            output_shape=out_shape,
            expected_with_ones=ones,
            reused_node=reused_node,
            softmax_family=softmax_family,
            alternatives=swapped,
            elementwise=(x, u) if s.elementwise and u.shape == x.shape else None,
        )
    # large input: compare along random directions
    vs = [rng.standard_normal(x.shape) for _ in range(DIRECTIONS)]
    expected_d = np.array([np.sum(u * directional_derivative(f, xs, i, v)) for v in vs])
    got_d = np.array([np.sum(g.astype(np.float64) * v) for v in vs])
    return classify_gradient(
        f"{what} (along {DIRECTIONS} random directions)",
        got_d,
        expected_d,
        input_shape=(DIRECTIONS,),
        output_shape=(DIRECTIONS,),
        reused_node=reused_node,
        softmax_family=softmax_family,
    )


def _wrong_forwards(s: OpSpec, case: Case, xs: list[np.ndarray]) -> list[tuple[str, np.ndarray]]:
    """What the spec's known wrong forwards give on these inputs, each with its bug class."""
    return [(cls, np.asarray(w(*xs, **case.kwargs), np.float64)) for cls, w in s.wrong]


def _judge_jvp(
    request: Request, s: OpSpec, case: Case, index: int, rng: np.random.Generator
) -> Verdict:
    xs = make_inputs(s, case, rng)
    f = _reference(s, case)
    vs = [rng.standard_normal(x.shape) for x in xs]
    _, arrays = request({"type": "jvp", "spec": s.name, "case": index}, xs + vs)
    arrays = list(arrays)
    out, tangent = take(arrays, 2)
    verdict = compare_values(
        "jvp output", out, f(*xs), alternatives=partial(_wrong_forwards, s, case, xs)
    )
    if not verdict.ok:
        return verdict
    terms = [np.asarray(directional_derivative(f, xs, i, v)) for i, v in enumerate(vs)]
    expected = np.asarray(sum(terms))

    def missing() -> list[tuple[str, np.ndarray]]:
        """The tangent without one input's term (product rule half done)."""
        if len(terms) < 2:
            return []
        return [("missing_term", expected - term) for term in terms if np.any(term)]

    return classify_gradient(
        "jvp tangent",
        tangent,
        expected,
        input_shape=expected.shape,
        output_shape=expected.shape,
        alternatives=missing,
        elementwise=(xs[0], vs[0]) if s.elementwise else None,
    )


def _judge_hvp(
    request: Request, s: OpSpec, case: Case, index: int, rng: np.random.Generator
) -> Verdict:
    xs = make_inputs(s, case, rng)
    f = _reference(s, case)
    u = rng.standard_normal(np.shape(f(*xs)))
    v = rng.standard_normal(xs[0].shape)
    _, arrays = request({"type": "hvp", "spec": s.name, "case": index}, xs + [u, v])
    arrays = list(arrays)
    first, second = take(arrays, 2)
    expected = gradient_of_projection(f, xs, 0, u)
    verdict = classify_gradient(
        "tg.grad", first, expected, input_shape=xs[0].shape, output_shape=u.shape
    )
    if not verdict.ok:
        return verdict

    return _judge_second_order("grad of grad (second derivative)", second, f, xs, u, v)


def _judge_second_order(
    what: str,
    got: np.ndarray,
    f: Callable[..., np.ndarray],
    xs: list[np.ndarray],
    u: np.ndarray,
    v: np.ndarray,
) -> Verdict:
    """``got`` against H v, the Hessian of <u, f> in the first input times v: the derivative
    of the gradient along v, by central differences of finite-difference gradients."""

    def gradient(x0: np.ndarray) -> np.ndarray:
        return gradient_of_projection(f, [x0, *xs[1:]], 0, u)

    expected = directional_derivative(gradient, [xs[0]], 0, v, eps=SECOND_ORDER_EPS)
    return classify_gradient(
        what,
        got,
        expected,
        input_shape=xs[0].shape,
        output_shape=xs[0].shape,
        if_zero="detached_backward",
        atol=_second_order_atol(expected),
        rtol=1e-3,
    )


def cost_case(s: OpSpec) -> tuple[int, tuple[tuple[int, ...], ...]] | None:
    """The case the backward-cost check runs, and its input shapes: of the spec's cases,
    each with every axis longer than 1 stretched (if needed) until some input has
    :data:`COST_ELEMENTS` elements, the smallest (axes of length 1 stay 1, so broadcasting
    still holds). None when no stretched case fits the op (a reshape to a fixed shape)."""
    candidates = []
    for index, case in enumerate(s.cases):
        if _size(case) <= 1:
            continue
        k = 1
        while _size(_stretched(case, k)) < COST_ELEMENTS:
            k += 1
        stretched = _stretched(case, k)
        try:
            with np.errstate(all="ignore"):
                _reference(s, stretched)(*(np.ones(shape) for shape in stretched.shapes))
        except Exception:
            continue
        candidates.append((_size(stretched), index, stretched.shapes))
    if not candidates:
        return None
    _, index, shapes = min(candidates)
    return index, shapes


def _stretched(case: Case, k: int) -> Case:
    shapes = tuple(tuple(d * k if d > 1 else d for d in shape) for shape in case.shapes)
    return Case(shapes, case.label, case.kwargs)


def judge_backward_cost(
    request: Request,
    *,
    s: OpSpec,
    index: int,
    shapes: tuple[tuple[int, ...], ...],
    rng: np.random.Generator,
) -> tuple[Verdict, str]:
    """A backward rule calls a few ops whatever the input size; a numerical gradient calls
    the op's forward once or twice per input element (n + 1 evaluations for forward
    differences, 2n for central ones: the cost the course contrasts with one backward pass).
    Fails, with class ``numerical_gradient``, when backward runs forward rules at least once
    per two elements of the largest input."""
    case = Case(shapes, s.cases[index].label, s.cases[index].kwargs)
    xs = make_inputs(s, case, rng)
    u = rng.standard_normal(np.shape(_reference(s, case)(*xs)))
    header, _ = request({"type": "backward_cost", "spec": s.name, "case": index}, xs + [u])
    about = f"{COST_LABEL}, input shapes {_shapes(case)}"
    if header.get("output_shape") != list(u.shape):
        shape = tuple(header.get("output_shape") or ())
        return Verdict(False, f"forward: shape {shape}, expected {u.shape}", "wrong_shape"), about
    calls = header.get("forward_calls")
    if not isinstance(calls, int):
        raise RequestFailed("the worker's reply did not count the forward calls", "crash")
    n = max(x.size for x in xs)
    if calls * 2 >= n:
        return Verdict(
            False,
            f"backward ran forward rules {calls} times for an input of {n} elements: the "
            "gradient is computed numerically (finite differences, n + 1 or 2n evaluations of "
            "forward), not by a backward rule. The course is about writing the rules: this "
            "check's points are withheld until backward computes the derivative itself",
            "numerical_gradient",
        ), about
    return Verdict(True), about


def _second_order_atol(expected: np.ndarray) -> float:
    """The expected H v is a difference of finite-difference gradients: its rounding error
    grows with the size of the values (about 1e-5 of the largest entry for conv2d squared,
    whose entries reach 100), so the absolute tolerance scales with the largest entry."""
    finite = np.abs(expected[np.isfinite(expected)])
    return 1e-4 * max(1.0, float(finite.max()) if finite.size else 1.0)


def _judge_fvr(
    request: Request, s: OpSpec, case: Case, index: int, rng: np.random.Generator
) -> Verdict:
    """Forward over reverse: the tangent of the gradient along v is the same H v as grad of
    grad, computed through the jvp rules of the ops the backward rules use (ScatterAdd's in
    GetItem.backward, Col2Im's in Im2Col.backward): a wrong one shows here."""
    xs = make_inputs(s, case, rng)
    f = _reference(s, case)
    u = rng.standard_normal(np.shape(f(*xs)))
    v = rng.standard_normal(xs[0].shape)
    _, arrays = request({"type": "fvr", "spec": s.name, "case": index}, xs + [u, v])
    (tangent,) = take(list(arrays), 1)
    return _judge_second_order("jvp of grad (forward over reverse)", tangent, f, xs, u, v)


def _repeats(case: Case) -> bool:
    index = case.kwargs.get("index")
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [np.asarray(p) for p in parts if isinstance(p, np.ndarray)]
    if not arrays:
        return False
    rows = np.stack(np.broadcast_arrays(*arrays), -1).reshape(-1, len(arrays))
    return len(np.unique(rows, axis=0)) < len(rows)

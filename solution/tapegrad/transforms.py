"""Function transformations: :func:`grad` and :func:`value_and_grad` (reverse mode,
composable) and :func:`jvp` (forward mode), in the style of HIPS autograd and JAX.

Arguments may be nested lists, tuples and dicts of arrays, Tensors and floats (a model's
parameters as ``{"w": w, "b": b}``, say): gradients and tangents come back in the same
structure. Integers, booleans and strings cannot be differentiated: they are refused with
the path of the offending leaf (``argument 0['layers'][1]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .tensor import Tensor, _forward_mode, backprop, enable_grad

__all__ = ["grad", "jvp", "tree_flatten", "tree_unflatten", "value_and_grad"]


# ------------------------------------------------------------------------ nested structures


class TreeDef:
    """The shape of a nested structure: its containers, with a hole for each leaf."""

    __slots__ = ("kind", "keys", "children", "rebuild")

    def __init__(
        self,
        kind: str,
        keys: tuple[Any, ...] = (),
        children: tuple[TreeDef, ...] = (),
        rebuild: Callable[[list[Any]], Any] | None = None,
    ) -> None:
        self.kind, self.keys, self.children, self.rebuild = kind, keys, children, rebuild

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TreeDef) and (self.kind, self.keys, self.children) == (
            other.kind,
            other.keys,
            other.children,
        )

    def __hash__(self) -> int:
        return hash((self.kind, self.keys, self.children))

    def __repr__(self) -> str:
        if self.kind == "leaf":
            return "*"
        inner = ", ".join(
            f"{k!r}: {c!r}" if self.kind == "dict" else repr(c)
            for k, c in zip(self.keys or range(len(self.children)), self.children)
        )
        return {"dict": "{%s}", "list": "[%s]"}.get(self.kind, "(%s)") % inner


LEAF = TreeDef("leaf")


def tree_flatten(tree: Any) -> tuple[list[Any], TreeDef]:
    """The leaves of a nested structure of lists, tuples (named ones too) and dicts, in
    order (dicts in their own key order), and its :class:`TreeDef`. Anything else is a
    leaf."""
    leaves: list[Any] = []
    return leaves, _flatten(tree, leaves)


def _flatten(tree: Any, leaves: list[Any]) -> TreeDef:
    if isinstance(tree, dict):
        keys = tuple(tree)
        children = tuple(_flatten(tree[k], leaves) for k in keys)
        mapping = type(tree)
        return TreeDef("dict", keys, children, lambda values: mapping(zip(keys, values)))
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple
        named = type(tree)
        children = tuple(_flatten(v, leaves) for v in tree)
        return TreeDef(f"namedtuple {named.__name__}", (), children, lambda v: named(*v))
    if isinstance(tree, (list, tuple)):
        sequence = type(tree)
        children = tuple(_flatten(v, leaves) for v in tree)
        return TreeDef(sequence.__name__, (), children, lambda values: sequence(values))
    leaves.append(tree)
    return LEAF


def tree_unflatten(treedef: TreeDef, leaves: Sequence[Any]) -> Any:
    """The inverse of :func:`tree_flatten`: ``leaves`` put back into ``treedef``'s shape."""
    it = iter(leaves)
    out = _unflatten(treedef, it)
    if next(it, _END) is not _END:
        raise ValueError(f"tree_unflatten: more leaves than the structure {treedef!r} holds")
    return out


_END = object()


def _unflatten(treedef: TreeDef, it: Any) -> Any:
    if treedef.kind == "leaf":
        value = next(it, _END)
        if value is _END:
            raise ValueError("tree_unflatten: fewer leaves than the structure holds")
        return value
    assert treedef.rebuild is not None
    return treedef.rebuild([_unflatten(child, it) for child in treedef.children])


def _leaf_paths(treedef: TreeDef, prefix: str) -> list[str]:
    """Where each leaf sits, in flattening order: ``prefix['w'][0]``."""
    if treedef.kind == "leaf":
        return [prefix]
    keys = treedef.keys if treedef.kind == "dict" else range(len(treedef.children))
    return [
        path
        for key, child in zip(keys, treedef.children)
        for path in _leaf_paths(child, f"{prefix}[{key!r}]")
    ]


# ------------------------------------------------------------------------ reverse mode


def _check_differentiable(value: Any, where: str, who: str) -> None:
    """Refuse, naming the leaf, what has no derivative: integers, booleans, strings, None."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        kind = "?"
    elif isinstance(value, Tensor):
        kind = value.dtype.kind
    else:
        try:
            kind = np.asarray(value).dtype.kind
        except Exception:
            kind = "O"
    if kind not in "fc":
        raise TypeError(
            f"{who}: {where} is {_describe(value)}, which cannot be differentiated: only "
            "floating-point values can (write 2.0, not 2; x.astype(np.float32) for an array); "
            "pass anything else through a closure, or as an argument not in argnums"
        )


def _describe(value: Any) -> str:
    if isinstance(value, Tensor):
        return f"a Tensor of dtype {value.dtype}"
    if isinstance(value, np.ndarray):
        return f"an array of dtype {value.dtype}"
    return f"{type(value).__name__} {value!r}"[:80]


def _as_input(value: Any) -> Tensor:
    """A tensor to differentiate with respect to: tensors that are already on a tape are used
    as they are (so ``grad(grad(f))`` sees through the inner call); anything else becomes a
    fresh leaf that requires grad, keeping its forward-mode tangent (so that
    ``jvp(grad(f), ...)``, forward over reverse, differentiates the gradient)."""
    if isinstance(value, Tensor):
        if value.requires_grad:
            return value
        fresh = value.detach()
        fresh._tangent = value._tangent
    else:
        fresh = Tensor(value)
    fresh.requires_grad = True
    return fresh


def _differentiate(
    f: Callable[..., Any], argnums: int | Sequence[int], who: str
) -> Callable[..., tuple[Tensor, Any]]:
    """The machinery of grad and value_and_grad: a function returning (value, gradients)."""
    single = isinstance(argnums, int)
    nums: tuple[int, ...] = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def run(*args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        args_list = list(args)
        trees: list[tuple[TreeDef, list[Tensor]]] = []
        for n in nums:
            if not -len(args) <= n < len(args):
                raise ValueError(f"{who}: argnums {n} but f was called with {len(args)} arguments")
            leaves, treedef = tree_flatten(args_list[n])
            paths = _leaf_paths(treedef, f"argument {n % len(args)}")
            if not leaves:
                raise TypeError(f"{who}: argument {n % len(args)} holds nothing to differentiate")
            for leaf, path in zip(leaves, paths):
                _check_differentiable(leaf, path, who)
            inputs = [_as_input(leaf) for leaf in leaves]
            trees.append((treedef, inputs))
            args_list[n] = tree_unflatten(treedef, inputs)
        with enable_grad():
            out = f(*args_list, **kwargs)
        if not isinstance(out, Tensor) or out.size != 1:
            shape = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise TypeError(f"{who}: f must return a one-element Tensor, got {shape}")
        wrt = [x for _, inputs in trees for x in inputs]
        grads: dict[Tensor, Tensor] = {}
        if out.requires_grad:
            ones = Tensor._make(out.backend.xp.ones(out.shape, out.dtype), out.device)
            grads = backprop(out, ones, create_graph=True, inputs=wrt)
        results = [
            tree_unflatten(treedef, [_gradient_of(x, grads) for x in inputs])
            for treedef, inputs in trees
        ]
        return out, results[0] if single else tuple(results)

    return run


def _gradient_of(x: Tensor, grads: dict[Tensor, Tensor]) -> Tensor:
    g = grads.get(x)
    return g if g is not None else Tensor._make(x.backend.xp.zeros_like(x.data), x.device)


def grad(f: Callable[..., Tensor], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """A function computing the gradient of ``f`` (which must return a one-element tensor)
    with respect to its positional argument(s) ``argnums``.

    ``tg.grad(f)(x)`` returns a Tensor shaped like ``x``; for a nested argument
    (``{"w": w, "b": [b1, b2]}``) the same structure of Tensors; with a tuple ``argnums``, a
    tuple of those. The gradient is computed with ``create_graph=True``, so it can be
    differentiated again: ``tg.grad(tg.grad(f))`` is the second derivative, and
    ``tg.jvp(tg.grad(f), ...)`` a Hessian-vector product.
    """
    run = _differentiate(f, argnums, "grad")

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        return run(*args, **kwargs)[1]

    grad_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_f


def value_and_grad(
    f: Callable[..., Tensor], argnums: int | Sequence[int] = 0
) -> Callable[..., tuple[Tensor, Any]]:
    """Like :func:`grad`, but returns ``(f(*args), gradients)``: the loss and its gradient
    from one forward pass."""
    run = _differentiate(f, argnums, "value_and_grad")

    def value_and_grad_f(*args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        return run(*args, **kwargs)

    value_and_grad_f.__name__ = f"value_and_grad({getattr(f, '__name__', 'f')})"
    return value_and_grad_f


# ------------------------------------------------------------------------ forward mode


def _tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def jvp(f: Callable[..., Any], primals: Any, tangents: Any) -> tuple[Any, Any]:
    """Forward mode: ``f(*primals)`` and its directional derivative along ``tangents``.

    Each primal carries its tangent through every op (the primal/tangent table of the
    course): an op's ``jvp`` rule maps input tangents to the output tangent. ``primals`` is
    a tuple of arguments (or one argument), each possibly nested; ``tangents`` has the same
    structure. Returns ``(outputs, output_tangents)``, both in the structure of ``f``'s
    output (a Tensor, or a nested tuple, list or dict of them).
    """
    primals, tangents = _tuple(primals), _tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    args, seeded = [], []
    for n, (p, t) in enumerate(zip(primals, tangents)):
        p_leaves, p_def = tree_flatten(p)
        t_leaves, t_def = tree_flatten(t)
        if p_def != t_def:
            raise ValueError(
                f"jvp: primal {n} has the structure {p_def!r} but its tangent {t_def!r}"
            )
        xs = []
        for leaf, t_leaf, path in zip(p_leaves, t_leaves, _leaf_paths(p_def, f"primal {n}")):
            _check_differentiable(leaf, path, "jvp")
            x = leaf.detach() if isinstance(leaf, Tensor) else Tensor(leaf)
            tx = Tensor(t_leaf, dtype=x.dtype, device=x.device)
            if tx.shape != x.shape:
                raise ValueError(f"jvp: tangent shape {tx.shape} does not match {path} {x.shape}")
            x._tangent = tx
            xs.append(x)
        seeded += xs
        args.append(tree_unflatten(p_def, xs))
    with _forward_mode(True):
        out = f(*args)
    outs, out_def = tree_flatten(out)
    out_tangents = []
    for y in outs:
        if not isinstance(y, Tensor):
            raise TypeError(f"jvp: f must return Tensors (or a structure of them), got {out!r}")
        t = y._tangent
        y._tangent = None
        out_tangents.append(
            t if t is not None else Tensor._make(y.backend.xp.zeros_like(y.data), y.device)
        )
    for x in seeded:
        x._tangent = None
    return tree_unflatten(out_def, outs), tree_unflatten(out_def, out_tangents)

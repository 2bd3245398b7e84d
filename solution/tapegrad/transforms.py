"""Function transformations: :func:`grad` (reverse mode, composable) and :func:`jvp` (forward
mode), in the style of HIPS autograd and JAX.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .tensor import Tensor, _forward_mode, backprop, enable_grad

__all__ = ["grad", "jvp"]


def _as_input(value: Any) -> Tensor:
    """A tensor to differentiate with respect to: tensors that are already on a tape are used
    as they are (so ``grad(grad(f))`` sees through the inner call); anything else becomes a
    fresh leaf that requires grad."""
    if isinstance(value, Tensor):
        if value.requires_grad:
            return value
        fresh = value.detach()
    else:
        fresh = Tensor(value)
    if fresh.dtype.kind != "f":
        fresh = fresh.astype("float32")
    fresh.requires_grad = True
    return fresh


def grad(f: Callable[..., Tensor], argnums: int | Sequence[int] = 0) -> Callable[..., Any]:
    """A function computing the gradient of ``f`` (which must return a one-element tensor)
    with respect to its positional argument(s) ``argnums``.

    ``tg.grad(f)(x)`` returns a Tensor shaped like ``x``; with a tuple ``argnums``, a tuple
    of Tensors. The gradient is computed with ``create_graph=True``, so it can be
    differentiated again: ``tg.grad(tg.grad(f))`` is the second derivative.
    """
    single = isinstance(argnums, int)
    nums: tuple[int, ...] = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def grad_f(*args: Any, **kwargs: Any) -> Any:
        for n in nums:
            if not -len(args) <= n < len(args):
                raise ValueError(f"grad: argnums {n} but f was called with {len(args)} arguments")
        args_list = list(args)
        wrt = []
        for n in nums:
            args_list[n] = _as_input(args_list[n])
            wrt.append(args_list[n])
        with enable_grad():
            out = f(*args_list, **kwargs)
        if not isinstance(out, Tensor) or out.size != 1:
            shape = out.shape if isinstance(out, Tensor) else type(out).__name__
            raise TypeError(f"grad: f must return a one-element Tensor, got {shape}")
        grads = {}
        if out.requires_grad:
            ones = Tensor._make(out.backend.xp.ones(out.shape, out.dtype), out.device)
            grads = backprop(out, ones, create_graph=True, inputs=wrt)
        results = []
        for x in wrt:
            g = grads.get(x)
            results.append(
                g if g is not None else Tensor._make(x.backend.xp.zeros_like(x.data), x.device)
            )
        return results[0] if single else tuple(results)

    grad_f.__name__ = f"grad({getattr(f, '__name__', 'f')})"
    return grad_f


def _tuple(values: Any) -> tuple[Any, ...]:
    return tuple(values) if isinstance(values, (tuple, list)) else (values,)


def jvp(f: Callable[..., Any], primals: Any, tangents: Any) -> tuple[Any, Any]:
    """Forward mode: ``f(*primals)`` and its directional derivative along ``tangents``.

    Each primal carries its tangent through every op (the primal/tangent table of the
    course): an op's ``jvp`` rule maps input tangents to the output tangent. Returns
    ``(outputs, output_tangents)``, matching ``f``'s output structure (one tensor or a tuple).
    """
    primals, tangents = _tuple(primals), _tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    xs = []
    for p, t in zip(primals, tangents):
        x = p.detach() if isinstance(p, Tensor) else Tensor(p)
        tx = Tensor(t, dtype=x.dtype, device=x.device)
        if tx.shape != x.shape:
            raise ValueError(f"jvp: tangent shape {tx.shape} does not match primal {x.shape}")
        x._tangent = tx
        xs.append(x)
    with _forward_mode(True):
        out = f(*xs)
    outs = _tuple(out)
    out_tangents = []
    for y in outs:
        t = y._tangent
        y._tangent = None
        out_tangents.append(
            t if t is not None else Tensor._make(y.backend.xp.zeros_like(y.data), y.device)
        )
    for x in xs:
        x._tangent = None
    if isinstance(out, (tuple, list)):
        return tuple(outs), tuple(out_tangents)
    return out, out_tangents[0]

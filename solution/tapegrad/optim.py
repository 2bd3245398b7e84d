"""Optimizers (:class:`SGD`, :class:`Adam`), gradient clipping (:func:`clip_grad_norm_`) and
:class:`EarlyStopping`, with PyTorch's update rules.

An optimizer step is not part of the model's computation: it updates ``p.data`` in place
with raw array math (``xp``, NumPy or CuPy, on the parameter's device), records nothing on
the tape and never copies to the host. Gradients are only read: a gradient array may be
shared between tensors by backward, so it is never modified in place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .tensor import Tensor

__all__ = ["Optimizer", "SGD", "Adam", "clip_grad_norm_", "EarlyStopping"]


def _params_list(params: Iterable[Tensor], who: str) -> list[Tensor]:
    """``params`` (a list or a generator such as ``model.parameters()``) as a list, each
    tensor once, after checking that each is a tensor that requires grad."""
    if isinstance(params, Tensor):
        raise TypeError(f"{who} takes an iterable of tensors; wrap the single tensor: [p]")
    if not isinstance(params, Iterable):
        raise TypeError(
            f"{who} takes an iterable of tensors (e.g. model.parameters()), got "
            f"{type(params).__name__}"
        )
    out: list[Tensor] = []
    seen: set[int] = set()
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{who}: parameter {i} is a {type(p).__name__}, not a Tensor")
        if not p.requires_grad:
            raise ValueError(f"{who}: parameter {i} (shape {p.shape}) does not require grad")
        if id(p) not in seen:  # a tensor listed twice would be updated twice
            seen.add(id(p))
            out.append(p)
    if not out:
        raise ValueError(f"{who} got an empty parameter list: did the model define any?")
    return out


def _check(name: str, value: Any, low: float = 0.0, high: float = math.inf) -> float:
    """``value`` as a float, checked to lie in [low, high)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not low <= value < high:
        interval = f"[{low}, {high})" if high != math.inf else f">= {low}"
        raise ValueError(f"invalid {name} {value!r}: it must be {interval}")
    return float(value)


class Optimizer:
    """Holds the parameters; subclasses implement :meth:`step`."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = _params_list(params, type(self).__name__)
        self.lr = _check("learning rate", lr)

    def zero_grad(self) -> None:
        """Forget the gradients (``.grad = None``) before the next backward."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum and L2 weight decay, as ``torch.optim.SGD``."""

    def __init__(
        self, params: Iterable[Tensor], lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, lr)
        self.momentum = _check("momentum", momentum)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.buffers: list[Any] = [None] * len(self.params)  # the velocity of each parameter
        self.scratch: list[Any] = [None] * len(self.params)  # reused for lr * g (see step)

    def step(self) -> None:
        """One update of every parameter that has a gradient (others are skipped):

            g = grad + weight_decay * p
            buf = g                       at the first step (with momentum > 0)
            buf = momentum * buf + g      afterwards
            p  -= lr * buf                (lr * g without momentum)

        on raw arrays (``p.data``, ``p.grad.data``), updating ``p.data`` in place. Keep
        ``buf`` in ``self.buffers[i]`` (your own array: never alias or modify the grad).
        """
        ### BEGIN SOLUTION hw2
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = g.copy()
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            # lr * g into an array kept between steps: a fresh temporary of the parameter's
            # size every step costs page faults that are a large share of a small step
            step = self.scratch[i]
            if step is None or step.shape != g.shape or step.dtype != p.data.dtype:
                step = self.scratch[i] = p.backend.xp.empty_like(p.data)
            p.backend.xp.multiply(g, self.lr, out=step, casting="unsafe")
            p.data -= step
        ### END SOLUTION


class Adam(Optimizer):
    """Adam (Kingma and Ba), with L2 weight decay added to the gradient, as
    ``torch.optim.Adam`` (not AdamW)."""

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check("beta1", betas[0], 0.0, 1.0), _check("beta2", betas[1], 0.0, 1.0))
        self.eps = _check("eps", eps)
        self.weight_decay = _check("weight_decay", weight_decay)
        self.steps = [0] * len(self.params)  # per parameter: one that had no grad did not step
        self.m: list[Any] = [None] * len(self.params)  # first moment (mean of g)
        self.v: list[Any] = [None] * len(self.params)  # second moment (mean of g*g)

    def step(self) -> None:
        """One update of every parameter that has a gradient; with t its number of steps
        (this one included):

            g = grad + weight_decay * p
            m = beta1 * m + (1 - beta1) * g          (m, v start at zeros)
            v = beta2 * v + (1 - beta2) * g * g
            m_hat = m / (1 - beta1**t),   v_hat = v / (1 - beta2**t)   (bias correction)
            p -= lr * m_hat / (sqrt(v_hat) + eps)

        on raw arrays, in place; ``p.backend.xp`` is the array module for ``sqrt``. Keep the
        state in ``self.steps[i]``, ``self.m[i]``, ``self.v[i]``.
        """
        beta1, beta2 = self.betas
        ### BEGIN SOLUTION hw2
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            xp = p.backend.xp
            g = p.grad.data
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.m[i] is None:
                self.m[i], self.v[i] = xp.zeros_like(p.data), xp.zeros_like(p.data)
            self.steps[i] += 1
            t = self.steps[i]
            m, v = self.m[i], self.v[i]
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * (g * g)
            m_hat = m / (1.0 - beta1**t)
            v_hat = v / (1.0 - beta2**t)
            p.data -= self.lr * m_hat / (xp.sqrt(v_hat) + self.eps)
        ### END SOLUTION


def clip_grad_norm_(params: Iterable[Tensor], max_norm: float) -> float:
    """Rescale gradients so that their global 2-norm is at most ``max_norm``:

        total = sqrt(sum over parameters p of sum(p.grad**2))   (over all gradients at once)
        if total > max_norm: every grad *= max_norm / (total + 1e-6)

    and return ``total`` (before clipping) as a Python float. Parameters without a gradient
    are skipped. Replace each ``p.grad`` by a new Tensor rather than scaling its array in
    place (backward may share one gradient array between several tensors).
    """
    max_norm = _check("max_norm", max_norm)
    if isinstance(params, Tensor):
        params = [params]
    ### BEGIN SOLUTION hw2
    grads = [(p, p.grad) for p in params if p.grad is not None]
    squares: dict[str, Any] = {}  # per device, so the sum needs one host sync per device
    for _, g in grads:
        sq = (g.data * g.data).sum()
        squares[g.device] = squares[g.device] + sq if g.device in squares else sq
    total = math.sqrt(sum(float(s) for s in squares.values()))
    if total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p, g in grads:
            p.grad = Tensor(g.data * scale, dtype=g.dtype, device=g.device)
    return total
    ### END SOLUTION


class EarlyStopping:
    """Stop training when a validation metric has not improved for ``patience`` checks.

        stopper = EarlyStopping(patience=3)           # mode="max" for accuracies
        for epoch in ...:
            if stopper.step(val_loss): break

    An improvement is a value better than ``best`` by more than ``min_delta``. ``best``
    holds the best value so far (inf, or -inf in max mode, before the first step) and
    ``num_bad_steps`` the number of checks since it was reached.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, mode: str = "min") -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience must be a non-negative int, got {patience!r}")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' (losses) or 'max' (accuracies), got {mode!r}")
        self.patience, self.mode = patience, mode
        self.min_delta = _check("min_delta", min_delta)
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_steps = 0

    @property
    def should_stop(self) -> bool:
        return self.num_bad_steps >= self.patience and self.num_bad_steps > 0

    def step(self, metric: float | Tensor) -> bool:
        """Record one value of the metric; True when training should stop, i.e. when the
        last ``patience`` values brought no improvement (a NaN is never an improvement)."""
        ### BEGIN SOLUTION hw2
        value = float(metric)
        if self.mode == "min":
            improved = value < self.best - self.min_delta
        else:
            improved = value > self.best + self.min_delta
        if improved:
            self.best = value
            self.num_bad_steps = 0
        else:
            self.num_bad_steps += 1
        return self.should_stop
        ### END SOLUTION

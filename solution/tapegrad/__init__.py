"""tapegrad: tensors with reverse- and forward-mode automatic differentiation, and neural
networks built on them, on NumPy (CPU) or CuPy (GPU).

    import tapegrad as tg
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    x.grad  # Tensor([2., 4.])
"""

from . import data, ops
from .compiler import compile
from .gradcheck import check_grad
from .ops import (
    abs,
    add,
    broadcast_to,
    concatenate,
    cos,
    div,
    exp,
    log,
    log_softmax,
    logsumexp,
    matmul,
    max,
    mean,
    min,
    mul,
    neg,
    pow,
    relu,
    reshape,
    sigmoid,
    sin,
    softmax,
    sqrt,
    stack,
    sub,
    sum,
    sum_to,
    tanh,
    transpose,
    where,
)
from .tensor import Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .trace import trace
from .transforms import grad, jvp, value_and_grad

# isort: split
from . import nn, optim, random  # the networks, built on the core above
from .random import manual_seed

__version__ = "0.1.0"

__all__ = [
    "Tensor", "Function", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "grad", "value_and_grad", "jvp", "trace", "compile", "check_grad", "data", "ops",
    "add", "sub", "mul", "div", "pow", "neg", "matmul", "exp", "log", "sqrt", "sin", "cos",
    "tanh", "sigmoid", "relu", "abs", "sum", "mean", "max", "min", "reshape", "transpose",
    "broadcast_to", "sum_to", "logsumexp", "softmax", "log_softmax", "concatenate", "stack",
    "where",
]  # fmt: skip
__all__ += ["nn", "optim", "random", "manual_seed"]

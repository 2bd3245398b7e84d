"""``tg.nn``: modules (layers with their parameters), the functional forms of the layers,
losses, and weight initialisation, as ``torch.nn``.

    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    loss = nn.functional.cross_entropy(model(x), labels)
"""

from . import functional, init
from .conv import Conv2d, MaxPool2d
from .examples import LinearPlusMLP
from .layers import Dropout, Flatten, Linear, ReLU, Sequential, Sigmoid, Tanh
from .module import IncompatibleKeys, Module, Parameter
from .normalization import BatchNorm1d, LayerNorm

__all__ = [
    "Module", "Parameter", "IncompatibleKeys",
    "Linear", "ReLU", "Sigmoid", "Tanh", "Sequential", "Flatten", "Dropout",
    "BatchNorm1d", "LayerNorm", "Conv2d", "MaxPool2d", "LinearPlusMLP",
    "functional", "init",
]  # fmt: skip

""":class:`Module`, the base of every layer and model, and :class:`Parameter`, a tensor that a
module trains.

A module finds its parameters by looking at its own attributes, in the order they were set:
a :class:`Parameter`, a sub-:class:`Module`, or a list, tuple or dict holding them. No
registration call is needed except for *buffers* (tensors that belong to the module's state
but are not trained, such as BatchNorm's running statistics): :meth:`Module.register_buffer`.

    class MLP(Module):
        def __init__(self):
            super().__init__()
            self.layers = [Linear(784, 128), Linear(128, 10)]   # names: layers.0.weight, ...

        def forward(self, x):
            return self.layers[1](relu(self.layers[0](x)))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from ..backend import get_backend
from ..tensor import Tensor

__all__ = ["Module", "Parameter", "IncompatibleKeys"]


class Parameter(Tensor):
    """A Tensor that a :class:`Module` trains: it always requires grad.

    ``data`` is an array (NumPy or CuPy) or a Tensor; the dtype rule is Tensor's (float data
    becomes float32 unless it is already a float64 array). The array is used as it is, not
    copied (as ``torch.nn.Parameter``), so optimizers update it in place. ``p.data`` may be
    assigned a new array of the same shape.
    """

    __slots__ = ()

    def __init__(self, data: Any, dtype: Any = None) -> None:
        device = data.device if isinstance(data, Tensor) else None
        super().__init__(data, requires_grad=True, dtype=dtype, device=device)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` did not load (both empty after a strict load)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


def _flatten(name: str, value: Any) -> Iterator[tuple[str, Any]]:
    """The Parameters and Modules in an attribute, with their names: ``value`` itself, or
    the items of a list, tuple or dict (recursively), named ``name.0``, ``name.key``."""
    if isinstance(value, (Parameter, Module)):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _flatten(f"{name}.{i}", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(f"{name}.{key}", item)


class Module:
    """Base class of layers and models: subclasses set attributes in ``__init__`` and
    define ``forward``; calling the module calls ``forward``.

    ``training`` (True after construction) is switched for the module and everything in it
    by :meth:`train` and :meth:`eval`; layers such as Dropout and BatchNorm read it.
    """

    training: bool = True  # a class default, so a subclass that skips __init__ still works

    def __init__(self) -> None:
        self.training = True
        self._buffer_names: set[str] = set()

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- discovery ---------------------------------------------------------------------------
    def register_buffer(self, name: str, tensor: Tensor | None) -> None:
        """Keep ``tensor`` as ``self.<name>``: part of :meth:`state_dict`, moved by :meth:`to`,
        but not a parameter (never given to an optimizer)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"buffer {name!r} must be a Tensor (or None), got {type(tensor)}")
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        setattr(self, name, tensor)

    def _members(self) -> Iterator[tuple[str, Any, str]]:
        """This module's own members, in the order their attributes were set, as
        ``(name, value, kind)`` with kind ``"parameter"``, ``"buffer"`` or ``"module"``."""
        buffers = self.__dict__.get("_buffer_names", ())
        for name, value in vars(self).items():
            if name in buffers:
                if isinstance(value, Tensor):
                    yield name, value, "buffer"
                continue
            for full, item in _flatten(name, value):
                yield full, item, "parameter" if isinstance(item, Parameter) else "module"

    def _walk(self, prefix: str, seen: set[int]) -> Iterator[tuple[str, Any, str]]:
        """Every member below this module as ``(qualified name, value, kind)``, depth first
        in the order of :meth:`_members`: a sub-module is followed at once by everything
        inside it, its names prefixed with its own (``layers.0.weight``).

        An object reached twice (a parameter or module shared between layers, or a module
        that refers back to its parent) is reported once, under the first name it was
        reached by: ``seen`` holds the ``id`` of everything reported so far.
        """
        ### BEGIN SOLUTION hw2
        for name, value, kind in self._members():
            if id(value) in seen:
                continue
            seen.add(id(value))
            yield prefix + name, value, kind
            if kind == "module":
                yield from value._walk(prefix + name + ".", seen)
        ### END SOLUTION

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """``(name, parameter)`` for every parameter, each once, in registration order."""
        for name, value, kind in self._walk("", {id(self)}):
            if kind == "parameter":
                yield name, value

    def parameters(self) -> Iterator[Parameter]:
        """Every parameter, each once (give them to an optimizer: ``SGD(model.parameters())``)."""
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for name, value, kind in self._walk("", {id(self)}):
            if kind == "buffer":
                yield name, value

    def buffers(self) -> Iterator[Tensor]:
        for _, b in self.named_buffers():
            yield b

    def named_modules(self) -> Iterator[tuple[str, Module]]:
        """This module (named ``""``) and every module inside it, each once."""
        yield "", self
        for name, value, kind in self._walk("", {id(self)}):
            if kind == "module":
                yield name, value

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """The modules held directly by this one (not their own sub-modules)."""
        seen: set[int] = {id(self)}
        for name, value, kind in self._members():
            if kind == "module" and id(value) not in seen:
                seen.add(id(value))
                yield name, value

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def _named_tensors(self) -> Iterator[tuple[str, Tensor]]:
        """Parameters and buffers together, in registration order: the state of the module."""
        for name, value, kind in self._walk("", {id(self)}):
            if kind != "module":
                yield name, value

    # ---- modes and gradients -----------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Set training mode (or evaluation mode, ``mode=False``) here and in every
        sub-module; returns ``self``, so ``model.train()`` can be chained."""
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode: Dropout passes inputs through, BatchNorm uses running statistics."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (``.grad = None``)."""
        for p in self.parameters():
            p.grad = None

    # ---- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: NumPy array}`` for every parameter and buffer, in registration order;
        host copies, so later training does not change them. Save with
        ``np.savez(path, **model.state_dict())``."""
        return {name: np.array(t.numpy(), copy=True) for name, t in self._named_tensors()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy the arrays of ``state`` (a dict, or ``np.load("file.npz")``) into this
        module's parameters and buffers, in place, on their device and in their dtype.

        With ``strict`` (the default) the keys must match exactly; without it, only the
        entries present on both sides are loaded. Shapes must always match. Nothing is
        changed unless everything can be loaded.
        """
        own = dict(self._named_tensors())
        given = set(state.keys())
        missing = [k for k in own if k not in given]
        unexpected = [k for k in state.keys() if k not in own]
        present = [k for k in own if k in given]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        arrays = {}
        for key in present:
            value = state[key]
            array = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
            if array.shape != own[key].shape:
                problems.append(
                    f"{key}: shape {array.shape} in the state dict, {own[key].shape} in the model"
                )
            arrays[key] = array
        if problems:
            raise ValueError(
                f"load_state_dict into {type(self).__name__}: " + "; ".join(problems) + ". Was "
                "it saved from a model built the same way? (strict=False loads only the keys "
                "both have.)"
            )
        for key, array in arrays.items():
            t = own[key]
            t.data[...] = t.backend.asarray(array.astype(t.dtype, copy=False))
        return IncompatibleKeys(missing, unexpected)

    def to(self, device: str | None = None, dtype: Any = None) -> Module:
        """Move every parameter and buffer (and its gradient) to ``device`` and/or convert it
        to ``dtype``, in place: the same Parameter objects, so an optimizer made before still
        holds them. Returns ``self``."""
        backend = get_backend(device) if device is not None else None
        for _, t in self._named_tensors():
            t.data = _convert(t.data, t.device, backend, dtype)
            if t.grad is not None:
                g = _convert(t.grad.data, t.grad.device, backend, dtype)
                t.grad = Tensor(g, dtype=g.dtype, device=backend.name if backend else t.device)
            if backend is not None:
                t.device = backend.name
        return self

    # ---- printing ----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The arguments shown between the parentheses of ``repr(module)``."""
        return ""

    def __repr__(self) -> str:
        children = [
            f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()
        ]
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(children) + "\n)"


def _convert(array: Any, device: str, backend: Any, dtype: Any) -> Any:
    """``array`` (on ``device``) copied to ``backend``'s device and cast to ``dtype``."""
    if backend is not None and backend.name != device:
        array = backend.asarray(get_backend(device).to_host(array))
    if dtype is not None and array.dtype != np.dtype(dtype):
        array = array.astype(dtype)
    return array

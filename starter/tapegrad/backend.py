"""The one place where tapegrad chooses between NumPy (``"cpu"``) and CuPy (``"cuda"``).

Every op gets its array module (``xp``) from here, through the device of its inputs, so no op
ever asks "am I on the GPU?". Adding a device means adding a :class:`Backend` here, nothing else.

The tests install a stand-in ``"cuda"`` backend backed by NumPy (:func:`install_cuda_backend`),
so every CUDA code path (device tags, transfers, mixing errors) runs on machines without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "Backend", "get_backend", "device_of_array", "install_cuda_backend", "trace_array_type",
    "DEVICES",
]  # fmt: skip

DEVICES = ("cpu", "cuda")


class Backend:
    """An array module plus the few operations NumPy and CuPy spell differently."""

    __slots__ = ("name", "xp", "_to_host", "_scatter_add")

    def __init__(
        self,
        name: str,
        xp: ModuleType,
        to_host: Callable[[Any], np.ndarray],
        scatter_add: Callable[[Any, Any, Any], None],
    ) -> None:
        self.name = name
        self.xp = xp
        self._to_host = to_host
        self._scatter_add = scatter_add

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """Copy-free conversion to this backend's array type (copies across devices)."""
        return self.xp.asarray(data, dtype=dtype)

    def to_host(self, array: Any) -> np.ndarray:
        """A NumPy array with the same contents (a device-to-host copy on CUDA)."""
        return self._to_host(array)

    def scatter_add(self, target: Any, index: Any, values: Any) -> None:
        """``target[index] += values`` with repeated indices accumulating (unbuffered)."""
        self._scatter_add(target, index, values)

    def __repr__(self) -> str:
        return f"Backend({self.name!r}, xp={self.xp.__name__})"


CPU = Backend("cpu", np, np.asarray, np.add.at)
_backends: dict[str, Backend] = {"cpu": CPU}


def _load_cupy() -> Backend:
    try:
        import cupy  # type: ignore[import-not-found]
        import cupyx  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError(
            "device='cuda' needs CuPy, which is not installed. Install the GPU extra matching "
            "your CUDA version (for example `pip install cupy-cuda12x`), or use device='cpu'."
        ) from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken: CuPy raises its own error types
        raise RuntimeError(
            f"device='cuda' needs an NVIDIA GPU, but CUDA could not be initialised ({exc}). "
            "Use device='cpu' on this machine."
        ) from exc
    if count == 0:
        raise RuntimeError("device='cuda' needs an NVIDIA GPU, and none was found. Use 'cpu'.")
    return Backend("cuda", cupy, cupy.asnumpy, cupyx.scatter_add)


def get_backend(device: str | None) -> Backend:
    """The backend for ``device`` ("cpu" or "cuda"); CuPy is imported on first use."""
    if device is None:
        return CPU
    backend = _backends.get(device)
    if backend is not None:
        return backend
    if device == "cuda":
        backend = _backends["cuda"] = _load_cupy()
        return backend
    if isinstance(device, str) and device.startswith("cuda:"):
        raise ValueError(f"device {device!r}: tapegrad uses the current CUDA device; say 'cuda'")
    raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")


def device_of_array(array: Any) -> str:
    """``"cuda"`` for a CuPy array, ``"cpu"`` for anything else."""
    if _traced_types:
        device = _traced_types.get(type(array))
        if device is not None:
            return device
    return "cuda" if type(array).__module__.startswith("cupy") else "cpu"


_traced_types: dict[type, str] = {}


def trace_array_type(kind: type, device: str | None) -> None:
    """Make ``device_of_array`` say ``device`` for arrays of type ``kind`` (``None``:
    forget it): :func:`tapegrad.compile` runs a function on stand-in arrays this way."""
    if device is None:
        _traced_types.pop(kind, None)
    else:
        _traced_types[kind] = device


def install_cuda_backend(backend: Backend | None) -> Backend | None:
    """Replace the ``"cuda"`` backend (``None`` forgets it); returns the previous one.

    For tests: ``install_cuda_backend(Backend("cuda", numpy, numpy.asarray, numpy.add.at))``
    runs every CUDA code path with NumPy standing in for CuPy.
    """
    previous = _backends.pop("cuda", None)
    if backend is not None:
        _backends["cuda"] = backend
    for forget in _caches:  # arrays made by the old backend must not outlive it
        forget()
    return previous


_caches: list[Callable[[], None]] = []


def on_backend_change(forget: Callable[[], None]) -> None:
    """Call ``forget`` whenever a backend is replaced (for caches of device arrays)."""
    _caches.append(forget)

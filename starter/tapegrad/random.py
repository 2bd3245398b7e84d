"""tapegrad's random numbers: one seed, and one generator per device made from it.

Initialisation (:mod:`tapegrad.nn.init`) and dropout draw from here, so

    tg.manual_seed(0)

makes a whole run reproducible. On ``"cuda"`` the generator is CuPy's
(``cupy.random.default_rng``, reached through the backend's ``xp``), so a dropout mask is drawn
on the GPU instead of being drawn on the host and copied over at every step.

Without :func:`manual_seed` the generators are seeded from the operating system's entropy,
as NumPy's ``default_rng()`` is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import Backend, get_backend

__all__ = ["manual_seed", "initial_seed", "generator", "rand", "randn", "uniform"]

# Generator.random and Generator.standard_normal (NumPy's and CuPy's) draw these dtypes only.
_NATIVE_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


class _RandomState:
    """The seed and the generators made from it, created on first use per device."""

    def __init__(self) -> None:
        self.seed: int | None = None
        self._generators: dict[str, tuple[Backend, Any]] = {}

    def manual_seed(self, seed: int) -> None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"manual_seed needs a non-negative integer, got {seed!r}")
        self.seed = int(seed)
        self._generators.clear()  # every device restarts from the new seed

    def generator(self, device: str) -> Any:
        backend = get_backend(device)
        held = self._generators.get(backend.name)
        # Compare backends too: tests swap the "cuda" backend for a NumPy stand-in and back.
        if held is None or held[0] is not backend:
            held = (backend, backend.xp.random.default_rng(self.seed))
            self._generators[backend.name] = held
        return held[1]


_state = _RandomState()


def manual_seed(seed: int) -> None:
    """Seed every device's generator (``tg.manual_seed(0)``); draws that follow repeat exactly."""
    _state.manual_seed(seed)


def initial_seed() -> int | None:
    """The seed given to :func:`manual_seed` last (``None``: seeded from OS entropy)."""
    return _state.seed


def generator(device: str = "cpu") -> Any:
    """The generator of ``device``: a ``numpy.random.Generator`` on ``"cpu"``, CuPy's
    ``cupy.random.Generator`` on ``"cuda"`` (whatever ``get_backend(device).xp.random``
    provides)."""
    return _state.generator(device)


def _draw(method: str, shape: tuple[int, ...], dtype: Any, device: str) -> Any:
    dtype = np.dtype(dtype)
    native = dtype if dtype in _NATIVE_FLOATS else np.dtype(np.float64)
    values = getattr(generator(device), method)(tuple(shape), dtype=native)
    return values if native == dtype else values.astype(dtype)


def rand(shape: tuple[int, ...], dtype: Any = np.float32, device: str = "cpu") -> Any:
    """An array of ``shape`` on ``device``, uniform on [0, 1)."""
    return _draw("random", shape, dtype, device)


def randn(shape: tuple[int, ...], dtype: Any = np.float32, device: str = "cpu") -> Any:
    """An array of ``shape`` on ``device``, standard normal."""
    return _draw("standard_normal", shape, dtype, device)


def uniform(
    shape: tuple[int, ...], low: float, high: float, dtype: Any = np.float32, device: str = "cpu"
) -> Any:
    """An array of ``shape`` on ``device``, uniform on [low, high)."""
    return low + (high - low) * rand(shape, dtype, device)

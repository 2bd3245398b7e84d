"""Shared fixtures for the kit's tests."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest


@pytest.fixture
def cuda_standin() -> Iterator[object]:
    """Install NumPy as the ``"cuda"`` backend for one test, so every CUDA code path (device
    tags, transfers, mixing errors) runs without a GPU; the previous backend (none, or real
    CuPy) comes back afterwards. Yields the stand-in :class:`tapegrad.backend.Backend`."""
    from tapegrad import backend

    standin = backend.Backend("cuda", np, np.asarray, np.add.at)
    previous = backend.install_cuda_backend(standin)
    try:
        yield standin
    finally:
        backend.install_cuda_backend(previous)

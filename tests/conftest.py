"""Shared fixtures for the kit's tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from autograder.grading.channel import Limits
from autograder.grading.sandbox import make_sandbox
from autograder.grading.session import WorkerSession


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


REPO = Path(__file__).resolve().parents[1]


def worker_session(submission: Path, seconds: float = 300.0) -> WorkerSession:
    """A worker on ``submission`` behind the pipeline's own adapter (failed replies and dead
    workers become RequestFailed), as the grader talks to it."""
    limits = Limits(request_timeout=60.0, start_timeout=30.0, total_timeout=seconds)
    return WorkerSession(
        make_sandbox("none", limits), submission, "cpu", time.monotonic() + seconds
    )


@pytest.fixture(scope="module")
def reference_session() -> Iterator[WorkerSession]:
    """A worker on the reference package (solution/), started once per test module."""
    with worker_session(REPO / "solution") as session:
        assert session.start()["ok"], session.hello
        yield session


@pytest.fixture(scope="session")
def reference_hw1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hw1 reference submission (``kit reference hw1``), built once per test session."""
    from autograder.authoring.reference import build_reference

    out = tmp_path_factory.mktemp("reference") / "hw1"
    build_reference("hw1", REPO, out)
    return out

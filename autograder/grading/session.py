"""One submission's worker, as the checks use it: started on first use, restarted after it
dies, and every failure of the student's code turned into
:class:`~autograder.grading.cases.RequestFailed` (not implemented, crash, timeout)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .cases import RequestFailed
from .channel import Worker, WorkerError, WorkerTimeout
from .sandbox import Sandbox

__all__ = ["WorkerSession"]


class WorkerSession:
    """The worker of one submission: started on first use, restarted after it dies, and every
    failure of the student's code turned into :class:`~autograder.grading.cases.RequestFailed`."""

    def __init__(self, sandbox: Sandbox, submission: Path, device: str, deadline: float) -> None:
        self.sandbox, self.submission, self.device, self.deadline = (
            sandbox,
            submission,
            device,
            deadline,
        )
        self.worker: Worker | None = None
        self.hello: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        if self.worker is None or not self.worker.alive:
            self.close()
            self.worker = self.sandbox.start(
                self.submission, device=self.device, deadline=self.deadline
            )
            self.hello = self.worker.hello
        return self.hello

    def request(
        self, header: dict[str, Any], arrays: list[np.ndarray], timeout: float | None = None
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        hello = self.start()
        if not hello.get("ok"):
            raise RequestFailed(
                f"tapegrad could not be imported: {hello.get('error')}", "crash", fatal=True
            )
        assert self.worker is not None
        try:
            reply, out = self.worker.request(header, arrays, timeout=timeout)
        except WorkerTimeout as exc:
            self.close()
            raise RequestFailed(str(exc), "timeout", fatal=True) from None
        except WorkerError as exc:
            self.close()
            raise RequestFailed(str(exc), "crash", fatal=True) from None
        if not reply["ok"]:
            err = reply["error"]
            where = f" (at {err['where']})" if err.get("where") else ""
            if err["type"] == "NotImplementedError":
                raise RequestFailed(
                    f"not implemented: {err['message'] or 'NotImplementedError'}{where}",
                    "not_implemented",
                )
            raise RequestFailed(f"{err['type']}: {err['message']}{where}", "crash")
        return reply, out

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None

    def __enter__(self) -> WorkerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The default executor: every job in the driver's own process, one after the other.

Cells share the driver's Workspace (each dataset and split loaded once) and write straight into
the run directory. No isolation: a model that crashes the interpreter ends the run (resume
picks up from the finished cells), and time limits need a killable process, so a suite with
`[execution]` time limits runs in one worker process instead (`harness.executors.pick`).
"""

from __future__ import annotations

import os
import socket
from collections import deque


class InProcessExecutor:
    name = "in-process"

    def __init__(self, workspace):
        from harness.executors.worker import WorkerState
        self.state = WorkerState("in-process", None, workspace=workspace)
        self.queue: deque = deque()

    def start(self) -> None:
        pass

    def submit(self, job) -> None:
        self.queue.append(job)

    def busy(self) -> int:
        return len(self.queue)

    def poll(self, timeout: float | None = None) -> list:
        """Run the next job to completion and return its outcome."""
        if not self.queue:
            return []
        job = self.queue.popleft()
        return [(job, self.state.execute(job))]

    def info(self) -> dict:
        return {"executor": self.name, "workers": 1,
                "nodes": [{"host": socket.gethostname(), "cpus": os.cpu_count()}]}

    def close(self) -> None:
        self.queue.clear()

"""What an executor runs (a `Job`) and what it hands back (an `Outcome`).

A job is one of:
- `cell`: the whole cell (`harness.cell.run_cell`); the value is the cell's files.
- `fit`: a sharded cell's first stage: build candidates and fit the model once; the value is
  the fitted model (pickled when it leaves the process) and the number of evaluated users.
- `shard`: score and evaluate users [start, stop) of the candidates with the fitted model; the
  value is that range's `Evaluation`.
- `finish`: the remaining passes of a sharded cell, given the fitted model and the merged
  evaluation; the value is the cell's files, as for `cell`.
"""

from __future__ import annotations

import itertools
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from harness.task import CellTask

_ids = itertools.count()


@dataclass
class Job:
    kind: str  # "cell" | "fit" | "shard" | "finish"
    task: CellTask
    shard: tuple[int, int] | None = None  # user positions [start, stop) for "shard"
    model: Any = None  # the fitted model: an object (in-process), pickled bytes, or [ObjectRef]
    model_key: str = ""  # identifies `model` for the per-worker cache
    evaluation: Any = None  # the merged Evaluation, for "finish"
    fit: dict = field(default_factory=dict)  # the fit stage's record, for "finish"
    timeout_s: float | None = None  # kill the job after this long
    resources: Any = None  # harness.executors.config.CellResources of the cell
    attempt: int = 0
    id: int = field(default_factory=lambda: next(_ids))

    @property
    def label(self) -> str:
        part = f" shard {self.shard[0]}-{self.shard[1]}" if self.shard else ""
        return f"{self.task.key} [{self.kind}{part}]"


@dataclass
class Outcome:
    """ok: the job ran (a cell whose model crashed is still ok here: its status says failed).
    lost: the worker process or node died (the job may be retried). timed_out: killed at its
    deadline (never retried)."""

    ok: bool
    value: Any = None
    error: str = ""
    lost: bool = False
    timed_out: bool = False
    placement: dict = field(default_factory=dict)  # host, pid, executor, devices
    seconds: float = 0.0
    tainted: bool = False  # a timed-out pass left a thread behind: recycle the worker


def placement(executor: str, **extra) -> dict:
    """Where a job ran: host, pid, the executor and the accelerators visible to it."""
    out = {"executor": executor, "host": socket.gethostname(), "pid": os.getpid(),
           "visible_devices": visible_devices()}
    out.update(extra)
    return out


def visible_devices() -> str:
    """'cpu', or 'cuda:<n> (<name>)' for the CUDA devices this process may use."""
    try:
        import torch
        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"cuda x{n} ({torch.cuda.get_device_name(0)})"
    except Exception:  # noqa: BLE001 - a broken CUDA setup reads as cpu
        pass
    return "cpu"

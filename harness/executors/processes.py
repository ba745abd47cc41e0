"""Local worker processes (`--workers N`): N spawned processes, one job at a time each.

The driver talks to each worker over its own pipe, so it always knows which job a worker runs:
a worker that dies (crash, out of memory, killed) fails or retries only that job, and a job
past its deadline is ended by killing its worker. A replacement worker is spawned on demand.
Workers use the spawn start method (no fork of a driver holding threads and open files), build
their own Workspace, and run cells in a private scratch directory (see `worker.py`).
"""

from __future__ import annotations

import dataclasses
import multiprocessing as mp
import os
import signal
import socket
import sys
import time
from collections import OrderedDict, deque
from multiprocessing.connection import wait

KILL_GRACE_S = 5.0


def worker_main(conn, settings: dict) -> None:
    """A worker process: set threads, then run jobs from `conn` until it closes or sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    os.environ.update(settings.get("env", {}))
    for path in reversed(settings.get("sys_path", [])):
        if path not in sys.path:
            sys.path.insert(0, path)
    import shutil

    import torch

    from harness.executors.jobs import Outcome
    from harness.executors.worker import WorkerState
    if settings.get("threads"):
        torch.set_num_threads(int(settings["threads"]))
    scratch = settings["scratch"]
    state = WorkerState(settings.get("executor", "processes"), scratch, quiet=True)
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                break
            if job is None:
                break
            conn.send("started")  # the job's time limit counts from here (imports are done)
            out = state.execute(job)
            out.placement.update(settings.get("placement", {}))
            try:
                conn.send(out)
            except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable value
                conn.send(Outcome(False, None, f"the job's result could not be sent back to "
                                               f"the driver ({type(exc).__name__}: {exc})"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class _Worker:
    def __init__(self, ctx, settings: dict, index: int):
        import tempfile
        self.scratch = tempfile.mkdtemp(prefix="harness-worker-")  # removed by the driver too
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main,
                                args=(child, {**settings, "scratch": self.scratch}),
                                name=f"harness-worker-{index}")
        self.proc.start()
        child.close()
        self.job = None
        self.started = 0.0
        self.deadline: float | None = None
        self.models: OrderedDict = OrderedDict()  # mirrors the worker's model cache

    def send(self, job) -> None:
        """Send a job; a model the worker already holds is not sent again (this mirrors the
        worker's least-recently-used model cache)."""
        from harness.executors.worker import MODEL_CACHE
        if job.model_key:
            if job.model_key in self.models and job.kind != "fit":
                job = dataclasses.replace(job, model=None)
            self.models[job.model_key] = True
            self.models.move_to_end(job.model_key)
            while len(self.models) > MODEL_CACHE:
                self.models.popitem(last=False)
        self.conn.send(job)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, ValueError):
                self.proc.kill()
        self.proc.join(KILL_GRACE_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(KILL_GRACE_S)
        self.conn.close()
        import shutil
        shutil.rmtree(self.scratch, ignore_errors=True)


class ProcessExecutor:
    """N local worker processes. `threads`: torch threads per worker (default: the machine's
    cores divided among the workers)."""

    name = "processes"

    def __init__(self, workers: int, threads: int | None = None, label: str = "processes",
                 placement: dict | None = None):
        self.n = max(1, int(workers))
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.n)
        self.label = label
        self.ctx = mp.get_context("spawn")
        self.settings = {"threads": self.threads, "executor": label,
                         "sys_path": [p for p in sys.path if p and os.path.isdir(p)],
                         "env": {"OMP_NUM_THREADS": str(self.threads),
                                 "MKL_NUM_THREADS": str(self.threads),
                                 "OPENBLAS_NUM_THREADS": str(self.threads)},
                         "placement": placement or {}}
        self.workers: list[_Worker] = []
        self.queue: deque = deque()
        self.spawned = 0

    def start(self) -> None:
        """Nothing to connect to; workers are spawned when jobs arrive."""

    def submit(self, job) -> None:
        self.queue.append(job)

    def busy(self) -> int:
        return len(self.queue) + sum(w.job is not None for w in self.workers)

    def _dispatch(self) -> None:
        while self.queue:
            idle = next((w for w in self.workers if w.job is None), None)
            if idle is None and len(self.workers) < self.n:
                idle = _Worker(self.ctx, self.settings, self.spawned)
                self.spawned += 1
                self.workers.append(idle)
            if idle is None:
                return
            job = self.queue.popleft()
            idle.job = job
            idle.started, idle.deadline = time.monotonic(), None  # set when the job starts
            try:
                idle.send(job)
            except (OSError, ValueError):  # the worker died while idle: replace it
                idle.job = None
                self._retire(idle, kill=True)
                self.queue.appendleft(job)

    def _retire(self, w: _Worker, kill: bool) -> None:
        w.stop(kill=kill)
        self.workers.remove(w)

    def poll(self, timeout: float | None = 1.0) -> list:
        """Outcomes of the jobs that finished (or died, or timed out) within `timeout` s."""
        from harness.executors.jobs import Outcome
        self._dispatch()
        busy = [w for w in self.workers if w.job is not None]
        if not busy:
            return []
        now = time.monotonic()
        deadlines = [w.deadline - now for w in busy if w.deadline is not None]
        limit = min([timeout if timeout is not None else 3600.0, *deadlines])
        wait([w.conn for w in busy] + [w.proc.sentinel for w in busy], max(0.0, limit))
        done = []
        for w in busy:
            job, out, retire = w.job, None, False
            while out is None and w.conn.poll():
                try:
                    msg = w.conn.recv()
                except (EOFError, OSError):
                    break
                if msg == "started":
                    w.started = time.monotonic()
                    w.deadline = (w.started + job.timeout_s) if job.timeout_s else None
                else:
                    out = msg
            if out is None and not w.proc.is_alive():
                code = w.proc.exitcode
                why = (f"killed by signal {-code}" if code is not None and code < 0
                       else f"exit code {code}")
                out = Outcome(False, None, f"worker process died ({why}) while running "
                                           f"{job.label}", lost=True)
                retire = True
            elif out is None and w.deadline is not None and time.monotonic() >= w.deadline:
                out = Outcome(False, None, f"timed out after {job.timeout_s:g} s",
                              timed_out=True)
                retire = True
            if out is None:
                continue
            if not out.ok and not out.seconds:
                out.seconds = round(time.monotonic() - w.started, 4)
            out.placement.setdefault("executor", self.label)
            out.placement.setdefault("host", socket.gethostname())
            out.placement.setdefault("pid", w.proc.pid)
            w.job = w.deadline = None
            if retire or out.tainted:
                self._retire(w, kill=True)
            done.append((job, out))
        self._dispatch()
        return done

    def info(self) -> dict:
        return {"executor": self.label, "workers": self.n, "threads_per_worker": self.threads,
                "start_method": "spawn", "nodes": [{"host": socket.gethostname(),
                                                    "cpus": os.cpu_count()}]}

    def close(self) -> None:
        self.queue.clear()
        for w in list(self.workers):
            self._retire(w, kill=w.job is not None)

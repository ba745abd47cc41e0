"""The driver's loop: turn cell tasks into jobs, hand them to an executor, write what comes back.

The same loop runs with every executor, so resume (done by the runner before), failure
isolation, retries, time limits, progress and the per-cell placement records do not depend on
where a cell ran. A sharded cell is three stages: `fit` (one job), `shard` (one job per user
range, all given the one fitted model) and `finish` (the other passes on the merged
evaluation); any stage's failure fails the cell.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from pathlib import Path

from harness.executors.config import ExecutionSpec
from harness.executors.jobs import Job, Outcome
from harness.executors.shards import merge, shard_ranges
from harness.io import write_json


def failed_status(task, error: str, seconds: float = 0.0) -> dict:
    """The status record of a cell that never produced one (lost, timed out, stage error)."""
    m = task.model
    return {"cell": task.key, "dataset": task.dataset.label, "split": task.split.label,
            "candidates": task.candidates.label, "model": m.label, "recommender": m.name,
            "params": m.params, "seed": task.seed, "status": "failed", "error": error,
            "code": task.code, "duration_s": round(seconds, 4)}


def write_bytes(run_dir: Path, rel: str, data: bytes) -> None:
    """Write a file a worker returned, atomically, refusing paths outside the run directory."""
    root = Path(run_dir).resolve()
    path = (root / rel).resolve()
    if root not in path.parents:
        raise ValueError(f"worker returned a path outside the run directory: {rel}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclasses.dataclass
class _Cell:
    task: object
    res: object
    spent: float = 0.0  # seconds of finished stages (the cell's time limit covers them all)
    attempts: int = 1
    fit: dict = dataclasses.field(default_factory=dict)
    model: object = None
    parts: dict = dataclasses.field(default_factory=dict)
    shards: list = dataclasses.field(default_factory=list)
    shard_started: float = 0.0
    placements: list = dataclasses.field(default_factory=list)
    done: bool = False


class Scheduler:
    """Runs cell tasks on `executor`; `on_status(status)` is called as each cell ends."""

    def __init__(self, executor, run_dir: Path, log, on_status, progress=None):
        self.ex, self.run_dir, self.log = executor, Path(run_dir), log
        self.on_status, self.progress = on_status, progress
        self.cells: dict[str, _Cell] = {}

    def run(self, tasks: list) -> None:
        for task in tasks:
            spec = task.suite.execution or ExecutionSpec()
            res = spec.for_model(task.model.label)
            self.cells[task.key] = _Cell(task, res)
            sharded = res.shards > 1 or res.shard_users is not None
            kind = "fit" if sharded else "cell"
            self.ex.submit(Job(kind, task, model_key=f"{task.key}#fit" if sharded else "",
                               timeout_s=res.timeout_s, resources=res))
        while any(not c.done for c in self.cells.values()):
            for job, out in self.ex.poll(1.0):
                self._handle(job, out)
            if self.progress is not None:
                running = sum(not c.done for c in self.cells.values())
                self.progress.set_postfix_str(f"{running} to go", refresh=True)

    # --- outcomes ------------------------------------------------------------------------
    def _handle(self, job: Job, out: Outcome) -> None:
        cell = self.cells[job.task.key]
        if cell.done:
            return
        if out.value and isinstance(out.value, dict) and out.value.get("log"):
            self._append_log(out.value["log"])
        if not out.ok:
            if out.lost and job.attempt < cell.res.retries:
                self.log.warning("%s: %s; retrying (attempt %d of %d)", job.label, out.error,
                                 job.attempt + 2, cell.res.retries + 1)
                cell.attempts += 1
                self.ex.submit(dataclasses.replace(job, attempt=job.attempt + 1))
                return
            error = out.error
            if out.timed_out:
                error = self._timeout_reason(job)
            self._fail(cell, error, out)
            return
        cell.placements.append({"job": job.kind, **out.placement, "seconds": out.seconds,
                                **({"users": list(job.shard)} if job.shard else {})})
        getattr(self, f"_{job.kind}_done")(cell, job, out)

    def _timeout_reason(self, job: Job) -> str:
        spec = job.task.suite.execution or ExecutionSpec()
        limit = spec.pass_timeout_s.get("accuracy") if job.kind == "shard" else None
        if limit is not None and job.timeout_s == limit:
            return (f"pass 'accuracy' timed out after {limit:g} s "
                    f"(execution.pass_timeout_s.accuracy = {limit:g}, users "
                    f"{job.shard[0]}-{job.shard[1]})")
        total = self.cells[job.task.key].res.timeout_s
        return f"cell timed out after {total:g} s (execution.timeout_s = {total:g})"

    def _cell_done(self, cell: _Cell, job: Job, out: Outcome) -> None:
        for rel, data in out.value["files"].items():
            write_bytes(self.run_dir, rel, data)
        self._finish(cell, out.value["status"])

    _finish_done = _cell_done

    def _fit_done(self, cell: _Cell, job: Job, out: Outcome) -> None:
        cell.spent += out.seconds
        cell.fit, cell.model = out.value, out.value["model"]
        batch = cell.task.suite.batch_size
        ranges = shard_ranges(out.value["n_users"], cell.res.n_shards(out.value["n_users"],
                                                                        batch), batch)
        cell.shards, cell.shard_started = ranges, time.perf_counter()
        limit = self._remaining(cell)
        acc = (cell.task.suite.execution or ExecutionSpec()).pass_timeout_s.get("accuracy")
        if acc is not None and (limit is None or acc < limit):
            limit = acc
        self.log.info("cell %s: fitted in %.2fs; evaluating %d users in %d shard(s)",
                      cell.task.key, out.value["fit_s"], out.value["n_users"], len(ranges))
        for rng in ranges:
            self.ex.submit(Job("shard", cell.task, shard=rng, model=cell.model,
                               model_key=job.model_key, timeout_s=limit,
                               resources=cell.res))

    def _shard_done(self, cell: _Cell, job: Job, out: Outcome) -> None:
        cell.parts[job.shard] = out.value
        if len(cell.parts) < len(cell.shards):
            return
        eval_s = round(time.perf_counter() - cell.shard_started, 4)
        cell.spent += max(p["seconds"] for p in cell.placements if p["job"] == "shard")
        merged = merge([cell.parts[r] for r in cell.shards])
        cell.parts = {}
        fit = {"fit_s": cell.fit["fit_s"], "eval_s": eval_s}
        self.ex.submit(Job("finish", cell.task, model=cell.model, model_key=job.model_key,
                           evaluation=merged, fit=fit, timeout_s=self._remaining(cell),
                           resources=cell.res))

    def _remaining(self, cell: _Cell) -> float | None:
        if cell.res.timeout_s is None:
            return None
        return max(1.0, cell.res.timeout_s - cell.spent)

    # --- cell end --------------------------------------------------------------------------
    def _fail(self, cell: _Cell, error: str, out: Outcome) -> None:
        self.log.error("cell %s failed: %s", cell.task.key, error)
        cell.placements.append({"job": "failed", **out.placement, "seconds": out.seconds})
        self._finish(cell, failed_status(cell.task, error, cell.spent + out.seconds))

    def _finish(self, cell: _Cell, status: dict) -> None:
        cell.done, cell.model = True, None
        forget = getattr(self.ex, "forget", None)
        if forget is not None:
            forget(f"{cell.task.key}#fit")
        status["attempts"] = cell.attempts
        last = next((p for p in reversed(cell.placements) if p["job"] in ("cell", "finish")),
                    cell.placements[-1] if cell.placements else {})
        status["placement"] = {k: v for k, v in last.items() if k not in ("job", "seconds")}
        if cell.shards:
            status["shards"] = [p for p in cell.placements if p["job"] in ("fit", "shard")]
        write_json(cell.task.cell_dir / "status.json", status)
        self.log.info("cell %s %s in %.2fs", cell.task.key, status["status"],
                      status.get("duration_s", 0.0))
        self.on_status(status)

    def _append_log(self, text: str) -> None:
        with open(self.run_dir / "run.log", "a", encoding="utf-8") as fh:
            fh.write(text)

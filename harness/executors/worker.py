"""The worker side of every executor: run one job, hand back an `Outcome`.

Out of the driver's process a worker writes nothing the driver has to see: it runs the cell in a
private scratch run directory and returns the files the cell wrote (status, tables, top-k file,
rerank first-stage candidates) and its log lines; the driver writes them into the real run
directory. So workers need no storage shared with the driver, only the datasets (registry
datasets ship with the harness; a `path` dataset must exist on the worker) and a writable cache
directory (the task's; a worker that cannot create it uses its scratch directory).
In-process (scratch None) the cell writes straight into the run directory.
"""

from __future__ import annotations

import dataclasses
import pickle
import shutil
import time
import traceback
from collections import OrderedDict
from pathlib import Path

from harness.executors.jobs import Job, Outcome, placement

MODEL_CACHE = 2  # fitted models kept per worker (a sharded cell's model is shipped once)


class WorkerState:
    """Per-process state: workspaces (datasets, splits, candidates loaded once per process),
    fitted models of sharded cells, and the scratch run directory."""

    def __init__(self, executor: str, scratch: str | Path | None = None, workspace=None,
                 quiet: bool | None = None):
        self.executor = executor
        self.scratch = Path(scratch) if scratch is not None else None
        self.quiet = quiet
        self.workspaces: dict = {}
        self.shared_ws = workspace
        self.models: OrderedDict = OrderedDict()
        self.log_offset = 0
        self.sent: set[str] = set()

    # --- helpers -------------------------------------------------------------------------
    def local(self, task):
        """The task as this worker runs it: in the scratch run directory (and quiet)."""
        if self.scratch is None:
            return task
        changes = {"run_dir": str(self.scratch)}
        if self.quiet is not None:
            changes["options"] = task.options.with_(quiet=self.quiet)
        cache = Path(task.cache_dir)
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError:
            changes["cache_dir"] = str(self.scratch / ".cache")
        return dataclasses.replace(task, **changes)

    def workspace(self, task):
        if self.shared_ws is not None:
            return self.shared_ws
        from harness.workspace import Workspace
        key = (task.suite.file, task.suite.sha256, task.cache_dir, task.run_dir)
        if key not in self.workspaces:
            self.workspaces[key] = Workspace(task.suite, task.cache_dir, task.run_dir)
        return self.workspaces[key]

    def model(self, job: Job):
        """The fitted model of a sharded cell: cached, else unpacked from the job's payload."""
        if job.model_key in self.models:
            self.models.move_to_end(job.model_key)
            return self.models[job.model_key]
        payload = job.model
        if payload is None:
            raise RuntimeError(f"job {job.label} carries no model and this worker has none")
        if isinstance(payload, list):  # [ray.ObjectRef]: fetched once per worker
            import ray
            payload = ray.get(payload[0])
        model = pickle.loads(payload) if isinstance(payload, (bytes, bytearray)) else payload
        self._keep(job.model_key, model)
        return model

    def _keep(self, key: str, model) -> None:
        self.models[key] = model
        while len(self.models) > MODEL_CACHE:
            self.models.popitem(last=False)

    def _log_text(self) -> str:
        if self.scratch is None:
            return ""
        path = self.scratch / "run.log"
        if not path.exists():
            return ""
        with open(path, encoding="utf-8", errors="replace") as fh:
            fh.seek(self.log_offset)
            text = fh.read()
            self.log_offset = fh.tell()
        return text

    def _files(self, task) -> dict[str, bytes]:
        """The cell's files (relative to the run directory) and new rerank candidate files."""
        if self.scratch is None:
            return {}
        out = {}
        for path in sorted(Path(task.cell_dir).rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                out[path.relative_to(self.scratch).as_posix()] = path.read_bytes()
        for path in sorted((self.scratch / "candidates").glob("*.npz")):
            rel = path.relative_to(self.scratch).as_posix()
            if rel not in self.sent:
                self.sent.add(rel)
                out[rel] = path.read_bytes()
        shutil.rmtree(task.cell_dir, ignore_errors=True)
        return out

    # --- jobs ----------------------------------------------------------------------------
    def execute(self, job: Job) -> Outcome:
        from harness.executors import timeouts
        t0 = time.perf_counter()
        where = placement(self.executor)
        task = self.local(job.task)
        try:
            value = getattr(self, f"_{job.kind}")(job, task)
            out = Outcome(True, value)
        except Exception as exc:  # noqa: BLE001 - reported as the cell's error
            log = self._logger(task)
            log.error("%s failed:\n%s", job.label, traceback.format_exc())
            out = Outcome(False, {"log": self._log_text()}, f"{type(exc).__name__}: {exc}")
        out.placement, out.seconds = where, round(time.perf_counter() - t0, 4)
        out.tainted = timeouts.tainted()
        return out

    def _logger(self, task):
        from harness.cell import run_logger
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        return run_logger(Path(task.run_dir))

    def _cell(self, job: Job, task, prepared=None) -> dict:
        from harness.cell import run_cell
        status = run_cell(task, self.workspace(task), self._logger(task), prepared=prepared)
        return {"status": status, "files": self._files(task), "log": self._log_text()}

    def _fit(self, job: Job, task) -> dict:
        from harness.executors.shards import fit_stage
        model, record = fit_stage(task, self.workspace(task))
        self._keep(job.model_key, model)
        if self.scratch is not None:
            try:
                model = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as exc:  # noqa: BLE001 - a model that cannot travel
                raise RuntimeError(
                    f"the fitted model cannot be shipped to shard workers "
                    f"({type(exc).__name__}: {exc}); set shards = 1 (and no shard_users) "
                    f"under [execution.models.{task.model.label}]") from exc
        return {**record, "model": model, "log": self._log_text()}

    def _shard(self, job: Job, task):
        from harness.executors.shards import shard_stage
        model = self.model(job)
        return shard_stage(task, self.workspace(task), model, job.shard, self._logger(task))

    def _finish(self, job: Job, task) -> dict:
        from harness.executors.shards import prepared_result
        model = self.model(job)
        prepared = prepared_result(task, self.workspace(task), model, job.evaluation, job.fit)
        return self._cell(job, task, prepared)

"""Run one cell task: fit the model once, run the suite's passes in order, write the cell's tables.

Failure boundaries: an error while building candidates, fitting or in the accuracy pass fails the
cell (status 'failed', traceback in run.log); an error in any later pass fails only that pass (its
rows are missing, the error is recorded in `status['passes'][name]`) and the others still run.
Thread settings are recorded and restored around the cell.
"""

from __future__ import annotations

import copy
import json
import logging
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from harness import passes as pass_registry
from harness import threads
from harness.executors.timeouts import run_pass
from harness.fitting import fit_model, new_model
from harness.io import write_json, write_npz, write_parquet
from harness.passes.base import PassContext, PassResult
from harness.task import CellTask


def cell_status(cell_dir: Path) -> dict | None:
    """The cell's status record, or None when it has not finished (ok or failed)."""
    path = Path(cell_dir) / "status.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_logger(run_dir: Path) -> logging.Logger:
    """The run's logger, writing to run_dir/run.log (one handler per process)."""
    log = logging.getLogger(f"harness.run.{Path(run_dir).resolve()}")
    log.propagate = False
    if not log.handlers:
        h = logging.FileHandler(Path(run_dir) / "run.log", encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)
    return log


def passes_for(task: CellTask) -> list:
    """The passes the task's suite declares and that apply to the cell, in run order."""
    out = []
    for p in pass_registry.all_passes():
        if p.table is not None and p.table not in task.suite.passes:
            continue
        spec = task.suite.passes.get(p.table) if p.table else None
        if p.applies_to(spec, task):
            out.append((p, spec))
    return out


def run_cell(task: CellTask, workspace=None, log: logging.Logger | None = None,
             prepared=None) -> dict:
    """Run the task (in this process) and return its status record (also in status.json).
    `prepared` (harness.executors.shards.Prepared: model, results, fit_s, seconds) supplies an
    already fitted model and finished pass results (a user-sharded cell's merged accuracy)."""
    from harness.workspace import Workspace
    ws = workspace or Workspace(task.suite, task.cache_dir, task.run_dir)
    log = log or run_logger(Path(task.run_dir))
    cell_dir = task.cell_dir
    cell_dir.mkdir(parents=True, exist_ok=True)
    m = task.model
    status = {"cell": task.key, "dataset": task.dataset.label, "split": task.split.label,
              "candidates": task.candidates.label, "model": m.label, "recommender": m.name,
              "params": m.params, "seed": task.seed, "status": "running", "code": task.code}
    thread_record: dict = {}
    t0 = time.perf_counter()
    with threads.contained(thread_record):
        try:
            _run(task, ws, log, status, cell_dir, t0, prepared)
            status["status"] = "ok"
        except Exception as exc:  # noqa: BLE001 - a crashing recommender fails its own cell
            status["status"] = "failed"
            status["error"] = f"{type(exc).__name__}: {exc}"
            log.error("cell %s failed:\n%s", task.key, traceback.format_exc())
    status["threads"] = thread_record
    if thread_record.get("restored"):
        log.warning("cell %s changed thread settings %s; restored", task.key,
                    thread_record["restored"])
    status["duration_s"] = round(time.perf_counter() - t0, 4)
    write_json(cell_dir / "status.json", status)
    return status


def _run(task: CellTask, ws, log, status: dict, cell_dir: Path, t0: float,
         prepared=None) -> None:
    split = ws.split(task.dataset, task.split)
    cand, record = ws.candidates(task, split)
    status["candidates_fingerprint"] = cand.fingerprint
    status["candidates_record"] = record
    m = task.model
    if prepared is None:
        model = fit_model(m.name, m.params, task.seed, split, task.options)
        status["fit_s"] = round(time.perf_counter() - t0, 4)
    else:
        model, status["fit_s"] = prepared.model, prepared.fit_s
    status["device"] = str(getattr(model, "device", "cpu"))
    results: dict[str, PassResult] = {}
    status["passes"] = {}
    for p, spec in passes_for(task):
        ctx = PassContext(task, task.suite, spec, split, cand, model, task.options, log,
                          task.options.quiet, dict(results),
                          fit_model=lambda split=split, options=task.options: fit_model(
                              m.name, m.params, task.seed, split, options),
                          new_model=lambda: new_model(m.name, m.params, task.seed, task.options))
        t = time.perf_counter()
        missing = [r for r in p.requires if r not in results]
        try:
            if missing:
                raise RuntimeError(f"needs the results of pass(es) {missing}, which failed")
            if prepared is not None and p.name in prepared.results:
                res = prepared.results[p.name]
            else:
                res = run_pass(p, ctx)  # with its [execution.pass_timeout_s] limit
            results[p.name] = res
            entry = {"status": "ok"}
        except Exception as exc:  # noqa: BLE001 - a failing pass fails its own rows
            if p.name == "accuracy":
                raise
            res = None
            entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            log.error("pass %s of cell %s failed:\n%s", p.name, task.key, traceback.format_exc())
        entry["seconds"] = round(time.perf_counter() - t, 4)
        if prepared is not None and p.name in prepared.seconds:
            entry["seconds"] = prepared.seconds[p.name]
        status["passes"][p.name] = entry
        status["eval_s" if p.name == "accuracy" else f"{p.name}_s"] = entry["seconds"]
        if p.name != "accuracy":
            status[p.name] = (res.record if res is not None
                              else {"error": entry["error"], **_empty_record(p.name)})
    metrics, per_user = _tables(task, split, cand, results)
    write_parquet(cell_dir / "metrics.parquet", metrics)
    write_parquet(cell_dir / "per_user.parquet", per_user)
    ev = results["accuracy"].artifacts["evaluation"]
    if task.save_runs:
        write_npz(cell_dir / "top.npz", users=ev.users, items=ev.top_items, scores=ev.top_scores)
    status["info"] = copy.deepcopy(getattr(model, "info", {}))


def _empty_record(name: str) -> dict:
    return {"scenarios": {}} if name == "efficiency" else {}


def _tables(task: CellTask, split, cand, results: dict[str, PassResult]):
    """The cell's metrics and per-user tables: every pass's rows with the constant columns."""
    const = {"suite": task.suite.name, "run_id": task.run_id, "cell": task.key,
             "dataset": task.dataset.label, "split": task.split.label,
             "split_fingerprint": split.fingerprint, "protocol": cand.name,
             "model": task.model.label, "seed": task.seed}
    frames, users = [], []
    for name, res in results.items():
        rows = res.rows.copy()
        if rows.empty:
            continue
        for col, val in const.items():
            rows[col] = val
        rows["pass"] = name
        rows["slice"] = rows["slice"] if "slice" in rows else "all"
        rows["perturbation"] = rows["perturbation"] if "perturbation" in rows else "none"
        frames.append(rows)
        if res.per_user is not None and len(res.per_user):
            pu = res.per_user.copy()
            pu.insert(0, "cell", task.key)
            pu["perturbation"] = pu["perturbation"] if "perturbation" in pu else "none"
            users.append(pu)
    from harness.results import METRIC_COLUMNS, PER_USER_COLUMNS
    metrics = pd.concat(frames, ignore_index=True)[METRIC_COLUMNS]
    metrics["k"] = metrics["k"].astype(np.int64)
    metrics["n_users"] = metrics["n_users"].astype(np.int64)
    per_user = (pd.concat(users, ignore_index=True)[PER_USER_COLUMNS] if users
                else pd.DataFrame(columns=PER_USER_COLUMNS))
    return metrics, per_user

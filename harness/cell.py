"""One cell = (dataset, split, candidates, seed, recommender): fit, evaluate, write its tables."""

from __future__ import annotations

import copy
import json
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness import registry
from harness.candidates import Candidates
from harness.efficiency.passes import safe_run_efficiency
from harness.evaluate import evaluate
from harness.io import write_json, write_npz, write_parquet
from harness.progress import bar
from harness.splits.base import Split
from harness.suite import ModelSpec, Suite


@dataclass(frozen=True)
class Cell:
    dataset: str
    split: str
    candidates: str
    model: ModelSpec
    seed: int

    @property
    def key(self) -> str:
        raw = f"{self.dataset}__{self.split}__{self.candidates}__{self.model.label}__s{self.seed}"
        return re.sub(r"[^A-Za-z0-9_.@=+-]", "-", raw)


def cell_status(cell_dir: Path) -> dict | None:
    """The cell's status record, or None when it has not finished (ok or failed)."""
    path = cell_dir / "status.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def run_cell(cell: Cell, suite: Suite, run_id: str, split: Split, get_candidates,
             cell_dir: Path, quiet: bool, keep_top: bool, log, runtime: dict | None = None) -> dict:
    """Fit and evaluate; on any exception record the failure (status 'failed') and return it."""
    status = {"cell": cell.key, "dataset": cell.dataset, "split": cell.split,
              "candidates": cell.candidates, "model": cell.model.label, "recommender": cell.model.name,
              "params": cell.model.params, "seed": cell.seed, "status": "running"}
    t0 = time.perf_counter()
    try:
        cand = get_candidates()
        status["candidates_fingerprint"] = cand.fingerprint
        model = registry.build(cell.model.name, cell.model.params, cell.seed)
        if hasattr(model, "runtime"):
            model.runtime = dict(runtime or {})
        model.fit(split, split.dataset)
        status["fit_s"] = round(time.perf_counter() - t0, 4)
        t1 = time.perf_counter()
        with bar(len(cand.users), f"  {cell.key} eval", quiet, unit="user") as pb:
            ev = evaluate(model.score, cand, list(suite.ks), list(suite.metrics),
                          suite.batch_size, keep_top=keep_top, progress=pb, model=model)
        status["eval_s"] = round(time.perf_counter() - t1, 4)
        for name, arr in ev.values.items():
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"metric {name} is not finite for some users")
        metrics, per_user = _tables(cell, suite, run_id, split, cand, ev)
        write_parquet(cell_dir / "metrics.parquet", metrics)
        write_parquet(cell_dir / "per_user.parquet", per_user)
        if keep_top:
            write_npz(cell_dir / "top.npz", users=ev.users, items=ev.top_items,
                      scores=ev.top_scores)
        status["info"] = copy.deepcopy(getattr(model, "info", {}))
        eff_spec = getattr(suite, "efficiency", None)
        if eff_spec is not None and eff_spec.applies_to(cell.model.label, cell.candidates):
            # the efficiency pass: timed, separate from and after the accuracy pass
            t2 = time.perf_counter()
            eff, status["efficiency"] = safe_run_efficiency(
                cell, suite, split, cand, model, metrics, dict(runtime or {}), quiet=quiet,
                log=log)
            if eff is not None and len(eff):
                write_parquet(cell_dir / "metrics.parquet",
                              pd.concat([metrics, eff], ignore_index=True))
            status["efficiency_s"] = round(time.perf_counter() - t2, 4)
        status["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - a crashing recommender fails its own cell
        status["status"] = "failed"
        status["error"] = f"{type(exc).__name__}: {exc}"
        log.error("cell %s failed:\n%s", cell.key, traceback.format_exc())
    status["duration_s"] = round(time.perf_counter() - t0, 4)
    write_json(cell_dir / "status.json", status)
    return status


def _tables(cell: Cell, suite: Suite, run_id: str, split: Split, cand: Candidates, ev):
    user_ids = split.dataset.user_ids[ev.users].astype(str)
    rows, per_user = [], []
    for (metric, k), values in ev.values.items():
        rows.append({"metric": metric, "k": k, "value": float(values.mean()),
                     "n_users": int(len(values))})
        per_user.append(pd.DataFrame({"user": user_ids, "metric": metric, "k": k,
                                      "value": values}))
    m = pd.DataFrame(rows)
    const = {"suite": suite.name, "run_id": run_id, "cell": cell.key, "dataset": cell.dataset,
             "split": cell.split, "split_fingerprint": split.fingerprint,
             "protocol": cand.name, "model": cell.model.label, "seed": cell.seed,
             "pass": "accuracy", "slice": "all", "perturbation": "none"}
    for col, val in const.items():
        m[col] = val
    pu = pd.concat(per_user, ignore_index=True)
    pu.insert(0, "cell", cell.key)
    pu["perturbation"] = "none"
    return m, pu

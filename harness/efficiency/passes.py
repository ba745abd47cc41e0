"""The efficiency pass of one cell: run the configured scenarios, return metrics rows + record."""

from __future__ import annotations

import traceback

import pandas as pd

from harness import registry
from harness.efficiency import scenarios as sc
from harness.efficiency.clock import CLOCK, torch_threads
from harness.efficiency.facts import device_record, model_state, scoring_device
from harness.efficiency.workload import Workload
from harness.progress import bar

CONST = ["suite", "run_id", "cell", "dataset", "split", "split_fingerprint", "protocol", "model",
         "seed", "slice", "perturbation"]


def _rows(values: dict, n_users: int, like: pd.DataFrame) -> list[dict]:
    base = like.iloc[0]
    return [{**{c: base[c] for c in CONST}, "pass": "efficiency", "metric": name, "k": 0,
             "value": float(v), "n_users": int(n_users)}
            for name, v in values.items() if v is not None]


def run_efficiency(cell, suite, split, cand, model, accuracy: pd.DataFrame, runtime: dict,
                   quiet: bool = True, log=None) -> tuple[pd.DataFrame, dict]:
    """Run `suite.efficiency`'s scenarios for a cell whose accuracy pass is finished.

    `model` is the accuracy pass's fitted model; the `fit` scenario fits a fresh instance
    (same name, parameters and seed) and the later scenarios use that one, so the accuracy
    model is never touched when `fit` runs. Returns (metrics rows with pass = 'efficiency',
    k = 0, slice 'all', perturbation 'none'; the record stored in the cell's status and the
    manifest). A failing scenario is recorded and the next one runs; rows come only from
    scenarios that finished."""
    spec = suite.efficiency
    record: dict = {"clock": CLOCK, "warmup": spec.warmup, "top_k": max(suite.ks),
                    "scenarios": {}, "unavailable": {}}
    rows: list[dict] = []
    batch = spec.batch_size or suite.batch_size
    with torch_threads(spec.threads) as threads:
        record["threads"] = threads
        if "fit" in spec.scenarios:
            spec_m = cell.model
            out = sc.fit(lambda: registry.build(spec_m.name, spec_m.params, cell.seed), split,
                         runtime, spec)
            _note(record, rows, "fit", out, len(cand.users), accuracy, log, cell)
            if out.model is not None:
                model = out.model
        record["served_by"] = ("the fit scenario's model" if model is not None and "fit" in
                               record["scenarios"] and record["scenarios"]["fit"]["status"]
                               == "ok" else "the accuracy pass's model")
        try:
            state = model_state(model)
        except Exception as exc:  # noqa: BLE001 - an odd model must not stop the pass
            state = {"params": None, "module_params": 0, "dtype": None, "error": repr(exc)}
        device = scoring_device(model, state) if "error" not in state else "cpu"
        if state.get("params") is not None:
            rows += _rows({"params": state["params"]}, len(cand.users), accuracy)
        record.update(model_state=state, dtype=state.get("dtype"), device=device_record(device),
                      batch_size=batch, model_batch_size=_int_attr(model, "batch_size"))
        wl = Workload(cand, max(suite.ks))
        order = sc.seeded_order(wl.n_users, cell.seed)
        mparams = int(state.get("module_params") or 0)
        for name in ("offline", "single_stream", "server"):
            if name not in spec.scenarios:
                continue
            if wl.n_users == 0:
                record["scenarios"][name] = {"status": "skipped", "error": "no candidate users"}
                continue
            total = {"offline": wl.n_users, "single_stream": spec.requests}.get(name)
            with bar(total or 0, f"  {cell.key} {name}", quiet, unit="req") as pb:
                if name == "offline":
                    out = sc.offline(model, wl, spec, batch, device, mparams, pb)
                elif name == "single_stream":
                    out = sc.single_stream(model, wl, spec, order, mparams, pb)
                else:
                    out = sc.server(model, wl, spec, order, pb)
            _note(record, rows, name, out, out.n_users or wl.n_users, accuracy, log, cell)
    return pd.DataFrame(rows, columns=list(accuracy.columns)), record


def _note(record, rows, name, out, n_users, accuracy, log, cell) -> None:
    entry = {"status": out.status, **out.record}
    if out.error:
        entry["error"] = out.error
        if log is not None:
            log.error("efficiency %s of cell %s failed: %s", name, cell.key, out.error)
    else:
        rows += _rows(out.values, n_users, accuracy)
        entry["metrics"] = sorted(out.values)
        record["unavailable"].update(out.record.get("unavailable", {}))
        if log is not None:
            log.info("efficiency %s of cell %s: %s", name, cell.key,
                     ", ".join(f"{k}={v:.4g}" for k, v in out.values.items()))
    record["scenarios"][name] = entry


def _int_attr(obj, name: str):
    v = getattr(obj, name, None)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def safe_run_efficiency(*args, **kwargs) -> tuple[pd.DataFrame | None, dict]:
    """`run_efficiency`, with an unexpected error of the pass itself recorded rather than
    raised (the cell's accuracy results stand)."""
    try:
        return run_efficiency(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        log = kwargs.get("log")
        if log is not None:
            log.error("efficiency pass failed:\n%s", traceback.format_exc())
        return None, {"error": f"{type(exc).__name__}: {exc}", "scenarios": {}}

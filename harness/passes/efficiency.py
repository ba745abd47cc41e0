"""The efficiency pass: throughput, latency, memory and cost of a cell's recommender, timed by
the harness after (never inside) the accuracy pass. Its machinery is in `harness.efficiency`
(config, clock, memory, stats, facts, workload, scenarios, leaderboard)."""

from __future__ import annotations

import pandas as pd

from harness.efficiency import scenarios as sc
from harness.efficiency.clock import CLOCK, torch_threads
from harness.efficiency.config import parse_efficiency
from harness.efficiency.facts import (device_record, model_state, peak_flops,
                                      scoring_device)
from harness.efficiency.workload import Workload
from harness.fitting import new_model
from harness.passes.base import Pass, PassContext, PassResult
from harness.progress import bar

# Declared directions of the pass's metrics (percentile names are generated: latency_p<q>_ms).
HIGHER_IS_BETTER = {
    "params": False, "fit_seconds": False, "peak_memory_mb": False,
    "fit_items_embedded_per_s": True, "fit_tokens_per_s": True,
    "throughput_users_per_s": True, "throughput_candidates_per_s": True,
    "throughput_tokens_per_s": True, "flops_per_s": True, "mfu": True,
    "offline_peak_memory_mb": False,
    "latency_mean_ms": False, "tokens_per_request": False, "flops_per_request": False,
    "server_achieved_qps": True, "server_latency_mean_ms": False,
}
# Generated names (latency_p<q>_ms) and any other efficiency metric follow the pass's naming
# rule `<what>_<unit>`: the unit declares the direction (costs down, rates up).
UNIT_HIGHER_IS_BETTER = {"_ms": False, "_seconds": False, "_mb": False, "_per_s": True,
                         "_qps": True, "_per_request": False}
ROW_COLUMNS = ["metric", "k", "value", "n_users"]


def _rows(values: dict, n_users: int) -> list[dict]:
    return [{"metric": name, "k": 0, "value": float(v), "n_users": int(n_users)}
            for name, v in values.items() if v is not None]


class EfficiencyPass(Pass):
    name = "efficiency"
    table = "efficiency"
    order = 90  # last: timings never overlap another pass

    def parse(self, checker, raw, suite_info: dict):
        return parse_efficiency(checker, raw, suite_info["models"], suite_info["candidates"])

    def applies_to(self, spec, task) -> bool:
        return spec.applies_to(task.model.label, task.candidates.label)

    def run(self, ctx: PassContext) -> PassResult:
        rows, record = run_efficiency(ctx)
        return PassResult(rows, None, record)

    def higher_is_better(self, metric: str) -> bool | None:
        if metric in HIGHER_IS_BETTER:
            return HIGHER_IS_BETTER[metric]
        for unit, hib in UNIT_HIGHER_IS_BETTER.items():
            if metric.endswith(unit):
                return hib
        return None

    def manifest_entry(self, spec) -> dict:
        """The `[efficiency]` configuration and how it measures (results: cells[].efficiency)."""
        from harness.efficiency.stats import FIXED, TAIL_SAMPLES
        return {"config": spec.to_dict(), "clock": CLOCK, "percentile": "nearest rank",
                "min_samples": {"fixed": {f"p{q:g}": n for q, n in FIXED.items()},
                                "other": f"ceil({TAIL_SAMPLES} / (1 - q/100))"}}

    def schema(self) -> dict:
        from harness.efficiency.config import schema
        return schema()

    def leaderboard_section(self, metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
        from harness.efficiency.leaderboard import efficiency_section
        return efficiency_section(metrics, statuses)


def run_efficiency(ctx: PassContext) -> tuple[pd.DataFrame, dict]:
    """Run the `[efficiency]` scenarios for a cell whose accuracy pass is finished.

    `model` is the accuracy pass's fitted model; the `fit` scenario fits a fresh instance
    (same name, parameters and seed) and the later scenarios use that one, so the accuracy
    model is never touched when `fit` runs. Returns (metrics rows with pass = 'efficiency',
    k = 0, slice 'all', perturbation 'none'; the record stored in the cell's status and the
    manifest). A failing scenario is recorded and the next one runs; rows come only from
    scenarios that finished."""
    spec, suite, cell, cand, model = ctx.spec, ctx.suite, ctx.task, ctx.candidates, ctx.model
    split, quiet, log = ctx.split, ctx.quiet, ctx.log
    record: dict = {"clock": CLOCK, "warmup": spec.warmup, "top_k": max(suite.ks),
                    "scenarios": {}, "unavailable": {}}
    rows: list[dict] = []
    batch = spec.batch_size or suite.batch_size
    with torch_threads(spec.threads) as threads:
        record["threads"] = threads
        if "fit" in spec.scenarios:
            spec_m = cell.model
            options = ctx.options.with_(use_cache=spec.fit_use_cache)
            out = sc.fit(lambda: new_model(spec_m.name, spec_m.params, cell.seed, options),
                         split, spec)
            _note(record, rows, "fit", out, len(cand.users), log, cell)
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
            rows += _rows({"params": state["params"]}, len(cand.users))
        dev_rec = device_record(device)
        peak = peak_flops(dev_rec, spec.peak_tflops)
        record.update(model_state=state, dtype=state.get("dtype"), device=dev_rec,
                      batch_size=batch, model_batch_size=_int_attr(model, "batch_size"),
                      peak_flops=peak)
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
                    out = sc.offline(model, wl, spec, batch, device, mparams, pb, peak)
                elif name == "single_stream":
                    out = sc.single_stream(model, wl, spec, order, mparams, pb)
                else:
                    out = sc.server(model, wl, spec, order, pb)
            _note(record, rows, name, out, out.n_users or wl.n_users, log, cell)
    return pd.DataFrame(rows, columns=ROW_COLUMNS), record


def _note(record, rows, name, out, n_users, log, cell) -> None:
    entry = {"status": out.status, **out.record}
    if out.error:
        entry["error"] = out.error
        if log is not None:
            log.error("efficiency %s of cell %s failed: %s", name, cell.key, out.error)
    else:
        rows += _rows(out.values, n_users)
        entry["metrics"] = sorted(out.values)
        record["unavailable"].update(out.record.get("unavailable", {}))
        if log is not None:
            log.info("efficiency %s of cell %s: %s", name, cell.key,
                     ", ".join(f"{k}={v:.4g}" for k, v in out.values.items()))
    record["scenarios"][name] = entry


def _int_attr(obj, name: str):
    v = getattr(obj, name, None)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


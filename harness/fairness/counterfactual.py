"""Counterfactual fairness of user text (FaiRLLM; CFaiRLLM's true-preference alignment).

For a recommender that reads text (`harness.textview.reads_text`), each user of a seeded subset
of the evaluated users is scored, on the cell's own candidates, once with a neutral user table
(the attribute's value blanked, so the attribute is absent from the user's text) and once per
value v of the attribute (the subset's values set to v; other users keep theirs, so a model that
re-encodes changed texts only re-encodes the subset's), through `model.set_text_view(TextView(
users=...))`; `set_text_view(None)` restores the clean text afterwards, also on error.

Rows (slice 'attr=v' per value, 'attr' per attribute; k = each fairness k):
- cf_jaccard / cf_serp / cf_prag: mean over users of the similarity of the value's top-k to the
  neutral top-k (`similarity`);
- cf_snsr_<sim> / cf_snsv_<sim>: range / population std over values of those means;
- cf_delta_<metric>: mean over users of metric(value) − metric(neutral) against the held-out
  truth; cf_snsr_<metric>: range over values of the mean metric(value);
- cf_reads_user_text (k 0, slice 'all'): 1 when measured, 0 for a model that does not read text:
  its lists cannot depend on the user table (invariant by construction; no other rows).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from harness.candidates import subsample_users
from harness.fairness import similarity as sim
from harness.fairness.items import valid_lists
from harness.textview import TextView, reads_text

INVARIANT = "invariant by construction: the model does not read user text (uses_text is False)"


def attribute_values(users_table, attribute: str, explicit) -> list[str]:
    """The values to swap in: the explicit ones, else the field's distinct non-empty values."""
    if explicit:
        return list(explicit)
    vals = users_table[attribute].astype(str).str.strip()
    return sorted(v for v in set(vals) if v)


def user_subset(cand, max_users: int | None, seed: int):
    """The cell's candidates restricted to a seeded subset of its users."""
    chosen = subsample_users(cand.users, max_users, seed)
    keep = np.isin(cand.users, chosen)
    return dataclasses.replace(
        cand, users=cand.users[keep],
        lists=cand.lists[keep] if cand.lists is not None else None)


def _row(metric: str, k: int, value: float, n: int, slc: str) -> dict:
    return {"metric": metric, "k": k, "value": float(value), "n_users": int(n), "slice": slc}


def run_counterfactual(ctx, spec, score) -> tuple[list[dict], dict]:
    """(rows, record) of the counterfactual part for the cell in `ctx`. `score(model, cand,
    label)` returns an `Evaluation` with top lists (the accuracy pass's scoring path)."""
    cf, model = spec.counterfactual, ctx.model
    if cf.models and ctx.task.model.label not in cf.models:
        return [], {"status": "skipped: model not in fairness.counterfactual.models"}
    if not reads_text(model):
        return [_row("cf_reads_user_text", 0, 0.0, len(ctx.candidates.users), "all")], \
            {"status": INVARIANT}
    users_table = ctx.split.dataset.users
    sub = user_subset(ctx.candidates, cf.max_users, cf.seed)
    rows = [_row("cf_reads_user_text", 0, 1.0, len(sub.users), "all")]
    record = {"status": "measured", "n_users": int(len(sub.users)), "max_users": cf.max_users,
              "seed": cf.seed, "protocol": ctx.candidates.name, "attributes": {}}
    for attr in cf.attributes:
        t0 = time.perf_counter()
        values = attribute_values(users_table, attr, cf.values_for(attr))
        evs = {}
        try:
            col = users_table.columns.get_loc(attr)
            for label in [None] + values:
                table = users_table.copy()
                table.iloc[sub.users, col] = "" if label is None else label
                name = f"{attr}={'neutral' if label is None else label}"
                model.set_text_view(TextView(users=table, label=name))
                evs[label] = score(model, sub, f"cf {name}")
        finally:
            model.set_text_view(None)
        rows += _attribute_rows(attr, values, evs, spec)
        record["attributes"][attr] = {
            "values": values, "seconds": round(time.perf_counter() - t0, 3),
            "neutral": {f"{m}@{k}": float(evs[None].values[(m, k)].mean())
                        for m in spec.metrics for k in spec.ks}}
    return rows, record


def _attribute_rows(attr: str, values: list[str], evs: dict, spec) -> list[dict]:
    rows, neutral = [], evs[None]
    for k in spec.ks:
        base = valid_lists(neutral.top_items, neutral.top_scores, k)
        means: dict[str, list[float]] = {name: [] for name in sim.SIMILARITIES}
        metric_means: dict[str, list[float]] = {m: [] for m in spec.metrics}
        for v in values:
            ev = evs[v]
            per = sim.per_user(valid_lists(ev.top_items, ev.top_scores, k), base)
            for name, arr in per.items():
                ok = np.isfinite(arr)
                mean = float(arr[ok].mean()) if ok.any() else float("nan")
                means[name].append(mean)
                if ok.any():
                    rows.append(_row(f"cf_{name}", k, mean, ok.sum(), f"{attr}={v}"))
            for m in spec.metrics:
                d = ev.values[(m, k)] - neutral.values[(m, k)]
                rows.append(_row(f"cf_delta_{m}", k, d.mean(), len(d), f"{attr}={v}"))
                metric_means[m].append(float(ev.values[(m, k)].mean()))
        n = len(neutral.users)
        for name, ms in means.items():
            if np.isfinite(ms).any():
                rows.append(_row(f"cf_snsr_{name}", k, sim.snsr(ms), n, attr))
                rows.append(_row(f"cf_snsv_{name}", k, sim.snsv(ms), n, attr))
        for m, ms in metric_means.items():
            rows.append(_row(f"cf_snsr_{m}", k, sim.snsr(ms), n, attr))
    return rows

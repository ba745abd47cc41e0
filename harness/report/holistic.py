"""The holistic leaderboard (HELM's summary, for recommenders): the first table of a report.

One table per (dataset, split fingerprint, target, candidate protocol), one row per model;
every value is the mean over seeds of run-level values:

- accuracy: the primary metric (the suite's `[evaluation] primary` as recorded in the manifest,
  default ndcg@10; else the first accuracy metric@k), higher is better;
- fairness gap: the largest user-group gap of the primary metric over the fairness pass's
  groupings (rows `<metric>_gap`; without them, max − min over the `attr=value` slices of
  the primary metric, largest over attributes), lower is better;
- exposure Gini: the fairness pass's `gini_index` at the primary k (0 = equal exposure), lower
  is better;
- robustness: the worst-case relative drop Δ%_worst = 100 (W − C) / C of the primary metric,
  W = the 'all@worst' row of the robustness pass (per user, the worst of clean and every
  perturbation run the model took; HELM), higher (closer to 0) is better;
- p90 latency (ms, lower is better) and throughput (users/s, higher is better) of the
  efficiency pass;
- mean win rate: per column, a model's win rate = (models it beats + ½ ties) / (other models
  with a value in that column); the mean over the columns where it has a value (HELM).
Columns no model has are left out; '–' = the pass did not run for that model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.perturb.summary import primary_metric, worst_drops
from harness.report.tables import Cell, Table, fmt, groups, key_title

LATENCY, THROUGHPUT, GINI = "latency_p90_ms", "throughput_users_per_s", "gini_index"


def win_rates(values: dict[str, float], higher_is_better: bool) -> dict[str, float]:
    """model -> (wins + ½ ties) / (other models with a value); NaN values take no part."""
    have = {m: v for m, v in values.items() if pd.notna(v)}
    out = {}
    for m, v in have.items():
        others = [w for n, w in have.items() if n != m]
        if others:
            wins = sum((v > w) if higher_is_better else (v < w) for w in others)
            out[m] = (wins + 0.5 * sum(v == w for w in others)) / len(others)
    return out


def _mean(g: pd.DataFrame, sel) -> pd.Series:
    return g[sel].groupby("model", sort=False)["value"].mean()


def _fairness_gap(g: pd.DataFrame, metric: str, k: int) -> pd.Series:
    gaps = g[(g["pass"] == "fairness") & (g["metric"] == f"{metric}_gap") & (g["k"] == k)]
    if len(gaps):
        return gaps.groupby(["model", "slice"], sort=False)["value"].mean().groupby(
            level=0, sort=False).max()
    sl = g[(g["metric"] == metric) & (g["k"] == k) & g["slice"].str.contains("=")
           & (g["perturbation"] == "none")]
    if sl.empty:
        return pd.Series(dtype=float)
    per = sl.groupby(["model", "slice"], sort=False)["value"].mean().reset_index()
    per["attr"] = [s.partition("=")[0] for s in per["slice"]]
    rng = per.groupby(["model", "attr"], sort=False)["value"].agg(lambda v: v.max() - v.min())
    return rng.groupby(level=0, sort=False).max()


def holistic_columns(g: pd.DataFrame, metric: str, k: int) -> list[tuple[str, bool, pd.Series]]:
    """(column label, higher is better, model -> value) for one table key."""
    acc = _mean(g, (g["pass"] == "accuracy") & (g["metric"] == metric) & (g["k"] == k)
                & (g["slice"] == "all") & (g["perturbation"] == "none"))
    drops = worst_drops(g, metric, k)
    rob = drops[drops["family"] == "all"].groupby("model", sort=False)["drop_pct"].mean()
    eff = g["pass"] == "efficiency"
    cols = [(f"accuracy ({metric}@{k})", True, acc),
            (f"fairness: largest group gap ({metric}@{k})", False, _fairness_gap(g, metric, k)),
            (f"fairness: exposure Gini@{k}", False,
             _mean(g, (g["pass"] == "fairness") & (g["metric"] == GINI) & (g["k"] == k)
                   & (g["slice"] == "all"))),
            ("robustness: worst-case Δ%", True, rob),
            ("efficiency: p90 latency ms", False, _mean(g, eff & (g["metric"] == LATENCY))),
            ("efficiency: throughput users/s", True, _mean(g, eff & (g["metric"] == THROUGHPUT)))]
    return [c for c in cols if c[2].notna().any()]


def _show(label: str, v: float) -> str:
    if pd.isna(v):
        return "–"
    if "Δ%" in label:
        return f"{v:+.1f}%"
    return fmt(v) if "accuracy" in label or "fairness" in label else f"{v:.4g}"


def holistic_tables(metrics: pd.DataFrame, primary: str | None = None) -> list[Table]:
    """The holistic tables (none when the rows have no accuracy metric)."""
    prim = primary_metric(metrics, primary)
    if prim is None:
        return []
    metric, k = prim
    out = []
    for key, g in groups(metrics):
        cols = holistic_columns(g, metric, k)
        if not cols:
            continue
        models = list(dict.fromkeys(g["model"]))
        rates = {label: win_rates(vals.to_dict(), hib) for label, hib, vals in cols}
        recs, rows = [], []
        for m in models:
            mine = [rates[label][m] for label, _, _ in cols if m in rates[label]]
            mwr = float(np.mean(mine)) if mine else np.nan
            cells = []
            for label, hib, vals in cols:
                v = vals.get(m, np.nan)
                best = vals.max() if hib else vals.min()
                cells.append(Cell(_show(label, v), best=bool(pd.notna(v) and v == best)))
                recs.append({"model": m, "column": label, "value": v,
                             "win_rate": rates[label].get(m, np.nan)})
            recs.append({"model": m, "column": "mean win rate", "value": mwr,
                         "win_rate": np.nan})
            rows.append((m, cells + [Cell(fmt(mwr, 3))]))
        top = max((r for r in recs if r["column"] == "mean win rate"),
                  key=lambda r: -1 if pd.isna(r["value"]) else r["value"])
        rows = [(m, cs[:-1] + [Cell(cs[-1].value, best=(m == top["model"]))])
                for m, cs in rows]
        out.append(Table("holistic", "", key_title(key, g), [c[0] for c in cols] +
                         ["mean win rate"], rows, pd.DataFrame(recs), key,
                         ["Mean over seeds. Win rate per column = share of the other models "
                          "beaten (ties ½); mean win rate over the columns a model has (HELM). "
                          "Robustness: worst case over each model's own perturbation runs "
                          "(text perturbations apply to text models only). Bold: best."]))
    return out

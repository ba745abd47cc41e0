"""Robustness summaries from a metrics table: the robustness section of leaderboard.md and the
numbers the holistic leaderboard reads.

- primary metric: `ndcg@10` when the rows have it, else the first accuracy metric@k.
- worst-case relative drop of model m: Δ%_worst = 100 (W - C) / C, with C the accuracy pass's
  value of the primary metric and W the value of the 'all@worst' row (per user, the worst over
  clean and every perturbation run of the model; HELM), both means over seeds.
- cost: the pass's seconds divided by the accuracy pass's seconds, per cell (statuses).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.markdown import markdown_table

KEYS = ["dataset", "split", "split_fingerprint", "protocol"]


def primary_metric(metrics: pd.DataFrame, wanted: str | None = None) -> tuple[str, int] | None:
    """(metric, k) of the primary metric: `wanted` ('ndcg@10') if present, else ndcg@10, else
    the first accuracy metric@k of the rows."""
    acc = metrics[(metrics["pass"] == "accuracy") & (metrics["slice"] == "all")
                  & (metrics["perturbation"] == "none")]
    have = list(dict.fromkeys(zip(acc["metric"], acc["k"].astype(int))))
    for cand in (wanted, "ndcg@10"):
        if cand:
            m, _, k = cand.partition("@")
            if (m, int(k or 0)) in have:
                return m, int(k or 0)
    return have[0] if have else None


def _mean(df: pd.DataFrame, by: list[str]) -> pd.Series:
    return df.groupby(by, sort=False)["value"].mean()


def worst_drops(metrics: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    """Per (KEYS..., model): clean C, W per '<family>@worst' label and Δ% = 100 (W - C) / C."""
    sel = (metrics["metric"] == metric) & (metrics["k"] == k) & (metrics["slice"] == "all")
    clean = _mean(metrics[sel & (metrics["pass"] == "accuracy")
                          & (metrics["perturbation"] == "none")], KEYS + ["model"])
    rob = metrics[sel & (metrics["pass"] == "robustness")
                  & metrics["perturbation"].str.endswith("@worst")]
    w = _mean(rob, KEYS + ["model", "perturbation"]).rename("worst").reset_index()
    w["clean"] = [clean.get(tuple(r[c] for c in KEYS + ["model"]), np.nan)
                  for _, r in w.iterrows()]
    w["drop_pct"] = 100 * (w["worst"] - w["clean"]) / w["clean"].where(w["clean"] != 0)
    w["family"] = [p.rpartition("@")[0] for p in w["perturbation"]]
    return w


def _fmt(v, digits=4) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.{digits}f}"


def _pct(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:+.1f}%"


def leaderboard_lines(metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
    """The '## Robustness' section of leaderboard.md (empty without robustness rows)."""
    if metrics.empty or not (metrics["pass"] == "robustness").any():
        return []
    prim = primary_metric(metrics)
    if prim is None:
        return []
    metric, k = prim
    label = f"{metric}@{k}"
    cost = {s["cell"]: (s.get("robustness_s"), s.get("eval_s")) for s in statuses}
    rob = metrics[metrics["pass"] == "robustness"]
    drops = worst_drops(metrics, metric, k)
    lines = ["## Robustness\n"]
    for key, g in rob.groupby(KEYS, sort=False):
        d = drops[(drops[KEYS] == pd.Series(dict(zip(KEYS, key)))).all(axis=1)]
        families = [f for f in dict.fromkeys(d["family"]) if f != "all"] + (
            ["all"] if (d["family"] == "all").any() else [])
        models = list(dict.fromkeys(g["model"]))
        runs = [p for p in dict.fromkeys(g["perturbation"]) if not p.endswith("@worst")]
        lines.append(f"### {key[0]} · {key[1]} ({key[2]}) · {key[3]}\n")
        lines.append(f"Worst case (HELM: per user, the worst of clean and every run of the "
                     f"family) of {label}, as Δ% vs clean; stability vs the clean top-{k}, mean "
                     "over runs; cost = pass seconds / accuracy-pass seconds.\n")
        head = ["model", f"clean {label}"] + [f"worst {f} Δ%" for f in families] + [
            f"jaccard@{k}", f"rbo@{k}", "kendall τ", "cost ×"]
        rows = []
        for m in models:
            dm = d[d.model == m].set_index("family")
            gm = g[g.model == m]
            stab = [gm[(gm.metric == s) & (gm.k == kk)]["value"].mean()
                    for s, kk in (("jaccard", k), ("rbo", k), ("kendall_tau", 0))]
            cells = [c for c in dict.fromkeys(gm["cell"])]
            ratios = [cost[c][0] / cost[c][1] for c in cells if c in cost and cost[c][0]
                      and cost[c][1]]
            clean = dm["clean"].iloc[0] if len(dm) else np.nan
            rows.append([m, _fmt(clean)] + [_pct(dm["drop_pct"].get(f)) for f in families]
                        + [_fmt(v, 3) for v in stab]
                        + [f"{np.mean(ratios):.1f}" if ratios else "–"])
        lines += [markdown_table(head, rows), ""]
        lines.append(f"{label} per run (Δ% vs clean):\n")
        val = _mean(g[(g.metric == metric) & (g.k == k)], ["model", "perturbation"])
        dm = {m: d[d.model == m]["clean"].iloc[0] if (d.model == m).any() else np.nan
              for m in models}
        body = []
        for p in runs:
            body.append([p] + [f"{_fmt(val[(m, p)])} ({_pct(100 * (val[(m, p)] - dm[m]) / dm[m])})"
                               if (m, p) in val.index and dm[m] else "–" for m in models])
        lines += [markdown_table(["perturbation"] + models, body), ""]
    return lines

"""Generic tables for the fairness, robustness and efficiency rows of a metrics table.

Same grouping as the leaderboards (dataset, split fingerprint, target, candidate protocol).
Every cell is the mean over seeds of the run-level value, with '± sd' (sample sd over seeds,
ddof 1) when there are several seeds.

- fairness (slice != all, or pass = fairness): item exposure, exposure by item group, per
  metric@k and slice attribute (the part of 'attr=value' before '=') models x slice values with
  the value of slice 'all' first, gap = max - min, its CI and Holm-adjusted p, counterfactual
  similarity (`harness.fairness.report`).
- robustness (perturbation = 'name@severity' != none): for the primary metric@k (default
  ndcg@10), per slice and perturbation name, models x (clean, then severities ascending), then
  worst Δ% = 100 (worst - clean) / clean, worst = the lowest value (highest for
  lower-is-better metrics); a summary per table key (`robustness_summary_tables`): HELM's
  worst case per family and the mean top-k stability.
- efficiency (pass = efficiency): models x metric[@k]; best per column bold, lower is better
  for times, latencies and memory (directions declared by each pass: `higher_is_better`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.report.tables import (Cell, Table, col_label, fmt, groups, key_title,
                                   section_of)

def higher_is_better(metric: str, pass_name: str = "accuracy") -> bool:
    """The direction the pass that produced `metric` declares (harness.passes)."""
    from harness.passes import higher_is_better as declared
    return declared(pass_name, metric)


def parse_perturbation(p: str) -> tuple[str, float]:
    """'typo@0.2' -> ('typo', 0.2); 'none' -> ('none', 0.0); no '@' -> (p, nan)."""
    if p == "none":
        return "none", 0.0
    name, _, sev = p.rpartition("@")
    try:
        return name, float(sev)
    except ValueError:
        return p, float("nan")


def _agg(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.groupby(by, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()


def _num(x: float, general: bool) -> str:
    return ("–" if pd.isna(x) else f"{x:.4g}") if general else fmt(x)


def _text(row, general: bool = False) -> str:
    """'mean ± sd' (sd only with several seeds); general: 4 significant digits."""
    if row is None or pd.isna(row["mean"]):
        return "–"
    sd = (f" ± {_num(row['std'], general)}" if row["count"] > 1 and pd.notna(row["std"])
          else "")
    return _num(row["mean"], general) + sd


def _models(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"]))


def fairness_tables(metrics: pd.DataFrame) -> list[Table]:
    """Exposure, item-group, user-group and counterfactual tables (harness.fairness.report)."""
    from harness.fairness.report import fairness_tables as tables
    return tables(metrics)


def robustness_tables(metrics: pd.DataFrame, primary: str | None = None) -> list[Table]:
    """Degradation tables of the primary metric (see `harness.perturb.summary`) per
    perturbation name: rows of an accuracy metric at a numeric severity; worst-case rows
    ('<family>@worst') and the pass's own metrics (delta_*, jaccard, rbo, kendall_tau) are in
    `robustness_summary_tables`."""
    from harness.perturb.summary import primary_metric
    sec = section_of(metrics)
    rob, acc = metrics[sec == "robustness"], metrics[sec == "accuracy"]
    prim = primary_metric(metrics, primary)
    if prim is not None:
        rob = rob[(rob["metric"] == prim[0]) & (rob["k"] == prim[1])
                  & ~rob["perturbation"].str.endswith("@worst")]
    out = []
    for key, g in groups(rob):
        parsed = [parse_perturbation(p) for p in g["perturbation"]]
        g = g.assign(pname=[p[0] for p in parsed], severity=[p[1] for p in parsed])
        base = acc
        for f, v in key.items():
            base = base[base[f] == v]
        for (metric, k, slc, pname), h in g.groupby(["metric", "k", "slice", "pname"],
                                                   sort=False, dropna=False):
            a = _agg(h, ["model", "severity", "perturbation"])
            sevs = sorted(set(a["severity"]), key=lambda x: (np.isnan(x), x))
            b = _agg(base[(base.metric == metric) & (base.k == k) & (base.slice == slc)],
                     ["model"])
            hib = higher_is_better(metric, "robustness")
            rows, recs = [], []
            for m in _models(h):
                r0 = b[b.model == m]
                clean = r0.iloc[0]["mean"] if len(r0) else np.nan
                cells = [Cell(_text(r0.iloc[0]) if len(r0) else "–")]
                recs.append({"model": m, "severity": 0.0, "perturbation": "none",
                             "mean": clean, "std": r0.iloc[0]["std"] if len(r0) else np.nan,
                             "count": r0.iloc[0]["count"] if len(r0) else 0})
                vals = []
                for s in sevs:
                    r = a[(a.model == m) & ((a.severity == s) | (a.severity.isna()
                                                                 & np.isnan(s)))]
                    cells.append(Cell(_text(r.iloc[0]) if len(r) else "–"))
                    if len(r):
                        vals.append(r.iloc[0]["mean"])
                        recs.append({"model": m, **r.iloc[0][
                            ["severity", "perturbation", "mean", "std", "count"]].to_dict()})
                worst = (min(vals) if hib else max(vals)) if vals else np.nan
                drop = (100 * (worst - clean) / clean if clean and pd.notna(clean)
                        else np.nan)
                cells.append(Cell(fmt(drop, 1)))
                rows.append((m, cells))
            data = pd.DataFrame(recs).assign(metric=metric, k=k, slice=slc, name=pname)
            cols = (["clean"] + [pname if np.isnan(s) else f"{pname}@{s:g}" for s in sevs]
                    + ["worst Δ%"])
            where = "" if slc == "all" else f" · slice {slc}"
            title = f"{col_label(metric, k)} under {pname}{where} · {key_title(key, h)}"
            out.append(Table("robustness", "", title, cols, rows, data, key,
                             ["Mean over seeds (± sd over seeds); clean = the accuracy pass; "
                              "worst Δ% = 100 (worst − clean) / clean."]))
    return out


def robustness_summary_tables(metrics: pd.DataFrame, primary: str | None = None) -> list[Table]:
    """Per table key, models x (clean primary metric, worst-case Δ% per perturbation family and
    over all runs, mean Jaccard@k / RBO@k / Kendall τ over the runs). Worst case (HELM): per
    user, the worst of clean and every run of the family; Δ% = 100 (W − C) / C."""
    from harness.perturb.summary import primary_metric, worst_drops
    prim = primary_metric(metrics, primary)
    rob = metrics[metrics["pass"] == "robustness"]
    if prim is None or rob.empty:
        return []
    metric, k = prim
    out = []
    for key, g in groups(rob):
        full = metrics
        for f, v in key.items():
            full = full[full[f] == v]
        d = worst_drops(full, metric, k)
        if d.empty:
            continue
        fams = [f for f in dict.fromkeys(d["family"]) if f != "all"] + ["all"]
        stab = [(s, kk) for s, kk in (("jaccard", k), ("rbo", k), ("kendall_tau", 0))
                if ((g.metric == s) & (g.k == kk)).any()]
        rows, recs = [], []
        for m in _models(g):
            dm = d[d.model == m].groupby("family")["drop_pct"].mean()
            clean = d[d.model == m]["clean"].mean()
            cells = [Cell(fmt(clean))] + [Cell(fmt(dm.get(f, np.nan), 1)) for f in fams]
            recs += [{"model": m, "column": f"worst {f} Δ%", "mean": dm.get(f, np.nan)}
                     for f in fams]
            for s, kk in stab:
                v = g[(g.model == m) & (g.metric == s) & (g.k == kk)]["value"].mean()
                cells.append(Cell(fmt(v, 3)))
                recs.append({"model": m, "column": col_label(s, kk), "mean": v})
            rows.append((m, cells))
        cols = [f"clean {metric}@{k}"] + [f"worst {f} Δ%" for f in fams] + [
            col_label(s, kk) for s, kk in stab]
        out.append(Table("robustness-summary", "", f"{metric}@{k} · {key_title(key, g)}", cols,
                         rows, pd.DataFrame(recs), key,
                         ["Worst case per user over clean and every run of a family (HELM); "
                          "Δ% = 100 (worst − clean) / clean; stability vs the clean top-k, "
                          "mean over runs and seeds."]))
    return out


def efficiency_tables(metrics: pd.DataFrame) -> list[Table]:
    eff = metrics[section_of(metrics) == "efficiency"]
    out = []
    for key, g in groups(eff):
        g = g.assign(col=[col_label(m, k) for m, k in zip(g["metric"], g["k"])])
        a = _agg(g, ["model", "col", "metric"])
        cols = list(dict.fromkeys(g["col"]))
        best = {}
        for c in cols:
            s = a[a.col == c]
            hib = higher_is_better(s["metric"].iloc[0], "efficiency")
            best[c] = s["mean"].max() if hib else s["mean"].min()
        rows = []
        for m in _models(g):
            cells = []
            for c in cols:
                r = a[(a.model == m) & (a.col == c)]
                cells.append(Cell(_text(r.iloc[0], True), best=bool(np.isclose(r.iloc[0]["mean"],
                                                                         best[c])))
                             if len(r) else Cell("–"))
            rows.append((m, cells))
        out.append(Table("efficiency", "", key_title(key, g), cols, rows,
                         a.rename(columns={"col": "column"}), key,
                         ["Mean over seeds (± sd over seeds). Bold: best per column (lowest "
                          "for latency, time and memory)."]))
    return out

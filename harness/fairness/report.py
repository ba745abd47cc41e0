"""Fairness tables of `harness report` (the fairness section; `harness.report.sections` calls
`fairness_tables`). Same grouping as the leaderboards; every number is the mean over seeds of
the run-level value, '± sd' (ddof 1) with several seeds.

- exposure: models x item metric@k (coverage, Gini, entropy, ARP, APLT, popularity lift; the
  seeded random ranker's values next to them under per-user candidate lists);
- item groups (per item grouping and k): each model's position-discounted exposure share per
  group, × its ratio to the catalog share, then the disparities; rows 'catalog share' and
  'held-out share' give the reference shares;
- user groups (per metric@k and user grouping, also slice rows of other passes): the value of
  slice 'all', each group's value [its bootstrap CI], the gap (max − min) [its CI] and the
  permutation p, Holm-adjusted over the groupings (raw p after it);
- counterfactual (per k and attribute): per model, each value's mean similarity to the neutral
  list (Jaccard, SERP*, PRAG*) and accuracy change, then SNSR and SNSV over the values; models
  that do not read text: 'invariant by construction'.
The tidy data of each table carries `kind` (exposure, item_groups, user_groups, counterfactual)
for the figures (`harness.fairness.figures`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.fairness.leaderboard import ITEM
from harness.report.tables import Cell, Table, col_label, fmt, groups, key_title, section_of

SIMS = (("jaccard", "Jaccard"), ("serp", "SERP*"), ("prag", "PRAG*"))
AUX = ("_ci_low", "_ci_high", "_gap", "_ratio", "_gap_p", "_gap_p_holm", "_gap_ci_low",
       "_gap_ci_high")


def _agg(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return df.groupby(by, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()


def _text(mean, std=np.nan, count=1, digits: int | None = None) -> str:
    if mean is None or pd.isna(mean):
        return "–"
    f = (lambda x: f"{x:.4g}") if digits is None else (lambda x: fmt(x, digits))
    return f(mean) + (f" ± {f(std)}" if count > 1 and pd.notna(std) else "")


def _lookup(df: pd.DataFrame) -> dict:
    a = _agg(df, ["model", "metric", "k", "slice"])
    keys = zip(a["model"], a["metric"], a["k"], a["slice"])
    return dict(zip(keys, zip(a["mean"], a["std"], a["count"])))


def _val(look: dict, *key) -> float:
    return look.get(key, (np.nan,))[0]


def _models(df: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(df["model"]))


def exposure_table(key: dict, g: pd.DataFrame) -> list[Table]:
    from harness.passes.fairness import direction
    rows_in = g[(g["slice"] == "all") & g["metric"].isin(ITEM + [f"{m}_random" for m in ITEM])]
    if rows_in.empty:
        return []
    look = _lookup(rows_in)
    cols = [(m, k) for m in ITEM for k in sorted(set(rows_in[rows_in.metric == m]["k"]))]
    models = _models(rows_in)
    best = {}
    for m, k in cols:
        vals = [v for v in (_val(look, x, m, k, "all") for x in models) if pd.notna(v)]
        if vals:
            best[(m, k)] = max(vals) if direction(m)[0] else min(vals)
    rows, recs = [], []
    for model in models:
        cells = []
        for m, k in cols:
            mean, std, count = look.get((model, m, k, "all"), (np.nan, np.nan, 0))
            cells.append(Cell(_text(mean, std, count), best=bool(
                (m, k) in best and pd.notna(mean) and np.isclose(mean, best[(m, k)]))))
            recs.append({"model": model, "metric": m, "k": k, "mean": mean, "std": std,
                         "count": count})
        rows.append((model, cells))
    notes = ["Mean over seeds (± sd). Bold: best per column (higher coverage, entropy, APLT; "
             "lower Gini, ARP, popularity lift). Entropy in bits; ARP in train users per item."]
    if (rows_in["metric"].str.endswith("_random")).any():
        label = "random ranker (same lists)"
        cells = []
        for m, k in cols:
            mean, std, count = look.get((models[0], f"{m}_random", k, "all"), (np.nan,) * 3)
            cells.append(Cell(_text(mean, std, count)))
            recs.append({"model": label, "metric": m, "k": k, "mean": mean, "std": std,
                         "count": count})
        rows.append((label, cells))
        notes.append("Per-user candidate lists: the last row is a seeded random ranker on the "
                     "same lists; compare each model with it, not with other protocols.")
    return [Table("fairness", "", f"Item exposure and popularity · {key_title(key, rows_in)}",
                  [col_label(m, k) for m, k in cols], rows,
                  pd.DataFrame(recs).assign(kind="exposure"), key, notes)]


def item_group_tables(key: dict, g: pd.DataFrame) -> list[Table]:
    rows_in = g[g["slice"].str.startswith("item:")]
    out = []
    if rows_in.empty:
        return out
    look = _lookup(rows_in)
    grouping = rows_in["slice"].str[5:].str.partition("=")[0]
    for (name, k), h in rows_in.groupby([grouping, "k"], sort=False):
        labels = list(dict.fromkeys(s.partition("=")[2] for s in h["slice"] if "=" in s))
        models = _models(h)
        rows, recs = [], []
        for model in models:
            cells = []
            for lab in labels:
                s = f"item:{name}={lab}"
                share = look.get((model, "exposure_share", k, s), (np.nan, np.nan, 0))
                ratio = _val(look, model, "exposure_ratio_catalog", k, s)
                cells.append(Cell(_text(*share), detail=f"×{ratio:.3g}" if pd.notna(ratio)
                                  else ""))
                recs.append({"model": model, "slice": lab, "exposure": share[0],
                             "catalog": _val(look, model, "catalog_share", k, s),
                             "relevance": _val(look, model, "relevance_share", k, s),
                             "ratio_catalog": ratio,
                             "ratio_relevance": _val(look, model, "exposure_ratio_relevance",
                                                     k, s)})
            for d in ("catalog", "relevance"):
                cells.append(Cell(_text(*look.get((model, f"exposure_disparity_{d}", k,
                                                   f"item:{name}"), (np.nan, np.nan, 0)))))
            rows.append((model, cells))
        for ref, label in (("catalog_share", "catalog share"), ("relevance_share",
                                                                "held-out share")):
            vals = [_val(look, models[0], ref, k, f"item:{name}={lab}") for lab in labels]
            rows.append((label, [Cell(_text(v)) for v in vals] + [Cell(""), Cell("")]))
        cols = labels + ["disparity (catalog)", "disparity (held-out)"]
        title = f"Exposure share by item {name} @{k} · {key_title(key, h)}"
        notes = ["Position-discounted exposure share (1/log2(rank+1)) of each group, × = ratio "
                 "to the group's catalog share; disparity = std / mean over groups of that "
                 "ratio (0 = exposure proportional to the catalog; 'held-out': to the share of "
                 "held-out relevant items)."]
        out.append(Table("fairness", "", title, cols, rows,
                         pd.DataFrame(recs).assign(k=k, grouping=name, kind="item_groups"), key,
                         notes))
    return out


def _is_group_metric(metric: str, slc: str) -> bool:
    return ("=" in slc and not slc.startswith("item:") and not metric.startswith("cf_")
            and not metric.endswith(("_ci_low", "_ci_high")))


def user_group_tables(key: dict, g: pd.DataFrame, base: pd.DataFrame) -> list[Table]:
    mask = [_is_group_metric(m, s) for m, s in zip(g["metric"], g["slice"])]
    main = g[mask]
    out = []
    if main.empty:
        return out
    look = _lookup(g)
    main = main.assign(attr=main["slice"].str.partition("=")[0])
    for (metric, k, attr), h in main.groupby(["metric", "k", "attr"], sort=False):
        slices = sorted(set(h["slice"]))
        b = _agg(base[(base.metric == metric) & (base.k == k)], ["model"])
        show_all = not b.empty
        rows, recs = [], []
        for m in _models(h):
            cells, vals = [], []
            if show_all:
                r = b[b.model == m]
                cells.append(Cell(_text(*r.iloc[0][["mean", "std", "count"]], digits=4)
                                  if len(r) else "–"))
                if len(r):
                    recs.append({"model": m, "slice": "all",
                                 **r.iloc[0][["mean", "std", "count"]].to_dict()})
            for s in slices:
                mean, std, count = look.get((m, metric, k, s), (np.nan, np.nan, 0))
                lo, hi = (_val(look, m, f"{metric}_ci_{x}", k, s) for x in ("low", "high"))
                ci = f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else ""
                cells.append(Cell(_text(mean, std, count, 4), detail=ci))
                if pd.notna(mean):
                    vals.append(mean)
                    recs.append({"model": m, "slice": s, "mean": mean, "std": std,
                                 "count": count, "ci_low": lo, "ci_high": hi})
            gap = _val(look, m, f"{metric}_gap", k, attr)
            if pd.isna(gap):
                gap = max(vals) - min(vals) if len(vals) > 1 else np.nan
            lo, hi = (_val(look, m, f"{metric}_gap_ci_{x}", k, attr) for x in ("low", "high"))
            p, ph = (_val(look, m, f"{metric}_gap_{x}", k, attr) for x in ("p", "p_holm"))
            cells += [Cell(fmt(gap)), Cell(f"[{fmt(lo)}, {fmt(hi)}]" if pd.notna(lo) else "–"),
                      Cell("–" if pd.isna(ph) else f"{ph:.3g}",
                           detail="" if pd.isna(p) else f"(raw {p:.3g})")]
            recs.append({"model": m, "slice": "gap(max-min)", "mean": gap, "ci_low": lo,
                         "ci_high": hi, "p": p, "p_holm": ph,
                         "ratio": _val(look, m, f"{metric}_ratio", k, attr)})
            rows.append((m, cells))
        cols = (["all"] if show_all else []) + [_group_label(h, s) for s in slices] + \
            ["gap (max−min)", "gap CI", "p (Holm)"]
        data = pd.DataFrame(recs).assign(metric=metric, k=k, attribute=attr, kind="user_groups")
        whole = base[(base.metric == metric) & (base.k == k)]
        title = f"{col_label(metric, k)} by {attr} · {key_title(key, whole if len(whole) else h)}"
        out.append(Table("fairness", "", title, cols, rows, data, key,
                         ["Mean over seeds (± sd) [bootstrap CI]; gap = max − min of the group "
                          "means [BCa CI of the highest − lowest group]; p: permutation test of "
                          "the gap, Holm-adjusted over the groupings of this metric@k (raw p "
                          "in brackets). Groups below min_group_size are not shown."]))
    return out


def _group_label(h: pd.DataFrame, s: str) -> str:
    ns = set(h[h.slice == s]["n_users"])
    value = s.partition("=")[2]
    return f"{value} (n={ns.pop()})" if len(ns) == 1 else value


def counterfactual_tables(key: dict, g: pd.DataFrame) -> list[Table]:
    cf = g[g["metric"].str.startswith("cf_")]
    if cf.empty:
        return []
    look = _lookup(cf)
    reads = cf[cf.metric == "cf_reads_user_text"].groupby("model")["value"].max()
    invariant = [m for m, v in reads.items() if v == 0]
    sims = cf[cf.metric == "cf_jaccard"]
    deltas = sorted({m[9:] for m in cf.metric if m.startswith("cf_delta_")})
    out = []
    pairs = list(dict.fromkeys((k, s.partition("=")[0]) for k, s in zip(sims["k"],
                                                                       sims["slice"])))
    if not pairs and invariant:
        return [Table("fairness", "", f"Counterfactual user text · {key_title(key, cf)}",
                      ["counterfactual"], [(m, [Cell("invariant by construction")])
                                           for m in invariant],
                      pd.DataFrame({"model": invariant, "kind": "counterfactual_invariant"}),
                      key, ["These models do not read user text: their lists cannot depend on "
                            "the user table."])]
    for k, attr in pairs:
        h = cf[(cf.k == k) & (cf.slice.str.partition("=")[0] == attr)]
        values = list(dict.fromkeys(s.partition("=")[2] for s in h["slice"] if "=" in s))
        cols = [label for _, label in SIMS] + [f"Δ{col_label(m, k)}" for m in deltas]
        rows, recs = [], []
        for model in _models(h):
            for v in values:
                s = f"{attr}={v}"
                cells = [Cell(_text(*look.get((model, f"cf_{n}", k, s), (np.nan, np.nan, 0))))
                         for n, _ in SIMS]
                cells += [Cell(_text(*look.get((model, f"cf_delta_{m}", k, s),
                                               (np.nan, np.nan, 0)))) for m in deltas]
                rows.append((f"{model} · {v}", cells))
                recs.append({"model": model, "slice": v, **{n: _val(look, model, f"cf_{n}", k, s)
                                                             for n, _ in SIMS}})
            for stat in ("snsr", "snsv"):
                cells = [Cell(_text(*look.get((model, f"cf_{stat}_{n}", k, attr),
                                              (np.nan, np.nan, 0)))) for n, _ in SIMS]
                cells += [Cell(_text(*look.get((model, f"cf_snsr_{m}", k, attr),
                                               (np.nan, np.nan, 0))) if stat == "snsr"
                               else "–") for m in deltas]
                rows.append((f"{model} · {stat.upper()}", cells))
        for model in invariant:
            rows.append((model, [Cell("invariant by construction")] + [Cell("")] *
                         (len(cols) - 1)))
        data = pd.DataFrame(recs, columns=["model", "slice"] + [n for n, _ in SIMS])
        title = f"Counterfactual {attr} @{k} · {key_title(key, h)}"
        out.append(Table("fairness", "", title, cols, rows,
                         data.assign(k=k, attribute=attr, kind="counterfactual"), key,
                         ["Mean over users of the similarity of each value's top-k to the "
                          "neutral top-k (attribute blanked), FaiRLLM's Jaccard, SERP* and "
                          "PRAG*; Δ = accuracy change vs the neutral text; SNSR / SNSV = range "
                          "/ std over the values (SNSR of the Δ column: range of the metric)."],
                         row_header="model · value"))
    return out


def fairness_tables(metrics: pd.DataFrame) -> list[Table]:
    """Every fairness table of a merged metrics frame (see the module docstring)."""
    sec = section_of(metrics)
    fair, acc = metrics[sec == "fairness"], metrics[sec == "accuracy"]
    out = []
    for key, g in groups(fair):
        base = acc
        for f, v in key.items():
            base = base[base[f] == v]
        own = g[g["pass"] == "fairness"]
        out += exposure_table(key, own) + item_group_tables(key, own)
        out += user_group_tables(key, g, base) + counterfactual_tables(key, own)
    return out

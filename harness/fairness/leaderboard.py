"""The fairness section of leaderboard.md, per (dataset, split, candidates): item exposure and
popularity (models x metric@k), user-group gaps (gap [CI] with Holm-adjusted p, per grouping),
too-small groups, counterfactual sensitivity (SNSR / SNSV per attribute, or 'invariant by
construction') and the pass's cost next to the accuracy pass's. Values: mean over seeds."""

from __future__ import annotations

import pandas as pd

from harness.markdown import markdown_table

ITEM = ["item_coverage", "gini_index", "entropy", "arp", "aplt", "pop_lift"]
KEYS = ["dataset", "split", "split_fingerprint", "protocol"]


def _f(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.4g}"


def _p(v) -> str:
    return "" if pd.isna(v) else (" p<0.001" if v < 0.001 else f" p={v:.3f}")


def _mean(g: pd.DataFrame) -> pd.Series:
    return g.groupby(["model", "metric", "k", "slice"], sort=False)["value"].mean()


def _item_table(mean: pd.Series, models: list[str]) -> list[str]:
    idx = mean.reset_index()
    cols = [(m, k) for m in ITEM for k in sorted(set(idx[idx.metric == m]["k"]))]
    if not cols:
        return []
    rows = [[model] + [_f(mean.get((model, m, k, "all"))) for m, k in cols] for model in models]
    return ["Item exposure and popularity (coverage, Gini, entropy in bits, ARP, APLT, "
            "popularity lift):\n", markdown_table(["model"] + [f"{m}@{k}" for m, k in cols], rows),
            ""]


def _gap_table(mean: pd.Series, models: list[str]) -> list[str]:
    idx = mean.reset_index()
    gaps = idx[idx.metric.str.endswith("_gap")]
    metrics = list(dict.fromkeys(zip(gaps["metric"].str[:-4], gaps["k"])))
    groupings = list(dict.fromkeys(gaps["slice"]))
    if not metrics:
        return []
    rows = []
    for model in models:
        for m, k in metrics:
            cells = []
            for g in groupings:
                v = mean.get((model, f"{m}_gap", k, g))
                lo, hi = (mean.get((model, f"{m}_gap_ci_{s}", k, g)) for s in ("low", "high"))
                p = mean.get((model, f"{m}_gap_p_holm", k, g))
                cells.append("–" if v is None else f"{_f(v)} [{_f(lo)}, {_f(hi)}]{_p(p)}")
            rows.append([model, f"{m}@{k}"] + cells)
    return ["User-group gaps (max − min of group means [bootstrap CI], permutation p "
            "Holm-adjusted over the groupings):\n",
            markdown_table(["model", "metric"] + groupings, rows), ""]


def _cf_table(mean: pd.Series, models: list[str], invariant: set[str]) -> list[str]:
    idx = mean.reset_index()
    sn = idx[idx.metric.isin(["cf_snsr_jaccard", "cf_snsr_prag"])]
    cols = list(dict.fromkeys(zip(sn["k"], sn["slice"])))
    if not cols and not invariant:
        return []
    rows = []
    for model in models:
        if model in invariant:
            rows.append([model] + ["invariant by construction"] * max(1, len(cols)))
            continue
        cells = []
        for k, a in cols:
            get = lambda s: mean.get((model, s, k, a))  # noqa: E731
            cells.append(f"J {_f(get('cf_snsr_jaccard'))}/{_f(get('cf_snsv_jaccard'))} · "
                         f"PRAG* {_f(get('cf_snsr_prag'))}/{_f(get('cf_snsv_prag'))}")
        rows.append([model] + (cells or ["–"]))
    head = ["model"] + ([f"{a} SNSR/SNSV @{k}" for k, a in cols] or ["counterfactual"])
    return ["Counterfactual user text (FaiRLLM: SNSR / SNSV over attribute values of the "
            "similarity to the neutral list):\n", markdown_table(head, rows), ""]


def _cost_table(cells: list[dict]) -> list[str]:
    rows = []
    for s in cells:
        passes = s.get("passes", {})
        acc = passes.get("accuracy", {}).get("seconds")
        fair = passes.get("fairness", {}).get("seconds")
        if acc is None or fair is None:
            continue
        cf = (s.get("fairness") or {}).get("seconds", {}).get("counterfactual")
        rows.append([s["model"], str(s.get("seed")), f"{acc:.3g}", f"{fair:.3g}",
                     f"{fair / acc:.3g}" if acc > 0 else "–", "–" if cf is None else f"{cf:.3g}"])
    if not rows:
        return []
    return ["Cost (wall seconds; the pass reuses the accuracy pass's lists, only counterfactual "
            "texts are scored again):\n",
            markdown_table(["model", "seed", "accuracy s", "fairness s", "fairness / accuracy",
                            "counterfactual s"], rows), ""]


def _too_small(cells: list[dict]) -> list[str]:
    found: dict[tuple[str, str], list[str]] = {}
    for s in cells:
        for name, rec in ((s.get("fairness") or {}).get("users") or {}).items():
            small = rec.get("too_small") or {}
            if small:
                listing = ", ".join(f"{k} (n={v})" for k, v in small.items())
                found.setdefault((name, listing), []).append(s["model"])
    out = [f"- {name}: {listing} ({'every model' if len(ms) == len(cells) else ', '.join(ms)})"
           for (name, listing), ms in found.items()]
    return ["Groups below min_group_size (not reported):\n"] + out + [""] if out else []


def fairness_section(metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
    """Markdown lines (empty when the run has no fairness rows)."""
    fair = metrics[metrics["pass"] == "fairness"] if len(metrics) else metrics
    if fair.empty:
        return []
    lines = ["## Fairness\n"]
    for (ds, sp, fp, proto), g in fair.groupby(KEYS, sort=False):
        cells = [s for s in statuses if s.get("cell") in set(g["cell"])]
        models = list(dict.fromkeys(g["model"]))
        mean = _mean(g)
        invariant = set(g[(g.metric == "cf_reads_user_text") & (g.value == 0)]["model"])
        lines.append(f"### {ds} · split {sp} ({fp}) · candidates {proto}\n")
        lines += (_item_table(mean, models) + _gap_table(mean, models)
                  + _too_small(cells) + _cf_table(mean, models, invariant) + _cost_table(cells))
    return lines

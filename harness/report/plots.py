"""Report figures (matplotlib, PNG + SVG next to the tables).

Figures are built with `matplotlib.figure.Figure` directly (its own Agg canvas), never pyplot,
so no process-wide backend or state is touched.

- metric per k: per accuracy table, one panel per metric with several k; a line per model,
  the band is the bootstrap CI.
- fairness: exposure share per item group vs catalog share, metric per user group with CIs,
  similarity per counterfactual attribute value (`harness.fairness.figures`).
- degradation: per robustness table, the metric against perturbation severity (0 = clean).
- quality vs p90 latency: per table key with efficiency metric `latency_p90_ms` and an accuracy
  table, each model at (p90 latency, first leaderboard column), the Pareto front drawn (see
  `pareto_front`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LATENCY = "latency_p90_ms"


def pareto_front(cost, quality) -> list[int]:
    """Indices of the points no other point dominates, by ascending cost. j dominates i when
    cost_j <= cost_i and quality_j >= quality_i, one of them strict (lower cost, higher
    quality are better). NaN points are never on the front."""
    cost, quality = np.asarray(cost, float), np.asarray(quality, float)
    idx = [i for i in range(len(cost)) if not (np.isnan(cost[i]) or np.isnan(quality[i]))]
    front = []
    for i in idx:
        dominated = any((cost[j] <= cost[i] and quality[j] >= quality[i])
                        and (cost[j] < cost[i] or quality[j] > quality[i]) for j in idx)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (cost[i], -quality[i]))


def _figure(n_panels: int = 1):
    from matplotlib.figure import Figure
    cols = min(3, n_panels)
    rows = -(-n_panels // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows), layout="constrained")
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n_panels)]
    return fig, axes


def _save(fig, out: Path, stem: str, title: str, table: int | None, kind: str) -> dict:
    fig.suptitle(title, fontsize=9)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    fig.savefig(png, dpi=110)
    fig.savefig(svg)
    return {"table": table, "kind": kind, "title": title, "png": png, "svg": svg}


def metric_per_k(table, number: int, out: Path) -> dict | None:
    d = table.data.dropna(subset=["mean"])
    per = d.groupby("metric")["k"].nunique()
    metrics = [m for m in dict.fromkeys(d["metric"]) if per[m] > 1]
    if not metrics:
        return None
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics):
        for model, g in d[d.metric == metric].groupby("model", sort=False):
            g = g.sort_values("k")
            ax.plot(g["k"], g["mean"], marker="o", label=model)
            if g["ci_low"].notna().all():
                ax.fill_between(g["k"], g["ci_low"], g["ci_high"], alpha=0.15)
        ax.set_xlabel("k")
        ax.set_ylabel(metric)
        ax.set_xticks(sorted(set(d[d.metric == metric]["k"])))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    title = f"Table {number}: metric per k (band: bootstrap CI)"
    return _save(fig, out, f"{table.slug}__per_k", title, number, "metric_per_k")


def per_group(table, number: int, out: Path) -> dict | None:
    d = table.data[table.data["slice"] != "gap(max-min)"].dropna(subset=["mean"])
    if d.empty:
        return None
    slices = list(dict.fromkeys(d["slice"]))
    models = list(dict.fromkeys(d["model"]))
    fig, (ax,) = _figure(1)
    width = 0.8 / len(models)
    for i, m in enumerate(models):
        g = d[d.model == m].set_index("slice").reindex(slices)
        ax.bar(np.arange(len(slices)) + i * width, g["mean"], width, label=m)
    ax.set_xticks(np.arange(len(slices)) + 0.4 - width / 2, slices, fontsize=8)
    ax.set_ylabel(f"{d['metric'].iloc[0]}@{d['k'].iloc[0]}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    title = f"Table {number}: {table.title.split(' · ')[0]}"
    return _save(fig, out, f"{table.slug}__groups", title, number, "per_group")


def degradation(table, number: int, out: Path) -> dict | None:
    d = table.data.dropna(subset=["mean", "severity"])
    if d["severity"].nunique() < 2:
        return None
    fig, (ax,) = _figure(1)
    for m, g in d.groupby("model", sort=False):
        g = g.sort_values("severity")
        ax.plot(g["severity"], g["mean"], marker="o", label=m)
    ax.set_xlabel(f"{d['name'].iloc[0]} severity (0 = clean)")
    ax.set_ylabel(f"{d['metric'].iloc[0]}@{d['k'].iloc[0]}")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    title = f"Table {number}: {table.title.split(' · ')[0]}"
    return _save(fig, out, f"{table.slug}__degradation", title, number, "degradation")


def quality_latency(eff, eff_number: int, acc, out: Path) -> dict | None:
    lat = eff.data[eff.data["metric"] == LATENCY].set_index("model")["mean"]
    first = acc.columns[1] if len(acc.columns) > 1 else None
    if lat.empty or first is None:
        return None
    metric, k = first.split("@")
    q = acc.data[(acc.data.metric == metric) & (acc.data.k == int(k))].set_index("model")["mean"]
    models = [m for m in lat.index if m in q.index and pd.notna(lat[m]) and pd.notna(q[m])]
    if not models:
        return None
    x, y = lat[models].to_numpy(float), q[models].to_numpy(float)
    front = pareto_front(x, y)
    fig, (ax,) = _figure(1)
    ax.scatter(x, y, color="tab:blue", zorder=3)
    for m, xi, yi in zip(models, x, y):
        ax.annotate(m, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.step(x[front], y[front], where="post", color="tab:red", label="Pareto front")
    ax.margins(0.12)
    ax.set_xlabel("p90 latency (ms)")
    ax.set_ylabel(first)
    if x.min() > 0 and x.max() / x.min() > 50:
        ax.set_xscale("log")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    rec = _save(fig, out, f"{eff.slug}__pareto", f"Table {eff_number}: {first} vs p90 latency",
                eff_number, "pareto")
    rec["front"] = [models[i] for i in front]
    return rec


def make_plots(tables: list, out: Path) -> list[dict]:
    """All figures for the numbered `tables` (1-based order) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    acc_by_key = {tuple(t.key.items()): t for t in tables if t.section == "accuracy"}
    for n, t in enumerate(tables, 1):
        if t.section == "accuracy":
            rec = metric_per_k(t, n, out)
        elif t.section == "fairness":
            from harness.fairness.figures import fairness_figure
            rec = fairness_figure(t, n, out)
        elif t.section == "robustness":
            rec = degradation(t, n, out)
        elif t.section == "efficiency":
            acc = acc_by_key.get(tuple(t.key.items()))
            rec = quality_latency(t, n, acc, out) if acc else None
        else:  # holistic, robustness summary: tables only
            rec = None
        if rec:
            made.append(rec)
    return made

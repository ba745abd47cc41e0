"""Fairness figures of `harness report` (matplotlib Figure objects, never pyplot), one per
fairness table, chosen by the table data's `kind`:

- item_groups: exposure share per group (bars per model) against the group's catalog share
  (black ticks) and held-out share (grey ticks);
- user_groups: the metric per group (bars per model) with the bootstrap CI as error bars;
- counterfactual: mean similarity to the neutral list per attribute value, one panel per
  similarity (Jaccard, SERP*, PRAG*);
- exposure: none (one number per model and column: the table is the figure).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _bars(ax, table: "np.ndarray", labels: list[str], models: list[str], err=None) -> float:
    """Grouped bars: table[model, group]; returns the bar width."""
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        x = np.arange(len(labels)) + i * width
        kw = {}
        if err is not None:
            kw = {"yerr": err[:, i, :].T, "capsize": 2, "ecolor": "0.3"}
        ax.bar(x, table[i], width, label=m, **kw)
    ax.set_xticks(np.arange(len(labels)) + 0.4 - width / 2, labels, fontsize=7,
                  rotation=30 if len(labels) > 5 else 0)
    ax.grid(alpha=0.3, axis="y")
    return width


def item_groups(table, number: int, out: Path) -> dict | None:
    from harness.report.plots import _figure, _save
    d = table.data.dropna(subset=["exposure"])
    if d.empty:
        return None
    labels = list(dict.fromkeys(d["slice"]))
    models = list(dict.fromkeys(d["model"]))
    vals = np.array([[d[(d.model == m) & (d.slice == s)]["exposure"].mean() for s in labels]
                     for m in models])
    fig, (ax,) = _figure(1)
    _bars(ax, vals, labels, models)
    first = d[d.model == models[0]].set_index("slice").reindex(labels)
    x = np.arange(len(labels)) + 0.4 - 0.4 / max(len(models), 1)
    ax.scatter(x, first["catalog"], marker="_", s=400, color="black", label="catalog share",
               zorder=3)
    ax.scatter(x, first["relevance"], marker="_", s=400, color="0.6", label="held-out share",
               zorder=3)
    ax.set_ylabel("exposure share")
    ax.legend(fontsize=7)
    title = f"Table {number}: {table.title.split(' · ')[0]}"
    return _save(fig, out, f"{table.slug}__exposure", title, number, "exposure_share")


def user_groups(table, number: int, out: Path) -> dict | None:
    from harness.report.plots import _figure, _save
    d = table.data[~table.data["slice"].isin(["gap(max-min)", "all"])].dropna(subset=["mean"])
    if d.empty:
        return None
    labels = list(dict.fromkeys(d["slice"]))
    models = list(dict.fromkeys(d["model"]))
    get = lambda m, s, c: (d[(d.model == m) & (d.slice == s)][c].mean()  # noqa: E731
                           if c in d.columns else np.nan)
    vals = np.array([[get(m, s, "mean") for s in labels] for m in models])
    err = None
    if "ci_low" in d.columns and d["ci_low"].notna().any():
        lo = np.array([[get(m, s, "ci_low") for m in models] for s in labels])
        hi = np.array([[get(m, s, "ci_high") for m in models] for s in labels])
        mid = vals.T
        err = np.stack([np.nan_to_num(mid - lo), np.nan_to_num(hi - mid)], axis=-1)
        err = np.clip(err, 0, None)
    fig, (ax,) = _figure(1)
    _bars(ax, vals, [s.partition("=")[2] or s for s in labels], models, err)
    ax.set_ylabel(f"{d['metric'].iloc[0]}@{d['k'].iloc[0]}")
    ax.legend(fontsize=7)
    title = f"Table {number}: {table.title.split(' · ')[0]} (bars: bootstrap CI)"
    return _save(fig, out, f"{table.slug}__groups", title, number, "per_group")


def counterfactual(table, number: int, out: Path) -> dict | None:
    from harness.report.plots import _figure, _save
    from harness.fairness.report import SIMS
    d = table.data
    if d.empty:
        return None
    labels = list(dict.fromkeys(d["slice"]))
    models = list(dict.fromkeys(d["model"]))
    fig, axes = _figure(len(SIMS))
    for ax, (name, label) in zip(axes, SIMS):
        vals = np.array([[d[(d.model == m) & (d.slice == s)][name].mean() for s in labels]
                         for m in models])
        _bars(ax, vals, labels, models)
        ax.set_ylabel(f"{label} to neutral")
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=7)
    title = f"Table {number}: {table.title.split(' · ')[0]} (similarity per value)"
    return _save(fig, out, f"{table.slug}__counterfactual", title, number, "similarity")


def fairness_figure(table, number: int, out: Path) -> dict | None:
    """The figure for a fairness table (None for tables without one)."""
    kind = table.data["kind"].iloc[0] if "kind" in table.data.columns and len(table.data) \
        else "user_groups"
    fn = {"item_groups": item_groups, "user_groups": user_groups,
          "counterfactual": counterfactual}.get(kind)
    return fn(table, number, out) if fn else None

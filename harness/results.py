"""Run-directory tables: consolidate cells into `metrics` / `per_user`, and the leaderboard."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from harness.io import write_csv, write_parquet, write_text
from harness.markdown import markdown_table

METRIC_COLUMNS = ["suite", "run_id", "cell", "dataset", "split", "split_fingerprint", "protocol",
                  "model", "seed", "pass", "metric", "k", "slice", "perturbation", "value",
                  "n_users"]
PER_USER_COLUMNS = ["cell", "user", "metric", "k", "perturbation", "value"]


def consolidate(run_dir: Path, ok_cells: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate the finished cells' tables and write metrics.{parquet,csv} and per_user."""
    cells = Path(run_dir) / "cells"
    m = [pd.read_parquet(cells / c / "metrics.parquet") for c in ok_cells]
    p = [pd.read_parquet(cells / c / "per_user.parquet") for c in ok_cells]
    metrics = (pd.concat(m, ignore_index=True) if m else pd.DataFrame(columns=METRIC_COLUMNS))
    per_user = (pd.concat(p, ignore_index=True) if p else pd.DataFrame(columns=PER_USER_COLUMNS))
    metrics = metrics[METRIC_COLUMNS]
    per_user = per_user[PER_USER_COLUMNS]
    write_parquet(run_dir / "metrics.parquet", metrics)
    write_csv(run_dir / "metrics.csv", metrics)
    write_parquet(run_dir / "per_user.parquet", per_user)
    return metrics, per_user


def leaderboard_tables(metrics: pd.DataFrame, ks: list[int] | None = None,
                       metric_order: list[str] | None = None) -> list[tuple[str, pd.DataFrame]]:
    """One table per (dataset, split, fingerprint, protocol): models x metric@k, 'mean ± std'
    over seeds, sorted by the first column."""
    if metrics.empty:
        return []
    df = metrics[(metrics["pass"] == "accuracy") & (metrics["slice"] == "all")
                 & (metrics["perturbation"] == "none")]
    if ks:
        df = df[df["k"].isin(ks)]
    out = []
    for (ds, sp, fp, proto), g in df.groupby(["dataset", "split", "split_fingerprint",
                                              "protocol"], sort=False):
        g = g.assign(col=g["metric"] + "@" + g["k"].astype(str))
        agg = g.groupby(["model", "col"], sort=False)["value"].agg(["mean", "std", "count"])
        cols = list(dict.fromkeys(g["col"]))
        if metric_order:
            cols.sort(key=lambda c: (metric_order.index(c.split("@")[0])
                                     if c.split("@")[0] in metric_order else 99,
                                     int(c.split("@")[1])))
        table = pd.DataFrame(index=list(dict.fromkeys(g["model"])), columns=cols, dtype=object)
        means = agg["mean"].unstack()[cols]
        for (model, col), row in agg.iterrows():
            std = 0.0 if pd.isna(row["std"]) else row["std"]
            table.loc[model, col] = (f"{row['mean']:.4f} ± {std:.4f}" if row["count"] > 1
                                     else f"{row['mean']:.4f}")
        seeds = g.groupby("model")["seed"].nunique()
        table.insert(0, "seeds", seeds.reindex(table.index).astype(int))
        table = table.loc[means.sort_values(cols[0], ascending=False).index]
        title = f"{ds} · split {sp} ({fp}) · candidates {proto} · users {int(g['n_users'].max())}"
        out.append((title, table))
    return out


def to_markdown(table: pd.DataFrame) -> str:
    """A DataFrame (index = model) as a markdown table (no tabulate dependency)."""
    return markdown_table(["model"] + [str(c) for c in table.columns],
                          [[str(idx)] + [str(v) for v in row.values]
                           for idx, row in table.iterrows()])


def write_leaderboard(run_dir: Path, metrics: pd.DataFrame, metric_order: list[str],
                      failed: list[dict], statuses: list[dict] | None = None) -> str:
    """leaderboard.md: every metric@k per table, each pass's own section (fairness, robustness,
    efficiency, ... when the run has their rows; `statuses` = the cells' status records), plus
    failed cells and failed passes; returns the markdown."""
    from harness.passes import all_passes
    parts = [f"# Leaderboard: {run_dir}\n",
             "Mean ± std over seeds; per-user values are in per_user.parquet.\n"]
    for title, table in leaderboard_tables(metrics, metric_order=metric_order):
        parts += [f"## {title}\n", to_markdown(table), ""]
    for p in all_passes():
        parts += p.leaderboard_section(metrics, statuses or [])
    if failed:
        parts.append("## Failed cells\n")
        parts += [f"- `{f['cell']}`: {f.get('error', '')}" for f in failed]
    failed_passes = [(s["cell"], name, e.get("error", "")) for s in statuses or []
                     for name, e in s.get("passes", {}).items() if e.get("status") == "failed"]
    if failed_passes:
        parts.append("## Failed passes\n")
        parts += [f"- `{c}` pass `{name}`: {err}" for c, name, err in failed_passes]
    text = "\n".join(parts) + "\n"
    write_text(Path(run_dir) / "leaderboard.md", text)
    return text

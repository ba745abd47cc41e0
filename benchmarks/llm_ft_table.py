"""Markdown table of a finished run of suites/ml100k-llm-ft.toml (or any run): per (split,
candidates, model) NDCG@10, Recall@10, GAUC, log loss, fit seconds and the training part of it.

    python benchmarks/llm_ft_table.py results/ml100k-llm-ft/<run-id>

fit_s is the cell's whole fit (data preparation, model loading, text encoding, training);
train_s is the training loop alone as recorded by harness/llm/train.py (for a weight-cache hit:
the seconds of the run that produced the weights). Both come from the run's manifest.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd


def table(run: Path) -> str:
    metrics = pd.read_parquet(run / "metrics.parquet")
    metrics = metrics[(metrics["pass"] == "accuracy") & (metrics["slice"] == "all")]
    cells = {c["cell"]: c for c in json.loads((run / "manifest.json").read_text())["cells"]}
    want = [("ndcg", 10), ("recall", 10), ("gauc", 0), ("logloss", 0)]
    lines = ["| split | candidates | model | NDCG@10 | Recall@10 | GAUC | log loss | fit s "
             "| train s | weights |", "|---" * 10 + "|"]
    for cell, g in metrics.groupby("cell", sort=False):
        got = {(m, int(k)): v for m, k, v in zip(g["metric"], g["k"], g["value"])}
        info = cells.get(cell, {}).get("info", {}) or {}
        row = g.iloc[0]
        vals = [f"{got[w]:.4f}" if w in got else "—" for w in want]
        train = info.get("train_s")
        fit = cells.get(cell, {}).get("fit_s")
        lines.append(f"| {row['split']} | {row['protocol']} | {row['model']} | "
                     + " | ".join(vals)
                     + f" | {'—' if fit is None else f'{fit:.1f}'}"
                     + f" | {'—' if train is None else f'{train:.1f}'}"
                     + f" | {info.get('weights_cache', '—')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished run directory")
    print(table(ap.parse_args().run))


if __name__ == "__main__":
    main()

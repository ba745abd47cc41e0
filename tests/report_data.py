"""Synthetic finished run directories for the report tests (no training; seconds to build).

Per-user values are drawn per (model, seed) and the metrics rows are their means, as the
runner writes them. Optional fairness (slice), robustness (perturbation) and efficiency rows.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from harness.results import METRIC_COLUMNS, PER_USER_COLUMNS

QUALITY = {"ease": 0.32, "itemknn": 0.29, "pop": 0.14, "random": 0.02}
LATENCY_P90 = {"ease": 4.0, "itemknn": 9.0, "pop": 0.5, "random": 0.4}


def make_run(path: Path, models: dict = QUALITY, seeds=(0, 1), n_users: int = 120,
             dataset: str = "synth", fingerprint: str = "fp0000", protocol: str = "full",
             metrics=("ndcg", "recall"), ks=(5, 10), sections: bool = False,
             suite: str = "synth-suite", target: str = "test", shift: float = 0.0,
             manifest: bool = True) -> Path:
    """Write metrics.parquet, per_user.parquet and (unless manifest=False) manifest.json."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    users = [str(u) for u in range(1, n_users + 1)]
    rows, per_user, cells = [], [], []
    for model, q in models.items():
        for seed in seeds:
            cell = f"{dataset}__split__{protocol}__{model}__s{seed}"
            rng = np.random.default_rng(zlib.crc32(
                f"{model}/{seed}/{dataset}/{fingerprint}/{protocol}".encode()))
            base = np.clip(rng.normal(q + shift, 0.15, n_users), 0, 1)
            const = {"suite": suite, "run_id": path.name, "cell": cell, "dataset": dataset,
                     "split": "split", "split_fingerprint": fingerprint, "protocol": protocol,
                     "model": model, "seed": seed, "slice": "all", "perturbation": "none",
                     "n_users": n_users}
            for metric in metrics:
                for k in ks:
                    v = np.clip(base * (1 + 0.05 * k / 10) * (0.9 if metric == "recall" else 1)
                                + rng.normal(0, 0.01, n_users), 0, 1)
                    rows.append({**const, "pass": "accuracy", "metric": metric, "k": k,
                                 "value": float(v.mean())})
                    per_user.append(pd.DataFrame({"cell": cell, "user": users, "metric": metric,
                                                  "k": k, "perturbation": "none", "value": v}))
            if sections:
                rows += _section_rows(const, model, q + shift, seed)
            cells.append({"cell": cell, "model": model, "seed": seed, "status": "ok",
                          "candidates": protocol, "candidates_fingerprint": f"c-{protocol}"})
    pd.DataFrame(rows)[METRIC_COLUMNS].to_parquet(path / "metrics.parquet", index=False)
    pd.concat(per_user, ignore_index=True)[PER_USER_COLUMNS].to_parquet(
        path / "per_user.parquet", index=False)
    if manifest:
        (path / "manifest.json").write_text(json.dumps({
            "complete": True, "suite": {"name": suite}, "run_id": path.name,
            "finished": "2026-01-01T00:00:00Z", "git": {"commit": "abc", "dirty": False},
            "evaluation": {"target": target}, "cells": cells, "n_cells": len(cells),
            "n_failed": 0, "candidates": {f"{dataset}/split/{protocol}": {
                "protocol": protocol, "params": {"seed": 0}, "fingerprint": f"c-{protocol}"}}}))
    return path


def _section_rows(const: dict, model: str, q: float, seed: int) -> list[dict]:
    out = []
    jitter = 0.001 * seed
    for s, f in (("gender=F", 0.9), ("gender=M", 1.05), ("popularity=head", 1.2),
                 ("popularity=tail", 0.5)):
        out.append({**const, "pass": "fairness", "slice": s, "metric": "ndcg", "k": 10,
                    "value": q * f + jitter})
    for sev in (0.1, 0.2, 0.4):
        out.append({**const, "pass": "robustness", "perturbation": f"typo@{sev:g}",
                    "metric": "ndcg", "k": 10, "value": q * (1 - sev) + jitter})
    lat = LATENCY_P90[model] if model in LATENCY_P90 else 1.0
    for metric, v in (("latency_p50_ms", lat / 2), ("latency_p90_ms", lat),
                      ("throughput_users_per_s", 1000 / lat)):
        out.append({**const, "pass": "efficiency", "metric": metric, "k": 0,
                    "value": v * (1 + 0.01 * seed)})
    return out

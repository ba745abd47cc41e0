"""Valid and test NDCG@10 (full ranking) and fit time of the classic baselines on ml-100k.

Split: random_holdout 0.8/0.1/0.1, split seed 0; model seeds 0, 1, 2 (default parameters unless
overridden). Run from the repository root:

    python benchmarks/baseline_quality.py                      # every baseline, seeds 0 1 2
    python benchmarks/baseline_quality.py --models bpr --params '{"lr": 0.01}' --seeds 0

Torch threads are set for this process only (--threads, default 2).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate
from harness.registry import build
from harness.splits import make_split

MODELS = ["random", "pop", "itemknn", "ease", "als", "bpr"]


def ndcg10(model, cand) -> float:
    ev = evaluate(model.score, cand, [10], ["ndcg"], batch_size=1024)
    return float(ev.values[("ndcg", 10)].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--params", default="{}", help="JSON hyperparameters (applied to every model)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    params = json.loads(args.params)

    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, seed=0)
    cand_valid, cand_test = full_candidates(split, "valid"), full_candidates(split, "test")
    print(f"ml-100k random_holdout 0.8/0.1/0.1 split-seed 0, full ranking; params={params}")
    print(f"{'model':8} {'seed':>4} {'valid':>7} {'test':>7} {'fit_s':>7}  info")
    for name in args.models:
        rows = []
        for seed in args.seeds:
            model = build(name, params, seed=seed)
            t0 = time.perf_counter()
            model.fit(split, ds)
            fit_s = time.perf_counter() - t0
            v, t = ndcg10(model, cand_valid), ndcg10(model, cand_test)
            rows.append((v, t, fit_s))
            info = getattr(model, "info", "") or ""
            print(f"{name:8} {seed:>4} {v:7.4f} {t:7.4f} {fit_s:7.2f}  {info}", flush=True)
        m = np.mean(rows, axis=0)
        print(f"{name:8} {'mean':>4} {m[0]:7.4f} {m[1]:7.4f} {m[2]:7.2f}", flush=True)


if __name__ == "__main__":
    main()

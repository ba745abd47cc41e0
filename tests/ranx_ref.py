"""ranx as an independent reference: per-user metric values aligned with the caller's user order."""

from __future__ import annotations

import numpy as np
from ranx import Qrels, Run
from ranx import evaluate as ranx_evaluate

from harness.metrics import RANX_NAMES


def _qid(i: int) -> str:
    # zero-padded so that ranx's lexicographic query order is also the numeric order
    return f"q{i:08d}"


def ranx_per_user(truth: list, ranked: list, metrics: list[str], ks: list[int]) -> dict:
    """{(metric, k): (n,) float64} from ranx, for user i with relevant items `truth[i]` and ranked
    list `ranked[i]` (best first). Run scores strictly decrease along each list, so ranx cannot
    break a tie differently."""
    assert len(truth) == len(ranked)
    qrels = Qrels({_qid(i): {f"d{j}": 1 for j in t} for i, t in enumerate(truth)})
    run = Run({_qid(i): {f"d{j}": float(len(lst) - r) for r, j in enumerate(lst)}
               for i, lst in enumerate(ranked)})
    names = [f"{RANX_NAMES[m]}@{k}" for m in metrics for k in ks]
    out = ranx_evaluate(qrels, run, names, return_mean=False,
                        save_results_in_run=False)
    if len(names) == 1:
        out = {names[0]: out}
    # ranx sorts query ids; map its order back to positions explicitly
    order = np.array([int(q[1:]) for q in run.get_query_ids()])
    assert run.get_query_ids() == qrels.get_query_ids()
    result = {}
    for m in metrics:
        for k in ks:
            arr = np.empty(len(truth))
            arr[order] = np.asarray(out[f"{RANX_NAMES[m]}@{k}"], dtype=np.float64)
            result[(m, k)] = arr
    return result

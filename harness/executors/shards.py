"""User-sharded evaluation of one cell: fit the model once, evaluate user ranges as separate
jobs (the fitted model is shipped once per worker), merge the ranges, run the other passes.

Shard boundaries fall on whole scoring batches (multiples of `[evaluation] batch_size`), so
every batch a model scores is the batch it would score unsharded, and the merged per-user
values, top-k lists and means are identical to a single task's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import threads
from harness.evaluate import Evaluation
from harness.fitting import fit_model


@dataclass
class Prepared:
    """What `harness.cell.run_cell(..., prepared=)` takes instead of fitting and running the
    passes it names: the fitted model, finished pass results, and their timings."""

    model: Any
    results: dict = field(default_factory=dict)  # pass name -> PassResult
    fit_s: float = 0.0
    seconds: dict = field(default_factory=dict)  # pass name -> seconds


def shard_ranges(n_users: int, n_shards: int, batch_size: int) -> list[tuple[int, int]]:
    """[start, stop) user positions of `n_shards` near-equal shards of whole batches."""
    n_batches = max(1, math.ceil(n_users / batch_size))
    n_shards = max(1, min(n_shards, n_batches))
    cuts = [i * n_batches // n_shards for i in range(n_shards + 1)]
    return [(cuts[i] * batch_size, min(cuts[i + 1] * batch_size, n_users))
            for i in range(n_shards)]


def candidates_slice(cand, start: int, stop: int):
    """The candidates of users [start, stop) (truth and history stay indexed by user)."""
    return dataclasses.replace(cand, users=cand.users[start:stop],
                               lists=None if cand.lists is None else cand.lists[start:stop])


def fit_stage(task, ws) -> tuple[Any, dict]:
    """Build the cell's candidates and fit its model once: (model, {n_users, fit_s})."""
    with threads.contained():
        split = ws.split(task.dataset, task.split)
        cand, _ = ws.candidates(task, split)
        t = time.perf_counter()
        m = task.model
        model = fit_model(m.name, m.params, task.seed, split, task.options)
        fit_s = round(time.perf_counter() - t, 4)
    return model, {"n_users": int(len(cand.users)), "fit_s": fit_s}


def shard_stage(task, ws, model, users: tuple[int, int], log) -> Evaluation:
    """The accuracy pass's evaluation of users [start, stop) with the fitted model."""
    from harness.passes.accuracy import score_and_evaluate
    from harness.passes.base import PassContext
    with threads.contained():
        split = ws.split(task.dataset, task.split)
        cand, _ = ws.candidates(task, split)
        ctx = PassContext(task, task.suite, None, split, cand, model, task.options, log,
                          task.options.quiet)
        return score_and_evaluate(ctx, model, candidates_slice(cand, *users),
                                  label=f"users {users[0]}-{users[1]}")


def merge(parts: list[Evaluation]) -> Evaluation:
    """One Evaluation from user-range parts given in user order (pointwise per-user values
    concatenated, the global AUC recomputed over the union of the parts' pairs)."""
    from harness.pointwise import GlobalAUC
    cat = lambda xs: None if any(x is None for x in xs) else np.concatenate(xs)  # noqa: E731
    keys = list(parts[0].values)
    pointwise, pairs, global_auc = None, None, None
    if all(p.pointwise is not None for p in parts):
        pointwise = {name: np.concatenate([p.pointwise[name] for p in parts])
                     for name in parts[0].pointwise}
    if all(p.auc_pairs is not None for p in parts):
        pairs = GlobalAUC()
        for p in parts:
            pairs.extend(p.auc_pairs)
        global_auc = pairs.value()
    return Evaluation(np.concatenate([p.users for p in parts]),
                      {k: np.concatenate([p.values[k] for p in parts]) for k in keys},
                      cat([p.top_items for p in parts]), cat([p.top_scores for p in parts]),
                      pointwise, global_auc, pairs)


def prepared_result(task, ws, model, evaluation: Evaluation, fit: dict) -> Prepared:
    """The fitted model and the merged accuracy result, as `run_cell` takes them."""
    from harness.passes.accuracy import evaluation_tables
    from harness.passes.base import PassResult
    split = ws.split(task.dataset, task.split)
    rows, per_user = evaluation_tables(evaluation, split.dataset.user_ids)
    result = PassResult(rows, per_user, {}, {"evaluation": evaluation})
    return Prepared(model, {"accuracy": result}, fit.get("fit_s", 0.0),
                    {"accuracy": fit.get("eval_s", 0.0)})

"""The accuracy pass: score the cell's candidates, mask history, top-k, ranking metrics per user.

Always on (no suite table; `[evaluation]` configures it). Its top-k lists and per-user values are
handed to later passes (`artifacts['evaluation']`: users, values, top_items, top_scores), so
fairness never scores a second time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.evaluate import evaluate
from harness.metrics import METRICS
from harness.passes.base import Pass, PassContext, PassResult
from harness.progress import bar


# Pointwise metrics (per-user candidate lists only; k = 0): GAUC = mean per-user AUC over users
# with a positive and a negative candidate, global AUC over all (user, candidate) pairs, log loss
# of models declaring calibrated probabilities (harness/pointwise.py has the formulas).
POINTWISE = {"gauc": True, "auc": True, "logloss": False}


def evaluation_tables(ev, user_ids: np.ndarray, perturbation: str = "none"
                      ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows: metric, k, value = mean over users, n_users; per-user: user, metric, k, value) of
    an `Evaluation`; `user_ids` maps user indices to dataset ids. Pointwise values (when the
    evaluation has them) add `gauc` and `logloss` (means over the users where they are defined,
    per-user rows for those users) and the global `auc`, all at k = 0."""
    users = user_ids[ev.users].astype(str)
    rows, per_user = [], []
    for (metric, k), values in ev.values.items():
        rows.append({"metric": metric, "k": k, "value": float(values.mean()),
                     "n_users": int(len(values)), "perturbation": perturbation})
        per_user.append(pd.DataFrame({"user": users, "metric": metric, "k": k, "value": values,
                                      "perturbation": perturbation}))
    for name, values in (ev.pointwise or {}).items():
        metric = "gauc" if name == "auc" else name
        ok = ~np.isnan(values)
        if ok.any():
            rows.append({"metric": metric, "k": 0, "value": float(values[ok].mean()),
                         "n_users": int(ok.sum()), "perturbation": perturbation})
            per_user.append(pd.DataFrame({"user": users[ok], "metric": metric, "k": 0,
                                          "value": values[ok], "perturbation": perturbation}))
    if ev.global_auc is not None and not np.isnan(ev.global_auc):
        rows.append({"metric": "auc", "k": 0, "value": float(ev.global_auc),
                     "n_users": int(len(users)), "perturbation": perturbation})
    return pd.DataFrame(rows), pd.concat(per_user, ignore_index=True)


def score_and_evaluate(ctx: PassContext, model, cand=None, label: str = "eval"):
    """`evaluate` of `model` on the cell's candidates (or `cand`) with the suite's metrics, the
    top-k lists kept; non-finite metric values are an error."""
    cand = cand if cand is not None else ctx.candidates
    s = ctx.suite
    with bar(len(cand.users), f"  {ctx.task.key} {label}", ctx.quiet, unit="user") as pb:
        ev = evaluate(model.score, cand, list(s.ks), list(s.metrics), s.batch_size,
                      keep_top=True, progress=pb, model=model, pointwise=True)
    for name, arr in ev.values.items():
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"metric {name} is not finite for some users")
    return ev


class AccuracyPass(Pass):
    name = "accuracy"
    table = None
    order = 0

    def run(self, ctx: PassContext) -> PassResult:
        ev = score_and_evaluate(ctx, ctx.model)
        rows, per_user = evaluation_tables(ev, ctx.split.dataset.user_ids)
        return PassResult(rows, per_user, {}, {"evaluation": ev})

    def higher_is_better(self, metric: str) -> bool | None:
        if metric in METRICS:
            return METRICS[metric].higher_is_better
        return POINTWISE.get(metric)

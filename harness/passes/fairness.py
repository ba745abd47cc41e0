"""The fairness pass: item exposure and popularity bias, user-group gaps with significance,
counterfactual fairness of user text. Its machinery is in `harness.fairness` (config, items,
groups, stats, similarity, exposure, usergroups, counterfactual, leaderboard); the formulas are
in those modules' docstrings and docs/fairness.md.

It reuses the accuracy pass's top-k lists and per-user values (`ctx.earlier['accuracy']`) and
scores again only for counterfactual user texts of models that read text.
"""

from __future__ import annotations

import time

import pandas as pd

from harness.fairness import config as fc
from harness.metrics import METRICS
from harness.passes.base import Pass, PassContext, PassResult

ROW_COLUMNS = ["metric", "k", "value", "n_users", "slice"]
HIGHER = {"item_coverage": True, "entropy": True, "aplt": True, "gini_index": False,
          "arp": False, "pop_lift": False, "exposure_disparity_catalog": False,
          "exposure_disparity_relevance": False, "cf_jaccard": True, "cf_serp": True,
          "cf_prag": True}
# Reported for reading, never judged on their own by `harness check` (their direction depends on
# the group, or they describe a test): True is declared only because the interface needs one.
INFO = {"exposure_share", "catalog_share", "relevance_share", "exposure_ratio_catalog",
        "exposure_ratio_relevance", "cf_reads_user_text"}
# suffix of an accuracy metric -> (higher is better, judged)
SUFFIXES = {"_gap_p_holm": (True, False), "_gap_p": (True, False),
            "_gap_ci_low": (False, False), "_gap_ci_high": (False, False),
            "_gap": (False, True), "_ratio": (True, True),
            "_ci_low": (None, False), "_ci_high": (None, False)}


def direction(metric: str) -> tuple[bool, bool] | None:
    """(higher is better, judged by `harness check`) of a fairness-pass metric; None when the
    pass does not produce it."""
    if metric.endswith("_random") and metric[:-7] in HIGHER:
        return HIGHER[metric[:-7]], False
    if metric in HIGHER:
        return HIGHER[metric], True
    if metric in INFO:
        return True, False
    if metric in METRICS:
        return METRICS[metric].higher_is_better, True
    for suffix, (hib, judged) in SUFFIXES.items():
        base = metric[: -len(suffix)]
        if metric.endswith(suffix) and base in METRICS:
            return (METRICS[base].higher_is_better if hib is None else hib), judged
    if metric.startswith(("cf_snsr_", "cf_snsv_")):
        return False, True
    if metric.startswith("cf_delta_") and metric[9:] in METRICS:
        return METRICS[metric[9:]].higher_is_better, False
    return None


class FairnessPass(Pass):
    name = "fairness"
    table = "fairness"
    order = 20
    requires = ("accuracy",)

    def parse(self, checker, raw, suite_info: dict):
        return fc.parse_fairness(checker, raw, suite_info)

    def preflight(self, spec, suite, datasets: dict, file: str) -> None:
        fc.preflight(spec, datasets, file)

    def applies_to(self, spec, task) -> bool:
        return spec.applies_to(task.model.label, task.candidates.label)

    def run(self, ctx: PassContext) -> PassResult:
        rows, per_user, record = run_fairness(ctx)
        return PassResult(rows, per_user, record)

    def higher_is_better(self, metric: str) -> bool | None:
        d = direction(metric)
        return None if d is None else d[0]

    def judged(self, metric: str) -> bool:
        """Whether `harness check` judges the row on its own (p-values, CI bounds, shares and
        random baselines are read with the rows they describe)."""
        d = direction(metric)
        return bool(d and d[1])

    def manifest_entry(self, spec) -> dict:
        return {"config": spec.to_dict(), "definitions": "docs/fairness.md",
                "reuses": "the accuracy pass's top-k lists and per-user values",
                "cost": "status.passes.fairness.seconds vs status.passes.accuracy.seconds; "
                        "parts in status.fairness.seconds"}

    def leaderboard_section(self, metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
        from harness.fairness.leaderboard import fairness_section
        return fairness_section(metrics, statuses)

    def schema(self) -> dict:
        return fc.schema()


def run_fairness(ctx: PassContext) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Rows, per-user rows and the record of the fairness pass for one cell."""
    from harness.fairness.counterfactual import run_counterfactual
    from harness.fairness.exposure import item_side
    from harness.fairness.usergroups import user_side
    from harness.passes.accuracy import score_and_evaluate
    spec = ctx.spec
    ev = ctx.earlier["accuracy"].artifacts["evaluation"]
    user_ids = ctx.split.dataset.user_ids
    seconds = {}
    t = time.perf_counter()
    rows, per_user, items_rec = item_side(ev, ctx.candidates, ctx.split, spec, user_ids,
                                          spec.seed)
    seconds["items"] = round(time.perf_counter() - t, 4)
    t = time.perf_counter()
    urows, users_rec = user_side(ev, ctx.split, spec)
    rows += urows
    seconds["users"] = round(time.perf_counter() - t, 4)
    record = {"items": items_rec, "users": users_rec, "seconds": seconds}
    if spec.counterfactual is not None:
        t = time.perf_counter()
        crows, record["counterfactual"] = run_counterfactual(
            ctx, spec, lambda model, cand, label: score_and_evaluate(ctx, model, cand, label))
        rows += crows
        seconds["counterfactual"] = round(time.perf_counter() - t, 4)
    return pd.DataFrame(rows, columns=ROW_COLUMNS), per_user, record

"""The robustness pass: re-evaluate a cell on perturbed inputs against the same held-out truth
and the same candidates (`[robustness]`, see harness/perturb/spec.py).

Per perturbation label and severity s (rows with perturbation = 'label@s'):

- text (item / user text, field values): the fitted model reads a `TextView` at inference
  (`set_text_view`); never refit. Models that read no text, or not the target text, skip it.
- train (train_drop, train_inject): a fresh model is fit on the noisy split
  (`ctx.fit_model(split=...)`) and scored on the clean candidates.
- history (history_*): the fitted model scores from noisy histories (`set_history_view`).
- order (candidate_order): the candidates are presented in a permuted order; only models that
  declare `order_sensitive = True`, or that the entry lists by name (an invariance check).

Metrics per run: every accuracy metric@k (mean over users; per-user rows too);
delta_<metric> = mean over users of (perturbed - clean), with a paired percentile bootstrap CI
over users (delta_<metric>_ci_low / _ci_high; `harness.report.stats.bootstrap_ci` of the
per-user differences); jaccard@k and rbo@k of the top-k vs the clean top-k (per k of the suite);
kendall_tau (k = 0) of the scores vs the clean scores over each user's candidate list (per-user
list protocols only). Worst case (HELM): per user, the worst of the clean value and every run
of a family: rows with perturbation = '<family>@worst', and 'all@worst' over every run of the
model. Clean values are the accuracy pass's (never re-scored, except the clean scores Kendall τ
needs: the accuracy pass keeps only the top-k).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd

from harness.evaluate import score_lists
from harness.metrics import METRICS
from harness.passes.accuracy import evaluation_tables, score_and_evaluate
from harness.passes.base import Pass, PassContext, PassResult
from harness.perturb import stability
from harness.perturb.spec import parse_robustness, schema
from harness.perturb.view import reads_history, text_targets, text_view
from harness.textview import reads_text

STABILITY = {"jaccard": True, "rbo": True, "kendall_tau": True}


def _metric_hib(metric: str) -> bool | None:
    return METRICS[metric].higher_is_better if metric in METRICS else None


class RobustnessPass(Pass):
    name = "robustness"
    table = "robustness"
    order = 30
    requires = ("accuracy",)

    def parse(self, checker, raw, suite_info: dict):
        return parse_robustness(checker, raw, suite_info)

    def preflight(self, spec, suite, datasets: dict, file: str) -> None:
        from harness.perturb.preflight import preflight_robustness
        preflight_robustness(spec, suite, datasets, file)

    def applies_to(self, spec, task) -> bool:
        return spec.applies_to(task.model.label, task.candidates.label)

    def run(self, ctx: PassContext) -> PassResult:
        return run_robustness(ctx)

    def higher_is_better(self, metric: str) -> bool | None:
        if metric in STABILITY:
            return STABILITY[metric]
        if metric.startswith("delta_"):
            base = metric[len("delta_"):]
            for suffix in ("_ci_low", "_ci_high"):
                base = base[:-len(suffix)] if base.endswith(suffix) else base
            return _metric_hib(base)
        return _metric_hib(metric)

    def manifest_entry(self, spec) -> dict:
        from harness.perturb import PERTURBATIONS
        return {"config": spec.to_dict(),
                "perturbations": {p.label: {"name": p.name, "family": p.family, "kind": p.kind,
                                            "doc": PERTURBATIONS[p.name].doc}
                                  for p in spec.perturbations},
                "rng": "numpy SeedSequence(sha256(seed, 'item'|'user', id, [field|text], "
                       "perturbation+params, severity))",
                "rbo": "normalized truncated RBO@k, (1-p)/(1-p^k) sum_d p^(d-1) |A_d ∩ B_d|/d",
                "worst_case": "per user, min over clean and every run of the family (HELM)",
                "ci": f"paired percentile bootstrap over users, {spec.bootstrap} resamples"}

    def leaderboard_section(self, metrics: pd.DataFrame, statuses: list[dict]) -> list[str]:
        from harness.perturb.summary import leaderboard_lines
        return leaderboard_lines(metrics, statuses)

    def schema(self) -> dict:
        return schema()


class _Recorder:
    """Scores candidate lists through `model` and keeps them (for Kendall τ)."""

    def __init__(self, model):
        self.model, self.scores = model, []

    def score(self, users, items):
        return self.model.score(users, items)

    def score_candidates(self, users, lists):
        out = score_lists(self.model, users, lists)
        self.scores.append(out.double().numpy())
        return out


def _evaluate(ctx, model, cand, label: str, keep: bool):
    """(Evaluation, raw list scores (users x C) or None)."""
    rec = _Recorder(model) if keep else model
    ev = score_and_evaluate(ctx, rec, cand, label)
    return ev, (np.concatenate(rec.scores) if keep and rec.scores else None)


def _skip_reason(entry, model, label: str) -> str | None:
    if entry.models and label not in entry.models:
        return "not in the entry's models"
    if entry.kind == "text":
        if not reads_text(model):
            return "reads no text (uses_text / set_text_view)"
        if entry.target not in text_targets(model):
            return f"reads no {entry.target[:-1]} text"
    if entry.kind == "history" and not reads_history(model):
        return "scores from no history view (set_history_view)"
    if entry.kind == "order" and not getattr(model, "order_sensitive", False) \
            and label not in entry.models:
        return "pointwise (no order_sensitive); list it in the entry's models to check"
    return None


def _perturbed(ctx, entry, pert, sev: float, label: str, keep: bool):
    """(Evaluation, list scores in the clean column order or None, record) of one run."""
    spec, model, cand, split = ctx.spec, ctx.model, ctx.candidates, ctx.split
    if entry.kind == "text":
        view, rec = text_view(pert, sev, spec.seed, split.dataset, entry.target,
                              list(entry.fields) or None, label)
        model.set_text_view(view)
        try:
            ev, scores = _evaluate(ctx, model, cand, label, keep)
        finally:
            model.set_text_view(None)
        return ev, scores, rec
    if entry.kind == "train":
        noisy, rec = pert.split(split, sev, spec.seed)
        ev, scores = _evaluate(ctx, ctx.fit_model(split=noisy), cand, label, keep)
        return ev, scores, rec
    if entry.kind == "history":
        from harness.llm.text import user_histories
        hist, rec = pert.histories(user_histories(split), sev, spec.seed, split)
        model.set_history_view(hist)
        try:
            ev, scores = _evaluate(ctx, model, cand, label, keep)
        finally:
            model.set_history_view(None)
        return ev, scores, rec
    permuted, perms, rec = pert.candidates(cand, sev, spec.seed, split.dataset)
    ev, scores = _evaluate(ctx, model, permuted, label, keep)
    if scores is not None and perms is not None:
        back = np.empty_like(scores)
        np.put_along_axis(back, perms, scores, axis=1)
        scores = back
    return ev, scores, rec


class _Tables:
    """Rows and per-user rows of the pass, plus per-family per-user values for worst cases."""

    def __init__(self, clean, user_ids):
        self.clean, self.users = clean, user_ids[clean.users].astype(str)
        self.user_ids = user_ids
        self.rows, self.per_user, self.runs = [], [], {}

    def add(self, metric, k, values, label, per_user=True):
        values = np.asarray(values, float)
        ok = ~np.isnan(values)
        if not ok.any():  # e.g. Kendall τ when every user's scores are constant: no row
            return
        self.rows.append({"metric": metric, "k": k, "value": float(values[ok].mean()),
                          "n_users": int(ok.sum()), "perturbation": label})
        if per_user:
            self.per_user.append(pd.DataFrame({"user": self.users[ok], "metric": metric, "k": k,
                                               "value": values[ok], "perturbation": label}))

    def run(self, family, label, ev, scores, clean_scores, lists, spec, ks):
        rows, pu = evaluation_tables(ev, self.user_ids, label)
        self.rows += rows.to_dict("records")
        self.per_user.append(pu)
        for key, v in ev.values.items():
            self.runs.setdefault(family, {}).setdefault(key, []).append(v)
            d = v - self.clean.values[key]
            self.add(f"delta_{key[0]}", key[1], d, label, per_user=False)
            if spec.bootstrap:
                from harness.report.stats import bootstrap_ci
                lo, hi = bootstrap_ci(d, spec.bootstrap, spec.seed)
                for name, v in (("ci_low", lo), ("ci_high", hi)):
                    self.rows.append({"metric": f"delta_{key[0]}_{name}", "k": key[1],
                                      "value": float(v), "n_users": len(d),
                                      "perturbation": label})
        for k in ks:
            self.add("jaccard", k, stability.jaccard_at_k(self.clean.top_items, ev.top_items, k),
                     label)
            self.add("rbo", k, stability.rbo_at_k(self.clean.top_items, ev.top_items, k,
                                                  spec.rbo_p), label)
        if scores is not None and clean_scores is not None:
            self.add("kendall_tau", 0, stability.kendall_tau_b(clean_scores, scores, lists >= 0),
                     label)

    def worst(self) -> dict:
        """'<family>@worst' and 'all@worst' rows; returns family -> number of runs."""
        every: dict = {}
        for family, by_key in self.runs.items():
            for key, vals in by_key.items():
                every.setdefault(key, []).extend(vals)
        for family, by_key in list(self.runs.items()) + ([("all", every)] if every else []):
            for key, vals in by_key.items():
                hib = _metric_hib(key[0])
                w = stability.worst_case(self.clean.values[key], vals, hib is not False)
                self.add(key[0], key[1], w, f"{family}@worst")
        return {f: len(next(iter(v.values()))) for f, v in self.runs.items()}


def run_robustness(ctx: PassContext) -> PassResult:
    spec, model, cand = ctx.spec, ctx.model, ctx.candidates
    clean = ctx.earlier["accuracy"].artifacts["evaluation"]
    tables = _Tables(clean, ctx.split.dataset.user_ids)
    record: dict = {"seed": spec.seed, "runs": {}, "skipped": {}}
    keep = spec.kendall and cand.lists is not None
    clean_scores = None
    info = copy.deepcopy(getattr(model, "info", None))
    t_all = time.perf_counter()
    try:
        if keep:
            t0 = time.perf_counter()
            ev0, clean_scores = _evaluate(ctx, model, cand, "robustness clean", True)
            record["clean_rescore_s"] = round(time.perf_counter() - t0, 4)
            record["clean_rescore_identical"] = bool(np.array_equal(ev0.top_items,
                                                                    clean.top_items))
        for entry in spec.perturbations:
            reason = _skip_reason(entry, model, ctx.task.model.label)
            if reason:
                record["skipped"][entry.label] = reason
                continue
            pert = entry.make()
            for sev in entry.severities:
                label = f"{entry.label}@{sev:g}"
                t0 = time.perf_counter()
                ev, scores, rec = _perturbed(ctx, entry, pert, sev, label, keep)
                tables.run(entry.family, label, ev, scores, clean_scores, cand.lists, spec,
                           ctx.suite.ks)
                rec = {k: v for k, v in rec.items() if k != "fields"} | {
                    "family": entry.family, "seconds": round(time.perf_counter() - t0, 4)}
                record["runs"][label] = rec
    finally:
        if info is not None:
            model.info = info
    record["worst_case_runs"] = tables.worst()
    record["seconds"] = round(time.perf_counter() - t_all, 4)
    rows = pd.DataFrame(tables.rows, columns=["metric", "k", "value", "n_users", "perturbation"])
    per_user = (pd.concat(tables.per_user, ignore_index=True) if tables.per_user else None)
    return PassResult(rows, per_user, record)

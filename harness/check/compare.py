"""Compare a new run with a reference run, row by row: the verdicts behind `harness check`.

Rows are matched on `ROW_KEY` = (dataset, split fingerprint, candidate protocol, pass, model,
metric, k, slice, perturbation). Before matching, the runs must agree on what makes rows
comparable; otherwise `CheckError` (exit 2):

- every split fingerprint of a reference dataset must be in the new run (a mismatch names both
  fingerprints with their protocol, seed and parameters);
- per (dataset, split fingerprint, protocol): the same target and candidate definition;
- every reference row must be in the new run (missing rows are named, with the new run's
  failed cells). Rows only in the new run are listed in the notes and not checked.

Quality rows (pass != efficiency). With S the seeds both runs have for the model (all seeds
when they share none), the row value is the mean over S of the run-level values. Let
w = ref - new for higher-is-better metrics, new - ref otherwise (`higher_is_better`: costs
such as gini or gap are lower-is-better). The row regresses when

    w > tolerance   AND   p <= alpha,

p being the one-sided p-value of the paired test over users (`harness.report.stats`: t,
Wilcoxon or randomization) against H1 "new is worse": users are matched by user id, each
user's value first averaged over the seeds S (as `harness report` does). The tests in stats.py
are two-sided; their null distributions are symmetric, so p = p2/2 when the observed mean
difference points to "worse" and 1 - p2/2 otherwise (exact for t; for the randomization test up
to its Monte-Carlo error). Rows with no per-user values (slices other than `all`, or runs
without per_user.parquet) are judged on the tolerance alone (p is NaN).
Verdicts: `regression`, `worse (n.s.)` (beyond the tolerance, not significant: passes),
`improved` (better by more than the tolerance), `ok`.

Fairness rows (pass == fairness, see `_fairness_verdict`): a user-group gap regresses when it
grows by more than the tolerance and the new run's permutation test of the gap is significant
(Holm-adjusted p <= alpha); p-values, CI bounds, exposure shares and random baselines are read
with the rows they describe and not judged; other fairness rows follow the quality rule.

Efficiency rows (pass == efficiency): value = median over all rows of the key (repeated
measurements, seeds). Relative worsening r = (new - ref) / |ref| for lower-is-better metrics
(latencies, times, memory, sizes), (ref - new) / |ref| for higher-is-better ones (rates;
directions as the efficiency pass declares them). Regression when
r > latency_tolerance; `improved` when r < -latency_tolerance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.check.config import CheckError, CheckSettings, find_suite_settings
from harness.errors import UserError, did_you_mean
from harness.report import stats
from harness.report.load import RunData, load_run
from harness.report.sections import higher_is_better

ROW_KEY = ["dataset", "split_fingerprint", "protocol", "pass", "model", "metric", "k", "slice",
           "perturbation"]
USER_KEY = ["dataset", "split_fingerprint", "protocol", "model", "metric", "k", "perturbation"]
_EPS = 1e-12


@dataclass
class CheckResult:
    """The compared rows (`rows`, one per matched key) and what the reader must know."""

    reference: Path
    new: Path
    rows: pd.DataFrame
    settings: CheckSettings
    notes: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["verdict"] == "regression"]

    @property
    def passed(self) -> bool:
        return self.regressions.empty

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def to_dict(self) -> dict:
        rows = json.loads(self.rows.to_json(orient="records"))  # NaN -> null
        counts = self.rows["verdict"].value_counts().to_dict() if len(self.rows) else {}
        return {"status": "pass" if self.passed else "regression", "exit_code": self.exit_code,
                "reference": str(self.reference), "new": str(self.new),
                "settings": self.settings.describe(), "verdicts": counts, "rows": rows,
                "notes": self.notes, "added": self.added}


def metric_label(metric: str, k) -> str:
    return f"{metric}@{int(k)}" if k and int(k) > 0 else str(metric)


def _load(path: Path, role: str) -> RunData:
    try:
        return load_run(Path(path))
    except UserError as exc:
        raise CheckError(f"{role} run: {exc}") from exc


def _prepare(run: RunData, models, seeds) -> pd.DataFrame:
    m = run.metrics.copy()
    m["k"] = pd.to_numeric(m["k"], errors="coerce").fillna(0).astype(int)
    if models:
        m = m[m["model"].isin(models)]
    if seeds:
        m = m[m["seed"].isin(seeds)]
    return m


def _select(ref: pd.DataFrame, new: pd.DataFrame, selectors):
    if not selectors:
        return ref, new
    labels = {metric_label(a, b) for a, b in zip(ref["metric"], ref["k"])}
    names = set(ref["metric"])
    for sel in selectors:
        if sel not in labels and sel not in names:
            raise CheckError(f"metric '{sel}' is not in the reference run"
                             f"{did_you_mean(sel, labels | names)}")
    sel = set(selectors)

    def keep(df):
        lab = [metric_label(a, b) for a, b in zip(df["metric"], df["k"])]
        return df[[x in sel or m in sel for x, m in zip(lab, df["metric"])]]
    return keep(ref), keep(new)


def _split_desc(manifest: dict, fingerprint: str) -> str:
    for s in (manifest.get("splits") or {}).values():
        if s.get("fingerprint") == fingerprint:
            params = ", ".join(f"{k}={v}" for k, v in sorted((s.get("params") or {}).items()))
            return (f"{fingerprint} ({s.get('protocol')}, seed {s.get('seed')}"
                    f"{', ' + params if params else ''})")
    return fingerprint


def _check_comparable(ref: RunData, new: RunData, rm: pd.DataFrame, nm: pd.DataFrame) -> None:
    for ds, g in rm.groupby("dataset", sort=False):
        new_fps = sorted(set(nm.loc[nm["dataset"] == ds, "split_fingerprint"]))
        missing = sorted(set(g["split_fingerprint"]) - set(new_fps))
        if new_fps and missing:
            raise CheckError(
                f"split fingerprint mismatch for dataset '{ds}': the reference {ref.path} was "
                f"evaluated on split {', '.join(_split_desc(ref.manifest, f) for f in missing)}"
                f", the new run {new.path} on "
                f"{', '.join(_split_desc(new.manifest, f) for f in new_fps)}. Rows of different "
                "splits are never compared; if the change is intended, replace the reference "
                "with --update-reference")
    for key, g in rm.groupby(["dataset", "split_fingerprint", "protocol"], sort=False):
        h = nm[(nm["dataset"] == key[0]) & (nm["split_fingerprint"] == key[1])
               & (nm["protocol"] == key[2])]
        for col, what in (("target", "evaluation target"), ("candidates_def", "candidates")):
            a, b = set(g[col]), set(h[col])
            if b and a != b:
                raise CheckError(f"{what} differ for {key[0]} split {key[1]} protocol "
                                 f"'{key[2]}': reference {', '.join(sorted(a))}, new "
                                 f"{', '.join(sorted(b))}")


def _common_seeds(rm: pd.DataFrame, nm: pd.DataFrame, notes: list[str]):
    """Quality rows: keep, per (dataset, fingerprint, protocol, model), the seeds both runs
    have (all of each run's seeds when they share none)."""
    grp = ["dataset", "split_fingerprint", "protocol", "model"]
    rs = rm.groupby(grp)["seed"].agg(lambda s: frozenset(s))
    ns = nm.groupby(grp)["seed"].agg(lambda s: frozenset(s))
    drop_r, drop_n = pd.Series(False, index=rm.index), pd.Series(False, index=nm.index)
    for key in rs.index.intersection(ns.index):
        a, b = rs[key], ns[key]
        common = a & b
        if a == b:
            continue
        if not common:
            notes.append(f"model '{key[3]}': no seed in common (reference {sorted(a)}, new "
                         f"{sorted(b)}); means over each run's own seeds are compared")
            continue
        notes.append(f"model '{key[3]}': compared on seeds {sorted(common)} (reference has "
                     f"{sorted(a)}, new {sorted(b)})")
        sel_r = np.logical_and.reduce([rm[c] == v for c, v in zip(grp, key)])
        sel_n = np.logical_and.reduce([nm[c] == v for c, v in zip(grp, key)])
        drop_r |= sel_r & ~rm["seed"].isin(common)
        drop_n |= sel_n & ~nm["seed"].isin(common)
    return rm[~drop_r], nm[~drop_n]


def _aggregate(m: pd.DataFrame) -> pd.DataFrame:
    eff = m["pass"] == "efficiency"
    q = m[~eff].groupby(ROW_KEY, sort=False).agg(value=("value", "mean"),
                                                 n=("seed", "nunique"))
    e = m[eff].groupby(ROW_KEY, sort=False).agg(value=("value", "median"), n=("value", "size"))
    return pd.concat([q, e])


def _user_values(run: RunData, m: pd.DataFrame) -> pd.Series:
    """value per (USER_KEY, user): the mean over the cells (seeds) of `m`."""
    pu = run.per_user
    if pu.empty:
        return pd.Series(dtype=float)
    model_of = m.drop_duplicates("cell").set_index("cell")["model"]
    pu = pu[pu["cell"].isin(model_of.index)]
    pu = pu.assign(model=pu["cell"].map(model_of),
                   k=pd.to_numeric(pu["k"], errors="coerce").fillna(0).astype(int))
    return pu.groupby(USER_KEY + ["user"], sort=False)["value"].mean()


def _missing_error(missing: pd.DataFrame, ref: RunData, new: RunData) -> CheckError:
    parts = []
    for (ds, model), g in missing.groupby(["dataset", "model"], sort=False):
        labels = list(dict.fromkeys(metric_label(a, b) + ("" if s == "all" else f"[{s}]")
                                    + ("" if p == "none" else f"{{{p}}}")
                                    for a, b, s, p in zip(g["metric"], g["k"], g["slice"],
                                                          g["perturbation"])))
        shown = ", ".join(labels[:6]) + (f", … ({len(labels)} in all)" if len(labels) > 6 else "")
        parts.append(f"{ds}/{model}: {shown}")
    failed = [f"{c['cell']} ({c.get('error', c.get('status'))})"
              for c in new.manifest.get("cells", []) if c.get("status") != "ok"]
    hint = f"; failed cells in the new run: {'; '.join(failed)}" if failed else ""
    return CheckError(f"{len(missing)} reference row(s) missing from the new run {new.path} "
                      f"(reference {ref.path}): {' | '.join(parts)}{hint}")


def _one_sided(p2: float, worse_mean: float) -> float:
    if np.isnan(p2):
        return p2
    return p2 / 2 if worse_mean > 0 else 1 - p2 / 2


def _groups(users: pd.Series) -> dict:
    if users.empty:
        return {}
    levels = list(range(len(USER_KEY)))
    return {key: g.droplevel(levels) for key, g in users.groupby(level=levels, sort=False)}


def _efficiency_verdict(rec: dict, hib: bool, tol: float) -> None:
    ref, new = rec["reference"], rec["new"]
    if ref == 0:
        rel = 0.0 if new == ref else (np.inf if (new < ref) == hib else -np.inf)
    else:
        rel = (ref - new if hib else new - ref) / abs(ref)
    rec.update(kind="efficiency", tolerance=tol, alpha=np.nan,
               verdict=("regression" if rel > tol + _EPS else
                        "improved" if rel < -tol - _EPS else "ok"))


def _fairness_p(rows: pd.DataFrame) -> dict:
    """Fairness gap rows -> the new run's p-value of their permutation test (Holm-adjusted when
    the run has it, else raw), keyed like the gap row."""
    f = rows[rows["pass"] == "fairness"]
    out = {}
    for suffix in ("_gap_p", "_gap_p_holm"):  # the Holm-adjusted value wins
        for rec in f[f["metric"].str.endswith(suffix)].to_dict("records"):
            gap = rec["metric"][: -len(suffix)] + "_gap"
            out[tuple(gap if c == "metric" else rec[c] for c in ROW_KEY)] = rec["new"]
    return out


def _fairness_verdict(rec: dict, s, fair_p: dict) -> bool:
    """Fairness rows (directions and `judged` declared by harness.passes.fairness): rows that
    describe others (p-values, CI bounds, shares, random baselines) are not judged (kind
    'fairness-info', verdict ok); a user-group gap (`<metric>_gap`) regresses when it grows by
    more than the tolerance AND the new run's permutation test of that gap is significant
    (p <= alpha, Holm-adjusted over the groupings); grown but not significant: 'worse (n.s.)'.
    Other fairness rows use the quality rule. Returns whether the row was handled here."""
    from harness.passes import get
    fairness = get("fairness")
    rec.update(tolerance=s.tolerance, alpha=s.alpha)
    if not fairness.judged(rec["metric"]):
        rec.update(kind="fairness-info", verdict="ok")
        return True
    if not rec["metric"].endswith("_gap"):
        return False
    p = fair_p.get(tuple(rec[c] for c in ROW_KEY), np.nan)
    grown = rec["new"] - rec["reference"]
    rec.update(kind="fairness-gap", p=p)
    if grown > s.tolerance + _EPS:
        rec["verdict"] = "regression" if not np.isnan(p) and p <= s.alpha else "worse (n.s.)"
    else:
        rec["verdict"] = "improved" if -grown > s.tolerance + _EPS else "ok"
    return True


def _verdicts(rows: pd.DataFrame, ru: pd.Series, nu: pd.Series,
              settings: CheckSettings) -> pd.DataFrame:
    ru_groups, nu_groups = _groups(ru), _groups(nu)
    fair_p = _fairness_p(rows)
    out = []
    for rec in rows.to_dict("records"):
        s = settings.for_row(rec["metric"], rec["k"])
        eff = rec["pass"] == "efficiency"
        try:
            hib = higher_is_better(rec["metric"], rec["pass"])
        except KeyError as exc:
            raise CheckError(f"cannot compare row {rec['pass']}/{rec['metric']}: {exc}") from exc
        ref, new = rec["reference"], rec["new"]
        rec.update(higher_is_better=hib, delta=new - ref, p=np.nan, n_paired=0,
                   rel_delta=np.nan if ref == 0 else (new - ref) / abs(ref))
        if eff:
            _efficiency_verdict(rec, hib, s.latency_tolerance)
            out.append(rec)
            continue
        if rec["pass"] == "fairness" and _fairness_verdict(rec, s, fair_p):
            out.append(rec)
            continue
        worse = (ref - new) if hib else (new - ref)
        rec.update(kind="quality", tolerance=s.tolerance, alpha=s.alpha)
        key = tuple(rec[c] for c in USER_KEY)
        if rec["slice"] == "all" and key in ru_groups and key in nu_groups:
            both = pd.concat([ru_groups[key].rename("ref"), nu_groups[key].rename("new")],
                             axis=1, join="inner")
            if len(both) >= 2:
                a, b = both["new"].to_numpy(), both["ref"].to_numpy()
                p2 = stats.paired_test(a, b, settings.test)
                d = float(np.mean(a - b))
                p1 = 1.0 if np.array_equal(a, b) else _one_sided(p2, -d if hib else d)
                rec.update(p=p1, n_paired=len(both))
        if worse > s.tolerance + _EPS:
            rec["verdict"] = ("regression" if np.isnan(rec["p"]) or rec["p"] <= s.alpha
                              else "worse (n.s.)")
        elif -worse > s.tolerance + _EPS:
            rec["verdict"] = "improved"
        else:
            rec["verdict"] = "ok"
        out.append(rec)
    return pd.DataFrame(out)


def _model_notes(ref: RunData, new: RunData, models) -> list[str]:
    notes = []
    rdef = ref.metrics.drop_duplicates("model").set_index("model")["model_def"]
    ndef = new.metrics.drop_duplicates("model").set_index("model")["model_def"]
    for m in models:
        if m in rdef.index and m in ndef.index and rdef[m] != ndef[m]:
            notes.append(f"model '{m}' is defined differently: reference {rdef[m]}, new "
                         f"{ndef[m]}")
    return notes


def _machine(manifest: dict) -> str:
    mach = manifest.get("machine") or {}
    return str(mach.get("gpu") or mach.get("gpu_name") or mach.get("cpu") or mach or "?")


def compare_runs(new_dir: Path, ref_dir: Path, settings: CheckSettings | None = None,
                 suite_file: Path | None = None, models: list[str] | None = None,
                 seeds: list[int] | None = None) -> CheckResult:
    """Compare `new_dir` against `ref_dir` (see the module docstring). `settings`: flags only
    (the suite's `[check]` table is read from the new run, see `config`); `models` / `seeds`
    restrict both runs. Raises `CheckError` when the runs cannot be compared."""
    if Path(new_dir).resolve() == Path(ref_dir).resolve():
        raise CheckError(f"the new run and the reference are the same directory: {new_dir}")
    ref, new = _load(ref_dir, "reference"), _load(new_dir, "new")
    flags = (settings or CheckSettings()).flags
    settings = find_suite_settings(new.path, new.manifest, suite_file).with_flags(**flags)
    if settings.test not in stats.TESTS:
        raise CheckError(f"--test: '{settings.test}' is not one of {', '.join(stats.TESTS)}")
    rm, nm = _prepare(ref, models, seeds), _prepare(new, models, seeds)
    if rm.empty:
        raise CheckError(f"the reference run {ref.path} has no rows"
                         + (" for the selected models/seeds" if models or seeds else ""))
    rm, nm = _select(rm, nm, settings.metrics)
    _check_comparable(ref, new, rm, nm)
    notes: list[str] = []
    qr, qn = rm["pass"] != "efficiency", nm["pass"] != "efficiency"
    q_ref, q_new = _common_seeds(rm[qr], nm[qn], notes)
    rm, nm = pd.concat([q_ref, rm[~qr]]), pd.concat([q_new, nm[~qn]])
    a, b = _aggregate(rm), _aggregate(nm)
    joined = pd.merge(a, b, how="outer", left_index=True, right_index=True,
                      suffixes=("_ref", "_new"))
    missing = joined[joined["value_new"].isna() & joined["value_ref"].notna()]
    if len(missing):
        raise _missing_error(missing.reset_index(), ref, new)
    extra = joined[joined["value_ref"].isna()].reset_index()
    added = [f"{x.dataset}/{x.model} {metric_label(x.metric, x.k)}" for x in
             extra.itertuples(index=False)]
    rows = (joined[joined["value_ref"].notna()].reset_index()
            .rename(columns={"value_ref": "reference", "value_new": "new",
                             "n_ref": "n_reference"}))
    rows["n_reference"] = rows["n_reference"].astype(int)
    rows["n_new"] = rows["n_new"].astype(int)
    ru, nu = _user_values(ref, rm[rm["pass"] != "efficiency"]), \
        _user_values(new, nm[nm["pass"] != "efficiency"])
    rows = _verdicts(rows, ru, nu, settings)
    models = {m: i for i, m in enumerate(dict.fromkeys(rm["model"]))}
    metrics = {m: i for i, m in enumerate(dict.fromkeys(rm["metric"]))}
    rows = rows.assign(_m=rows["model"].map(models), _x=rows["metric"].map(metrics))
    rows = (rows.sort_values(["dataset", "split_fingerprint", "protocol", "pass", "slice",
                              "perturbation", "_m", "_x", "k"], kind="stable")
            .drop(columns=["_m", "_x"]).reset_index(drop=True))
    notes += _model_notes(ref, new, list(dict.fromkeys(rows["model"])))
    if added:
        notes.append(f"{len(added)} row(s) only in the new run, not checked: "
                     + ", ".join(added[:8]) + (" …" if len(added) > 8 else ""))
    unpaired = int(((rows["kind"] == "quality") & (rows["n_paired"] == 0)).sum())
    if unpaired:
        notes.append(f"{unpaired} quality row(s) have no per-user values (slices, or no "
                     "per_user.parquet): judged on the tolerance alone")
    if (rows["kind"] == "efficiency").any() and _machine(ref.manifest) != _machine(new.manifest):
        notes.append(f"efficiency rows compare different machines: reference "
                     f"{_machine(ref.manifest)}, new {_machine(new.manifest)}")
    failed = [c["cell"] for c in new.manifest.get("cells", []) if c.get("status") != "ok"]
    if failed:
        notes.append(f"failed cells in the new run: {', '.join(failed)}")
    return CheckResult(ref.path, new.path, rows, settings, notes, added)

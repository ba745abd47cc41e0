"""Leaderboard tables: one per (dataset, split fingerprint, target, candidate protocol).

Rows of different split fingerprints, targets or candidate protocols never share a table; each
table says which other tables of its dataset it was kept apart from, and why.

Accuracy table (rows with pass = accuracy, slice = all, perturbation = none): rows are models,
columns metric@k. For model m, column c:

- mean: (1/S) Σ_s value_{m,s,c}, the mean over the S seeds of the run-level means;
- per-user value: u_{m,c}(user) = mean over the seeds in which the user was evaluated of
  value_{m,s,c}(user) (seeds first, so the bootstrap resamples users, the unit that varies);
- CI: percentile bootstrap over users of mean_user u_{m,c} (`stats.bootstrap_ci`). When every
  seed evaluates the same users (the usual case), mean_user u = the mean above;
- test vs the reference model r: paired test over the users evaluated for both, on
  (u_{m,c}, u_{r,c}); Holm's correction over all (model, column) comparisons of the table.

Reference: `--reference MODEL`, or by default each table's top model by its first column. A
reference absent from every table is an error; absent from some, those tables say so and carry
no tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.errors import UserError, did_you_mean
from harness.report import stats
from harness.report.load import TABLE_KEY

SECTIONS = ("accuracy", "fairness", "robustness", "efficiency")
DAGGER = "†"


@dataclass(frozen=True)
class ReportOptions:
    """What `harness report` computes (see the module docstrings for the formulas)."""

    reference: str | None = None
    metrics: tuple[str, ...] | None = None
    test: str = "t"
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0
    n_permutations: int = 10000


@dataclass
class Cell:
    """One table cell: `value` (bolded when `best`), then `detail` (CI) and `marker` (test)."""

    value: str
    detail: str = ""
    marker: str = ""
    best: bool = False


@dataclass
class Table:
    """A rendered-format-neutral table; `data` holds its numbers in tidy form (for csv/plots)."""

    section: str
    slug: str
    title: str
    columns: list[str]
    rows: list[tuple[str, list[Cell]]]
    data: pd.DataFrame
    key: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    row_header: str = "model"


def section_of(metrics: pd.DataFrame) -> pd.Series:
    """efficiency (pass) > robustness (perturbation != none) > fairness (slice != all or pass
    fairness) > accuracy."""
    sec = pd.Series("accuracy", index=metrics.index)
    sec[(metrics["pass"] == "fairness") | (metrics["slice"] != "all")] = "fairness"
    sec[(metrics["pass"] == "robustness") | (metrics["perturbation"] != "none")] = "robustness"
    sec[metrics["pass"] == "efficiency"] = "efficiency"
    return sec


def col_label(metric: str, k) -> str:
    """'metric@k', or just 'metric' when k is missing or <= 0 (e.g. efficiency rows)."""
    if k is None or pd.isna(k) or int(k) <= 0:
        return str(metric)
    return f"{metric}@{int(k)}"


def fmt(x: float, digits: int = 4) -> str:
    return "–" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def fmt_p(p: float) -> str:
    return "" if pd.isna(p) else ("p<0.001" if p < 0.001 else f"p={p:.3f}")


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80]


def groups(df: pd.DataFrame) -> list[tuple[dict, pd.DataFrame]]:
    """Split rows by TABLE_KEY, in order of (dataset, first appearance)."""
    if df.empty:
        return []
    out = [(dict(zip(TABLE_KEY, key)), g) for key, g in df.groupby(TABLE_KEY, sort=False)]
    order = {d: i for i, d in enumerate(dict.fromkeys(df["dataset"]))}
    return sorted(out, key=lambda kg: order[kg[0]["dataset"]])


def key_title(key: dict, g: pd.DataFrame) -> str:
    splits = ", ".join(sorted(set(g["split"])))
    cand = key["protocol"]
    if key["candidates_def"] != cand:
        cand += f": {key['candidates_def']}"
    users = int(g["n_users"].max()) if len(g) else 0
    return (f"{key['dataset']} · split {splits} ({key['split_fingerprint']}) · "
            f"target {key['target']} · candidates {cand} · users {users}")


def separation_notes(tables: list[Table]) -> None:
    """Add to each table a line naming the other tables of its dataset and what differs."""
    fields = [("split_fingerprint", "split fingerprint"), ("target", "target"),
              ("protocol", "candidates"), ("candidates_def", "candidate definition")]
    for i, t in enumerate(tables):
        others = []
        for j, o in enumerate(tables):
            if i == j or o.key.get("dataset") != t.key.get("dataset"):
                continue
            diff = [f"{name} {o.key[f]} ≠ {t.key[f]}" for f, name in fields
                    if o.key[f] != t.key[f]
                    and not (f == "candidates_def" and o.key["protocol"] != t.key["protocol"])]
            if diff:
                others.append(f"#{j + 1} ({'; '.join(diff)})")
        if others:
            t.notes.append("Kept apart from table " + ", ".join(others) + ": rows from "
                           "different splits, targets or candidate protocols are never pooled "
                           "or compared.")


def resolve_columns(available: list[tuple[str, int]], requested) -> list[tuple[str, int]]:
    """`--metrics` items 'ndcg@10' (one column) or 'ndcg' (every k); unknown ones are errors."""
    if not requested:
        return available
    labels = {col_label(m, k): (m, k) for m, k in available}
    out = []
    for item in requested:
        if item in labels:
            out.append(labels[item])
        elif any(m == item for m, _ in available):
            out += [(m, k) for m, k in available if m == item]
        else:
            raise UserError(f"--metrics: '{item}' is not in these runs"
                            f"{did_you_mean(item, list(labels) + [m for m, _ in available])}")
    return list(dict.fromkeys(out))


def _available(acc: pd.DataFrame) -> list[tuple[str, int]]:
    pairs = acc[["metric", "k"]].drop_duplicates()
    first = {m: i for i, m in enumerate(dict.fromkeys(pairs["metric"]))}
    return sorted(((m, int(k)) for m, k in pairs.itertuples(index=False)),
                  key=lambda mk: (first[mk[0]], mk[1]))


def _table_users(per_user: pd.DataFrame, key: dict, g: pd.DataFrame) -> pd.DataFrame:
    """The per-user rows of one table: its key fields and its cells (cell names alone are
    not unique across merged runs), unperturbed."""
    sel = per_user["cell"].isin(set(g["cell"])) & (per_user["perturbation"] == "none")
    for f, v in key.items():
        sel &= per_user[f] == v
    return per_user[sel]


def _user_values(pu: pd.DataFrame, g: pd.DataFrame, metric: str, k: int) -> pd.DataFrame:
    """users x models: each user's value averaged over the seeds (cells) that evaluated it."""
    model_of = g.drop_duplicates("cell").set_index("cell")["model"]
    pu = pu[(pu["metric"] == metric) & (pu["k"] == k)]
    if pu.empty:
        return pd.DataFrame()
    pu = pu.assign(model=pu["cell"].map(model_of))
    return pu.groupby(["user", "model"])["value"].mean().unstack("model")


def _accuracy_table(key: dict, g: pd.DataFrame, per_user: pd.DataFrame, cols, opts,
                    reference: str | None) -> Table:
    agg = g.groupby(["model", "metric", "k"])["value"].agg(["mean", "std", "count"])
    first = cols[0]
    models = list(dict.fromkeys(g["model"]))
    firsts = {m: agg["mean"].get((m, *first), np.nan) for m in models}
    models.sort(key=lambda m: -np.nan_to_num(firsts[m], nan=-np.inf))
    notes = []
    if reference is None:
        reference = models[0]
        ref_note = f"top model by {col_label(*first)}; choose one with --reference"
    elif reference in models:
        ref_note = "--reference"
    else:
        ref_note = None
        notes.append(f"No significance tests in this table: reference '{reference}' is not in "
                     f"it (models here: {', '.join(models)}).")
        reference = None
    recs = []
    no_users = set()
    per_user = _table_users(per_user, key, g)
    for metric, k in cols:
        wide = _user_values(per_user, g, metric, k)
        for m in models:
            if (m, metric, k) not in agg.index:
                recs.append({"model": m, "metric": metric, "k": k})
                continue
            a = agg.loc[(m, metric, k)]
            rec = {"model": m, "metric": metric, "k": k, "mean": a["mean"],
                   "std_seeds": a["std"], "n_seeds": int(a["count"]),
                   "n_users": int(g[(g.model == m) & (g.metric == metric)
                                    & (g.k == k)]["n_users"].max())}
            u = wide[m].dropna().to_numpy() if m in wide.columns else np.empty(0)
            if u.size == 0:
                no_users.add(m)
            rec["ci_low"], rec["ci_high"] = stats.bootstrap_ci(u, opts.n_boot, opts.seed,
                                                               opts.alpha)
            if reference and m != reference and u.size and reference in wide.columns:
                both = wide[[m, reference]].dropna()
                rec["n_paired"] = len(both)
                rec["p"] = stats.paired_test(both[m].to_numpy(), both[reference].to_numpy(),
                                             opts.test, opts.seed, opts.n_permutations)
            recs.append(rec)
    data = pd.DataFrame(recs)
    for c in ("mean", "std_seeds", "n_seeds", "n_users", "ci_low", "ci_high", "p", "n_paired"):
        if c not in data.columns:
            data[c] = np.nan
    data["p_holm"] = stats.holm(data["p"].to_numpy())
    data["significant"] = data["p_holm"] <= opts.alpha
    col_max = data.groupby(["metric", "k"])["mean"].transform("max")
    data["best"] = np.isclose(data["mean"], col_max, rtol=0, atol=1e-12)
    data["reference"] = reference or ""
    data.insert(0, "table", "")
    n_tests = int(data["p"].notna().sum())
    rows = []
    by = data.set_index(["model", "metric", "k"])
    for m in models:
        cells = []
        for metric, k in cols:
            r = by.loc[(m, metric, k)]
            ci = (f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]"
                  if pd.notna(r["ci_low"]) else "")
            marker = ((DAGGER + " " if r["significant"] else "") + fmt_p(r["p_holm"])
                      if pd.notna(r["p_holm"]) else "")
            cells.append(Cell(fmt(r["mean"]), ci, marker, bool(r["best"])))
        seeds = int(g[g.model == m]["seed"].nunique())
        rows.append((f"{m} (ref)" if m == reference else m, [Cell(str(seeds))] + cells))
    test_name = {"t": "paired t-test", "wilcoxon": "Wilcoxon signed-rank test",
                 "randomization": f"paired randomization test ({opts.n_permutations} "
                                  f"sign flips, seed {opts.seed})"}[opts.test]
    level = f"{100 * (1 - opts.alpha):g}%"
    notes.insert(0, f"Mean over seeds of each run's mean; [lo, hi]: {level} percentile "
                    f"bootstrap CI over users ({opts.n_boot} resamples, seed {opts.seed}; each "
                    "user's value is first averaged over the seeds). Bold: best in column."
                 if opts.n_boot > 0 else "Mean over seeds of each run's mean. Bold: best in "
                                         "column.")
    if reference:
        notes.insert(1, f"Reference: {reference} ({ref_note}). {DAGGER}: differs from it, "
                        f"{test_name} over users, Holm-corrected over the {n_tests} "
                        f"comparisons of this table, alpha {opts.alpha:g}; p shown is "
                        "Holm-adjusted.")
    if no_users:
        notes.append("No per-user values (no CI, no test) for: " + ", ".join(sorted(no_users)))
    return Table("accuracy", "", key_title(key, g), ["seeds"] + [col_label(*c) for c in cols],
                 rows, data, key, notes)


def accuracy_tables(metrics: pd.DataFrame, per_user: pd.DataFrame,
                    opts: ReportOptions) -> list[Table]:
    """One leaderboard per table key, with CIs and tests (see the module docstring)."""
    acc = metrics[section_of(metrics) == "accuracy"]
    if acc.empty:
        return []
    acc = acc.assign(k=acc["k"].fillna(0).astype(int))
    cols = resolve_columns(_available(acc), opts.metrics)
    grouped = groups(acc)
    if opts.reference:
        present = [set(g["model"]) for _, g in grouped]
        if not any(opts.reference in p for p in present):
            listing = "; ".join(f"table {i + 1} ({key_title(k, g)}): "
                                f"{', '.join(sorted(p))}"
                                for i, ((k, g), p) in enumerate(zip(grouped, present)))
            raise UserError(f"--reference '{opts.reference}' is in no table"
                            f"{did_you_mean(opts.reference, set().union(*present))}. "
                            f"Models per table: {listing}")
    tables = []
    for key, g in grouped:
        here = [c for c in cols if ((g["metric"] == c[0]) & (g["k"] == c[1])).any()]
        if not here:
            continue
        tables.append(_accuracy_table(key, g, per_user, here, opts, opts.reference))
    return tables

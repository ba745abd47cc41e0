"""The fairness pass (issue #11) end to end on synthetic data: rows recomputed from the accuracy
pass's saved lists and per-user values, Holm, too-small groups, determinism, counterfactual rows
for a recommender that reads user text, invariance of ID models, bad input (exit 2)."""

import dataclasses
import json

import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch

from harness import registry
from harness.cli import main
from harness.errors import SuiteError
from harness.fairness import items as it
from harness.fairness.config import schema
from harness.passes import get as get_pass
from harness.report.stats import holm
from harness.runner import run_suite
from harness.suite import load_suite, parse_suite
from tests.fairness_plugins import GenderBoost

BASE = """
[suite]
name = "fair"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 150
n_items = 80
n_interactions = 2500
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [5, 10]
metrics = ["ndcg", "recall"]
"""
MODELS = """
[[models]]
name = "pop"
[[models]]
name = "itemknn"
[[models]]
name = "tests.fairness_plugins:GenderBoost"
label = "boost"
"""
FAIR = """
[fairness]
ks = [10]
user_groups = ["gender", "age", "occupation", "activity"]
buckets = { age = [30, 45] }
activity_quantiles = [0.5]
min_group_size = 19
permutations = 300
bootstrap = 200
item_groups = ["popularity", "class"]
[fairness.counterfactual]
attributes = ["gender"]
values = { gender = ["M", "F"] }
max_users = 60
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fair")
    path = tmp / "s.toml"
    path.write_text(BASE + MODELS + FAIR)
    GenderBoost.instances.clear()
    res = run_suite(load_suite(path), tmp / "out", save_runs=True, quiet=True)
    return res, tmp


def _fair(res) -> pd.DataFrame:
    m = res.metrics
    return m[m["pass"] == "fairness"]


def _v(df, model, metric, slc="all", k=10) -> float:
    sel = df[(df.model == model) & (df.metric == metric) & (df.slice == slc) & (df.k == k)]
    assert len(sel) == 1, (model, metric, slc, k)
    return float(sel.value.iloc[0])


def test_item_rows_recomputed_from_saved_lists(run):
    res, _ = run
    fair = _fair(res)
    from harness.data import load_dataset
    from harness.splits.make import make_split
    ds = load_dataset("synthetic", n_users=150, n_items=80, n_interactions=2500)
    split = make_split(ds, "random_holdout", {}, 0)
    pop = np.asarray(split.train.csr().sum(0)).ravel()
    for model in ("pop", "itemknn"):
        cell = [c for c in res.manifest["cells"] if c["model"] == model][0]["cell"]
        top = np.load(res.run_dir / "cells" / cell / "top.npz")
        lists = it.valid_lists(top["items"], top["scores"], 10)
        counts = it.exposure_counts(lists, ds.n_items)
        assert _v(fair, model, "item_coverage") == pytest.approx(
            len(np.unique(lists[lists >= 0])) / ds.n_items)
        assert _v(fair, model, "gini_index") == pytest.approx(it.gini_index(counts))
        assert _v(fair, model, "arp") == pytest.approx(np.nanmean(it.per_user_mean(lists, pop)))
        tail = it.popularity_groups(pop, (0.2, 0.8)) == 2
        assert _v(fair, model, "aplt") == pytest.approx(
            np.nanmean(it.per_user_mean(lists, tail.astype(float))))
        shares = fair[(fair.model == model) & (fair.metric == "exposure_share")
                      & fair.slice.str.startswith("item:popularity=")]
        assert sorted(shares.slice) == ["item:popularity=head", "item:popularity=mid",
                                        "item:popularity=tail"]
        assert shares.value.sum() == pytest.approx(1.0)
        genre = fair[(fair.model == model) & (fair.metric == "catalog_share")
                     & fair.slice.str.startswith("item:class=")]
        assert genre.value.sum() == pytest.approx(1.0)  # fractional multi-genre membership
    # pop ranks head items first: more popular lists than itemknn's, lower coverage
    assert _v(fair, "pop", "arp") > _v(fair, "itemknn", "arp")
    assert _v(fair, "pop", "item_coverage") < _v(fair, "itemknn", "item_coverage")
    pu = res.run_dir / "per_user.parquet"
    per_user = pd.read_parquet(pu)
    assert {"arp", "aplt", "pop_lift"} <= set(per_user.metric)


def test_group_rows_from_accuracy_per_user_values(run):
    res, _ = run
    fair = _fair(res)
    per_user = pd.read_parquet(res.run_dir / "per_user.parquet")
    from harness.data import load_dataset
    ds = load_dataset("synthetic", n_users=150, n_items=80, n_interactions=2500)
    cell = [c for c in res.manifest["cells"] if c["model"] == "itemknn"][0]
    pu = per_user[(per_user.cell == cell["cell"]) & (per_user.metric == "ndcg")
                  & (per_user.k == 10)]
    index = {str(u): i for i, u in enumerate(ds.user_ids)}
    gender = ds.users["gender"].to_numpy()[[index[u] for u in pu.user]]
    means = pu.groupby(gender)["value"].mean()
    for g, mean in means.items():
        assert _v(fair, "itemknn", "ndcg", f"gender={g}") == pytest.approx(mean)
        n = fair[(fair.model == "itemknn") & (fair.metric == "ndcg")
                 & (fair.slice == f"gender={g}")].n_users.item()
        assert n == (gender == g).sum()
    assert _v(fair, "itemknn", "ndcg_gap", "gender") == pytest.approx(means.max() - means.min())
    assert _v(fair, "itemknn", "ndcg_ratio", "gender") == pytest.approx(means.min() / means.max())
    lo, hi = (_v(fair, "itemknn", f"ndcg_gap_ci_{s}", "gender") for s in ("low", "high"))
    assert lo <= hi
    # Holm over the groupings of the same metric@k
    g = fair[(fair.model == "itemknn") & (fair.k == 10)]
    p = g[g.metric == "ndcg_gap_p"].set_index("slice").value
    ph = g[g.metric == "ndcg_gap_p_holm"].set_index("slice").value
    assert set(p.index) == {"gender", "age", "occupation", "activity"}
    assert ph[p.index].to_numpy() == pytest.approx(holm(p.to_numpy()))
    # groups below min_group_size: in the record, never as rows
    rec = cell["fairness"]["users"]["occupation"]
    assert rec["too_small"], "synthetic occupations include groups under 19 users"
    for label in rec["too_small"]:
        assert not (fair.slice == f"occupation={label}").any()
    assert sum(rec["groups"].values()) + sum(rec["too_small"].values()) == len(pu)


def test_counterfactual_rows_for_a_text_recommender(run):
    res, _ = run
    fair = _fair(res)
    assert _v(fair, "boost", "cf_reads_user_text", k=0) == 1.0
    for model in ("pop", "itemknn"):
        assert _v(fair, model, "cf_reads_user_text", k=0) == 0.0
        assert not fair[(fair.model == model) & fair.metric.str.startswith("cf_")
                        & (fair.metric != "cf_reads_user_text")].shape[0]
        rec = [c for c in res.manifest["cells"] if c["model"] == model][0]["fairness"]
        assert rec["counterfactual"]["status"].startswith("invariant by construction")
    # neutral (gender blank) and M get no boost: identical lists; F: boosted even items
    for sim in ("jaccard", "serp", "prag"):
        assert _v(fair, "boost", f"cf_{sim}", "gender=M") == 1.0
        f = _v(fair, "boost", f"cf_{sim}", "gender=F")
        assert 0 <= f < 1
        assert _v(fair, "boost", f"cf_snsr_{sim}", "gender") == pytest.approx(1 - f)
        assert _v(fair, "boost", f"cf_snsv_{sim}", "gender") == pytest.approx((1 - f) / 2)
    assert _v(fair, "boost", "cf_delta_ndcg", "gender=M") == 0.0
    assert fair[(fair.model == "boost") & (fair.metric == "cf_jaccard")].n_users.max() == 60
    inst = [m for m in GenderBoost.instances if m.views]
    assert len(inst) == 1 and inst[0].views[-1] is None  # clean text restored
    assert inst[0].views[:-1] == ["gender=neutral", "gender=M", "gender=F"]
    rec = [c for c in res.manifest["cells"] if c["model"] == "boost"][0]["fairness"]
    assert rec["counterfactual"]["n_users"] == 60


def test_manifest_leaderboard_cost_and_directions(run):
    res, _ = run
    entry = res.manifest["fairness"]
    assert entry["config"]["ks"] == [10] and entry["config"]["min_group_size"] == 19
    for c in res.manifest["cells"]:
        assert c["passes"]["fairness"]["status"] == "ok"
        assert c["passes"]["fairness"]["seconds"] > 0 and c["passes"]["accuracy"]["seconds"] > 0
        assert set(c["fairness"]["seconds"]) == {"items", "users", "counterfactual"}
    board = res.leaderboard
    assert "## Fairness" in board and "invariant by construction" in board
    assert "fairness / accuracy" in board and "occupation" in board
    p = get_pass("fairness")
    for metric in set(_fair(res).metric):
        assert isinstance(p.higher_is_better(metric), bool), metric
    assert p.higher_is_better("gini_index") is False and p.higher_is_better("ndcg") is True
    assert p.higher_is_better("ndcg_gap") is False and p.higher_is_better("cf_snsr_prag") is False
    assert not p.judged("ndcg_gap_p_holm") and p.judged("ndcg_gap")
    assert p.higher_is_better("not_a_metric") is None


def test_seeded_determinism(run, tmp_path):
    res, tmp = run
    again = run_suite(load_suite(tmp / "s.toml"), tmp_path / "out", quiet=True,
                      models=["itemknn"])
    a = _fair(res)
    a = a[a.model == "itemknn"].set_index(["metric", "k", "slice"]).value.sort_index()
    b = _fair(again)
    b = b.set_index(["metric", "k", "slice"]).value.sort_index()
    pd.testing.assert_series_equal(a, b)


def test_id_models_are_invariant_to_the_user_table():
    from harness.data import load_dataset
    from harness.splits.make import make_split
    ds = load_dataset("synthetic", n_users=100, n_items=60, n_interactions=1500)
    split = make_split(ds, "random_holdout", {}, 0)
    users = ds.users.copy()
    users["gender"] = np.where(users["gender"] == "F", "M", "F")
    users["age"] = "99"
    changed = dataclasses.replace(ds, users=users)
    split2 = dataclasses.replace(split, dataset=changed)
    u, i = torch.arange(ds.n_users), torch.arange(ds.n_items)
    for name in ("pop", "itemknn", "ease", "random"):
        a = registry.build(name, {}, 0)
        a.fit(split, ds)
        b = registry.build(name, {}, 0)
        b.fit(split2, changed)
        assert torch.equal(a.score(u, i), b.score(u, i)), name
        assert not getattr(a, "uses_text", False)


# --- bad input ---------------------------------------------------------------------------------

def _suite(tmp_path, fair: str, base: str = BASE, models: str = '[[models]]\nname = "pop"\n'):
    return tmp_path, base + models + fair


@pytest.mark.parametrize("fair, key, text", [
    ("[fairness]\nmin_grup_size = 5\n", "fairness.min_grup_size", "did you mean 'min_group_size'"),
    ("[fairness]\nks = [7]\n", "fairness.ks[0]", "not in [evaluation] ks"),
    ("[fairness]\nbuckets = { age = [30, 20] }\n", "fairness.buckets.age", "strictly increasing"),
    ("[fairness]\nmin_group_size = 0\n", "fairness.min_group_size", "must be positive"),
    ("[fairness]\npermutations = -1\n", "fairness.permutations", "must be positive"),
    ("[fairness]\nconfidence = 1.5\n", "fairness.confidence", "(0, 1)"),
    ("[fairness]\nmetrics = [\"ndgc\"]\n", "fairness.metrics[0]", "did you mean 'ndcg'"),
    ("[fairness]\nmodels = [\"popp\"]\n", "fairness.models[0]", "did you mean 'pop'"),
    ("[fairness]\nactivity_quantiles = [0.5, 1.2]\n", "fairness.activity_quantiles", "(0, 1)"),
    ("[fairness]\nuser_groups = []\n", "fairness.user_groups", "non-empty"),
    ("[fairness.counterfactual]\nattributes = [\"gender\"]\nvalues = { gender = [] }\n",
     "fairness.counterfactual.values.gender", "non-empty"),
    ("[fairness.counterfactual]\nattributes = [\"gender\"]\nvalues = { gendr = [\"M\"] }\n",
     "fairness.counterfactual.values.gendr", "did you mean 'gender'"),
])
def test_bad_tables_are_suite_errors(fair, key, text):
    import tomllib
    raw = tomllib.loads(BASE + '[[models]]\nname = "pop"\n' + fair)
    with pytest.raises(SuiteError) as exc:
        parse_suite(raw, "bad.toml")
    assert exc.value.key == key and text in str(exc.value) and "bad.toml" in str(exc.value)


@pytest.mark.parametrize("fair, text", [
    ("[fairness]\nuser_groups = [\"gendr\"]\n", "no user field 'gendr' (did you mean 'gender'?)"),
    ("[fairness]\nitem_groups = [\"genre\"]\n", "no item field 'genre'"),
    ("[fairness.counterfactual]\nattributes = [\"zip\"]\n", "no user field 'zip'"),
])
def test_missing_fields_exit_2_before_writing(tmp_path, capsys, fair, text):
    path = tmp_path / "s.toml"
    path.write_text(BASE + '[[models]]\nname = "pop"\n' + fair)
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert text in err and str(path) in err and "valid: " in err
    assert not (tmp_path / "o" / "fair").exists()


def test_dataset_without_user_table_asked_for_user_groups(tmp_path, capsys):
    d = tmp_path / "data"
    d.mkdir()
    rows = [f"{u}\t{i}\t1\t{u * 100 + i}" for u in range(1, 40) for i in range(1, 6 + u % 20)]
    (d / "d.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                               + "\n".join(rows) + "\n")
    base = BASE.replace('name = "synthetic"\nn_users = 150\nn_items = 80\nn_interactions = 2500',
                        f'path = "{d}"')
    path = tmp_path / "s.toml"
    path.write_text(base + '[[models]]\nname = "pop"\n[fairness]\nuser_groups = ["gender"]\n')
    assert main(["run", str(path), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "fairness.user_groups[0]" in err and "has no user table" in err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("manifest.json"))
    # the automatic grouping needs no user table: activity only
    path.write_text(base + '[[models]]\nname = "pop"\n[fairness]\npermutations = 50\n'
                           'bootstrap = 50\nmin_group_size = 5\n')
    res = run_suite(load_suite(path), tmp_path / "o2", quiet=True)
    slices = set(res.metrics[res.metrics["pass"] == "fairness"].slice)
    assert "activity" in slices and not any(s.startswith("gender") for s in slices)


def test_schema_accepts_the_documented_table_and_rejects_bad_ones():
    import tomllib
    raw = tomllib.loads(FAIR)["fairness"]
    jsonschema.validate(raw, schema())
    for bad in ({"min_group_size": 0}, {"unknown": 1}, {"counterfactual": {"values": {}}},
                {"popularity_cuts": [1.5]}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema())
    assert get_pass("fairness").schema() == schema()
    json.dumps(schema())


# --- report tables and figures, harness check ----------------------------------------------------

def test_report_tables_and_figures(run, tmp_path):
    from harness.report.load import load_runs
    from harness.report.plots import make_plots
    from harness.report.sections import fairness_tables
    res, _ = run
    _, metrics, _ = load_runs([res.run_dir])
    tables = fairness_tables(metrics)
    kinds = [t.data["kind"].iloc[0] for t in tables]
    assert {"exposure", "item_groups", "user_groups", "counterfactual"} <= set(kinds)
    fair = _fair(res)
    gender = [t for t in tables if t.title.startswith("ndcg@10 by gender")][0]
    gap = gender.data[(gender.data.model == "itemknn") & (gender.data.slice == "gap(max-min)")]
    assert gap["mean"].item() == pytest.approx(_v(fair, "itemknn", "ndcg_gap", "gender"))
    assert gap["p_holm"].item() == pytest.approx(_v(fair, "itemknn", "ndcg_gap_p_holm", "gender"))
    assert gender.columns[-3:] == ["gap (max−min)", "gap CI", "p (Holm)"]
    cf = [t for t in tables if t.data["kind"].iloc[0] == "counterfactual"][0]
    labels = [label for label, _ in cf.rows]
    assert "boost · F" in labels and "boost · SNSR" in labels
    assert labels.count("pop") == 1 and labels.count("itemknn") == 1  # invariant rows
    made = make_plots(tables, tmp_path / "fig")
    assert {"exposure_share", "per_group", "similarity"} <= {p["kind"] for p in made}
    assert all(p["png"].exists() and p["svg"].exists() for p in made)


def test_check_fairness_gap_needs_growth_and_a_significant_test(tmp_path):
    from harness.check import compare_runs
    from tests.test_check import values_for, write_run

    def rows(gaps: dict) -> tuple:
        out = []
        for attr, (gap, p) in gaps.items():
            out += [("A", 0, {"pass": "fairness", "metric": "ndcg_gap", "k": 10, "value": gap,
                              "slice": attr, "n_users": 200}),
                    ("A", 0, {"pass": "fairness", "metric": "ndcg_gap_p_holm", "k": 10,
                              "value": p, "slice": attr, "n_users": 200}),
                    ("A", 0, {"pass": "fairness", "metric": "ndcg_gap_p", "k": 10,
                              "value": p / 2, "slice": attr, "n_users": 200})]
        return tuple(out)
    ref = write_run(tmp_path / "ref", values=values_for(models=("A",)), extra_rows=rows(
        {"gender": (0.05, 0.5), "age": (0.05, 0.5), "occupation": (0.05, 0.5),
         "activity": (0.05, 0.001)}))
    new = write_run(tmp_path / "new", values=values_for(models=("A",)), extra_rows=rows(
        {"gender": (0.15, 0.01), "age": (0.15, 0.3), "occupation": (0.02, 0.9),
         "activity": (0.052, 0.001)}))
    res = compare_runs(new, ref)
    r = res.rows[res.rows["pass"] == "fairness"].set_index(["metric", "slice"])
    assert r.loc[("ndcg_gap", "gender"), "verdict"] == "regression"   # grew, significant
    assert r.loc[("ndcg_gap", "gender"), "p"] == pytest.approx(0.01)  # Holm-adjusted p
    assert r.loc[("ndcg_gap", "age"), "verdict"] == "worse (n.s.)"    # grew, not significant
    assert r.loc[("ndcg_gap", "occupation"), "verdict"] == "improved"
    assert r.loc[("ndcg_gap", "activity"), "verdict"] == "ok"         # within the tolerance
    assert set(r.loc[["ndcg_gap_p", "ndcg_gap_p_holm"], "verdict"]) == {"ok"}
    assert set(r.loc[["ndcg_gap_p_holm"], "kind"]) == {"fairness-info"}
    assert not res.passed and len(res.regressions) == 1

"""`harness check`: row matching, comparability errors, quality and efficiency verdicts, the
suite's [check] table, --json, --update-reference, the CI workflow example, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.check import CheckError, CheckSettings, compare_runs, render_text, update_reference
from harness.check.config import validate_check_table
from harness.cli import main
from harness.errors import SuiteError
from harness.results import METRIC_COLUMNS, PER_USER_COLUMNS
from harness.suite import load_suite, parse_suite

ROOT = Path(__file__).resolve().parent.parent
N_USERS = 200


def base_values(model: str, metric: str = "ndcg", k: int = 10, seed: int = 0,
                n: int = N_USERS) -> np.ndarray:
    """Per-user values in [0, 1], the same for the same (model, metric, k, seed)."""
    key = int(hashlib.sha256(f"{model}{metric}{k}{seed}".encode()).hexdigest()[:8], 16)
    return np.random.default_rng(key).uniform(0.1, 0.9, n)


def write_run(path: Path, values: dict, *, fp: str = "fp-a", split_seed: int = 0,
              efficiency: tuple = (), extra_rows: tuple = (), suite_file: Path | None = None,
              failed: tuple = ()) -> Path:
    """A finished run directory. `values`: (model, seed, metric, k) -> per-user values;
    `efficiency`: (model, seed, metric, value) rows; `extra_rows`: raw metric-row overrides."""
    rows, per_user, cells = [], [], {}

    def row(model, seed, **kw):
        cell = f"ds__holdout__full__{model}__s{seed}"
        cells[cell] = model
        base = {"suite": "t", "run_id": "r", "cell": cell, "dataset": "ds", "split": "holdout",
                "split_fingerprint": fp, "protocol": "full", "model": model, "seed": seed,
                "pass": "accuracy", "slice": "all", "perturbation": "none", "n_users": 0}
        return {**base, **kw}

    for (model, seed, metric, k), vals in values.items():
        vals = np.asarray(vals, float)
        rows.append(row(model, seed, metric=metric, k=k, value=float(vals.mean()),
                        n_users=len(vals)))
        per_user.append(pd.DataFrame({"cell": rows[-1]["cell"],
                                      "user": [f"u{i}" for i in range(len(vals))],
                                      "metric": metric, "k": k, "perturbation": "none",
                                      "value": vals}))
    for model, seed, metric, value in efficiency:
        rows.append(row(model, seed, metric=metric, k=0, value=float(value),
                        **{"pass": "efficiency"}))
    for model, seed, kw in extra_rows:
        rows.append(row(model, seed, **kw))
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows)[METRIC_COLUMNS].to_parquet(path / "metrics.parquet", index=False)
    pu = (pd.concat(per_user, ignore_index=True) if per_user
          else pd.DataFrame(columns=PER_USER_COLUMNS))
    pu[PER_USER_COLUMNS].to_parquet(path / "per_user.parquet", index=False)
    suite = {"name": "t", "file": str(suite_file) if suite_file else "x-missing.toml",
             "sha256": hashlib.sha256(suite_file.read_bytes()).hexdigest() if suite_file
             else ""}
    manifest = {"complete": True, "suite": suite, "run_id": "r",
                "splits": {"ds/holdout": {"fingerprint": fp, "protocol": "random_holdout",
                                          "seed": split_seed, "params": {"ratios": [0.8, 0.2]}}},
                "evaluation": {"target": "test"}, "git": {"commit": "abc", "dirty": False},
                "machine": {"cpu": "test-cpu"},
                "cells": [{"cell": c, "model": m, "recommender": m, "params": {},
                           "status": "failed" if m in failed else "ok",
                           **({"error": "ValueError: boom"} if m in failed else {})}
                          for c, m in cells.items()],
                "n_cells": len(cells), "n_failed": len(failed), "options": {}}
    (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def values_for(models=("A", "B"), seeds=(0,), metrics=(("ndcg", 10), ("recall", 10)),
               shift: dict | None = None) -> dict:
    """(model, seed, metric, k) -> base values (+ shift[(model, metric, k)])."""
    shift = shift or {}
    out = {}
    for m in models:
        for s in seeds:
            for metric, k in metrics:
                v = base_values(m, metric, k, s) + shift.get((m, metric, k), 0.0)
                out[(m, s, metric, k)] = v
    return out


@pytest.fixture
def runs(tmp_path):
    def make(name: str, **kw) -> Path:
        return write_run(tmp_path / name, **kw)
    return make


def verdicts(result) -> dict:
    return {(r["model"], r["metric"], r["k"]): r["verdict"]
            for r in result.rows.to_dict("records")}


# ---------------------------------------------------------------- quality verdicts

def test_identical_runs_pass(runs):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for())
    res = compare_runs(new, ref)
    assert res.exit_code == 0 and len(res.rows) == 4
    assert set(res.rows["verdict"]) == {"ok"}
    assert (res.rows["delta"] == 0).all() and (res.rows["p"] == 1.0).all()
    assert (res.rows["n_paired"] == N_USERS).all()


def test_drop_beyond_tolerance_and_significant_is_a_regression(runs):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for(shift={("A", "ndcg", 10): -0.03}))
    res = compare_runs(new, ref)
    v = verdicts(res)
    assert v[("A", "ndcg", 10)] == "regression"
    assert v[("A", "recall", 10)] == "ok" and v[("B", "ndcg", 10)] == "ok"
    row = res.regressions.iloc[0]
    assert row["delta"] == pytest.approx(-0.03) and row["p"] < 1e-6
    assert res.exit_code == 1
    text = render_text(res)
    assert "REGRESSION" in text and "FAIL: 1 regression(s)" in text and "A: ndcg@10" in text


def test_drop_within_tolerance_passes(runs):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for(shift={("A", "ndcg", 10): -0.009}))
    res = compare_runs(new, ref)
    assert verdicts(res)[("A", "ndcg", 10)] == "ok" and res.exit_code == 0
    assert res.rows.loc[res.rows["metric"].eq("ndcg") & res.rows["model"].eq("A"),
                        "p"].iloc[0] < 1e-6  # significant, but within the tolerance


def test_large_but_noisy_drop_is_not_significant(runs):
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 20)
    noisy = base + rng.normal(-0.02, 0.5, 20)  # mean drop ~0.02, sd 0.5 over 20 users
    ref = runs("ref", values={("A", 0, "ndcg", 10): base})
    new = runs("new", values={("A", 0, "ndcg", 10): noisy})
    res = compare_runs(new, ref)
    row = res.rows.iloc[0]
    assert row["delta"] < -0.01 and row["p"] > 0.05
    assert row["verdict"] == "worse (n.s.)" and res.exit_code == 0


def test_improvement_is_reported_not_failed(runs):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for(shift={("B", "recall", 10): 0.05}))
    res = compare_runs(new, ref)
    assert verdicts(res)[("B", "recall", 10)] == "improved" and res.exit_code == 0


def test_one_sided_p_value_halves_the_two_sided_t_test(runs):
    from harness.report.stats import paired_t
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 50)
    new_vals = base - 0.02 + rng.normal(0, 0.05, 50)
    ref = runs("ref", values={("A", 0, "ndcg", 10): base})
    new = runs("new", values={("A", 0, "ndcg", 10): new_vals})
    p = compare_runs(new, ref).rows.iloc[0]["p"]
    assert p == pytest.approx(paired_t(new_vals, base) / 2)


@pytest.mark.parametrize("test", ["wilcoxon", "randomization"])
def test_other_paired_tests(runs, test):
    ref = runs("ref", values=values_for(models=("A",)))
    new = runs("new", values=values_for(models=("A",), shift={("A", "ndcg", 10): -0.05}))
    res = compare_runs(new, ref, CheckSettings().with_flags(test=test))
    assert verdicts(res)[("A", "ndcg", 10)] == "regression"
    assert res.settings.test == test


def test_seeds_are_averaged_per_user_before_the_test(runs):
    ref = runs("ref", values=values_for(models=("A",), seeds=(0, 1, 2)))
    new = runs("new", values=values_for(models=("A",), seeds=(0, 1, 2),
                                        shift={("A", "ndcg", 10): -0.02}))
    res = compare_runs(new, ref)
    row = res.rows[res.rows["metric"] == "ndcg"].iloc[0]
    assert row["n_paired"] == N_USERS and row["n_reference"] == 3 and row["n_new"] == 3
    means = [base_values("A", "ndcg", 10, s).mean() for s in (0, 1, 2)]
    assert row["reference"] == pytest.approx(np.mean(means))
    assert row["verdict"] == "regression"


def test_only_common_seeds_are_compared(runs):
    ref = runs("ref", values=values_for(models=("A",), seeds=(0, 1)))
    new = runs("new", values=values_for(models=("A",), seeds=(0,)))
    res = compare_runs(new, ref)
    assert set(res.rows["verdict"]) == {"ok"} and (res.rows["delta"] == 0).all()
    assert any("compared on seeds [0]" in n for n in res.notes)


def test_lower_is_better_quality_metric_and_slices_without_per_user(runs):
    # the fairness pass's Gini index of exposure (declared lower-is-better)
    gini = lambda v, s="all": {"metric": "gini_index", "k": 10, "value": v, "slice": s,  # noqa: E731
                               "n_users": 100, "pass": "fairness"}
    ref = runs("ref", values=values_for(models=("A",)),
               extra_rows=(("A", 0, gini(0.50)), ("A", 0, gini(0.30, "gender=F"))))
    new = runs("new", values=values_for(models=("A",)),
               extra_rows=(("A", 0, gini(0.52)), ("A", 0, gini(0.25, "gender=F"))))
    res = compare_runs(new, ref)
    g = res.rows[res.rows["metric"] == "gini_index"].set_index("slice")
    assert g.loc["all", "verdict"] == "regression"       # higher gini is worse
    assert g.loc["gender=F", "verdict"] == "improved"
    assert np.isnan(g.loc["all", "p"])                   # no per-user values: tolerance only
    assert any("judged on the tolerance alone" in n for n in res.notes)
    assert "ndcg@10 [gender=F]" not in render_text(res)
    assert "gini_index@10 [gender=F]" in render_text(res)


# ---------------------------------------------------------------- efficiency verdicts

EFF = ("latency_p90_ms", "fit_seconds", "peak_memory_mb", "throughput_users_per_s")


def eff_rows(model: str, values: dict, seeds=(0, 1, 2)) -> tuple:
    """values: metric -> list of measurements (one per seed)."""
    return tuple((model, s, metric, v) for metric, vs in values.items()
                 for s, v in zip(seeds, vs))


@pytest.mark.parametrize("metric,new,verdict", [
    ("latency_p90_ms", [13.0, 13.0, 13.0], "regression"),       # +30% > 25%
    ("latency_p90_ms", [12.0, 12.0, 12.0], "ok"),               # +20%
    ("latency_p90_ms", [10.0, 10.0, 100.0], "ok"),              # median ignores one outlier
    ("latency_p90_ms", [7.0, 7.0, 7.0], "improved"),
    ("fit_seconds", [13.0, 13.0, 13.0], "regression"),
    ("peak_memory_mb", [13.0, 13.0, 13.0], "regression"),
    ("throughput_users_per_s", [7.0, 7.0, 7.0], "regression"),  # -30%, higher is better
    ("throughput_users_per_s", [13.0, 13.0, 13.0], "improved"),
    ("peak_mb", [13.0, 13.0, 13.0], "regression"),
    ("fit_items_embedded_per_s", [7.0, 7.0, 7.0], "regression"),
    ("params", [13.0, 13.0, 13.0], "regression"),
])
def test_efficiency_medians_and_directions(runs, metric, new, verdict):
    ref = runs("ref", values=values_for(models=("A",)),
               efficiency=eff_rows("A", {metric: [10.0, 9.0, 11.0]}))
    new_run = runs("new", values=values_for(models=("A",)), efficiency=eff_rows("A", {metric: new}))
    res = compare_runs(new_run, ref)
    row = res.rows[res.rows["metric"] == metric].iloc[0]
    assert row["kind"] == "efficiency" and row["reference"] == 10.0
    assert row["new"] == float(np.median(new)) and row["verdict"] == verdict
    assert res.exit_code == (1 if verdict == "regression" else 0)


def test_latency_tolerance_flag_and_missing_k(runs):
    extra = (("A", 0, {"metric": "latency_p90_ms", "k": np.nan, "value": 10.0,
                       "pass": "efficiency"}),)
    extra_new = (("A", 0, {"metric": "latency_p90_ms", "k": np.nan, "value": 14.0,
                           "pass": "efficiency"}),)
    ref = runs("ref", values=values_for(models=("A",)), extra_rows=extra)
    new = runs("new", values=values_for(models=("A",)), extra_rows=extra_new)
    assert compare_runs(new, ref).exit_code == 1
    loose = compare_runs(new, ref, CheckSettings().with_flags(latency_tolerance=0.5))
    assert loose.exit_code == 0
    assert "+40.0%" in render_text(loose) and "50% rel" in render_text(loose)


# ---------------------------------------------------------------- errors (exit 2)

def test_split_fingerprint_mismatch_names_both(runs, capsys):
    ref = runs("ref", values=values_for(), fp="fp-aaaa")
    new = runs("new", values=values_for(), fp="fp-bbbb", split_seed=1)
    with pytest.raises(CheckError, match="fp-aaaa.*seed 0.*fp-bbbb.*seed 1"):
        compare_runs(new, ref)
    assert main(["check", str(new), "--against", str(ref)]) == 2
    assert "split fingerprint mismatch" in capsys.readouterr().err


def test_missing_rows_are_named(runs, capsys):
    ref = runs("ref", values=values_for(models=("A", "B", "C")))
    new = runs("new", values=values_for(models=("A", "C")))
    with pytest.raises(CheckError, match=r"ds/B: ndcg@10, recall@10"):
        compare_runs(new, ref)
    assert main(["check", str(new), "--against", str(ref)]) == 2
    err = capsys.readouterr().err
    assert "2 reference row(s) missing" in err


def test_missing_rows_mention_failed_cells(runs):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for(models=("A",)), failed=("B",),
               extra_rows=(("B", 0, {"metric": "x", "k": 0, "value": 0.0,
                                     "pass": "none-ok"}),))
    with pytest.raises(CheckError, match="failed cells in the new run.*boom"):
        compare_runs(new, ref)


def test_rows_only_in_new_run_are_noted(runs):
    ref = runs("ref", values=values_for(models=("A",)))
    new = runs("new", values=values_for(models=("A", "B")))
    res = compare_runs(new, ref)
    assert res.exit_code == 0 and len(res.added) == 2
    assert any("only in the new run" in n for n in res.notes)


def test_unfinished_run_is_an_error(runs, tmp_path, capsys):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for())
    (new / "manifest.json").unlink()
    assert main(["check", str(new), "--against", str(ref), "--json",
                 str(tmp_path / "out.json")]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["status"] == "error" and out["exit_code"] == 2
    assert main(["check", str(ref), "--against", str(tmp_path / "nope")]) == 2


def test_bad_flags_are_errors(runs, capsys):
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for())
    assert main(["check", str(new), "--against", str(ref), "--alpha", "2"]) == 2
    assert main(["check", str(new), "--against", str(ref), "--metrics", "ndgc@10"]) == 2
    assert "did you mean 'ndcg'" in capsys.readouterr().err
    assert main(["check", str(new), "--against", str(ref), "--metrics", "map@10"]) == 2
    assert "not in the reference run" in capsys.readouterr().err


# ---------------------------------------------------------------- CLI, --json, --metrics

def test_cli_exit_codes_and_json(runs, tmp_path, capsys):
    ref = runs("ref", values=values_for())
    bad = runs("bad", values=values_for(shift={("A", "ndcg", 10): -0.05}))
    out = tmp_path / "check.json"
    assert main(["check", str(bad), "--against", str(ref), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "reference" in text and "p" in text and "REGRESSION" in text
    data = json.loads(out.read_text())
    assert data["status"] == "regression" and data["exit_code"] == 1
    assert {r["verdict"] for r in data["rows"]} == {"ok", "regression"}
    reg = [r for r in data["rows"] if r["verdict"] == "regression"][0]
    assert reg["model"] == "A" and reg["metric"] == "ndcg" and reg["k"] == 10
    assert reg["delta"] == pytest.approx(-0.05)
    # --metrics restricts the gate; --tolerance loosens it
    assert main(["check", str(bad), "--against", str(ref), "--metrics", "recall@10"]) == 0
    assert main(["check", str(bad), "--against", str(ref), "--tolerance", "0.06"]) == 0
    assert main(["check", str(bad), "--against", str(ref), "--models", "B"]) == 0
    capsys.readouterr()
    assert main(["check", str(bad), "--against", str(ref), "--changed-only"]) == 1
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(("A ", "B "))]
    assert len(shown) == 1


# ---------------------------------------------------------------- the suite's [check] table

SUITE = """
[suite]
name = "t"
[[datasets]]
name = "synthetic"
[[splits]]
protocol = "random_holdout"
[[models]]
name = "pop"
"""


def test_suite_check_table_is_validated_and_stored(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SUITE + '[check]\ntolerance = 0.02\nmetrics = ["ndcg@10", "latency_p90_ms"]\n'
                 '[check.per_metric."ndcg@10"]\ntolerance = 0.005\n')
    s = load_suite(p)
    assert s.check == {"tolerance": 0.02, "metrics": ["ndcg@10", "latency_p90_ms"],
                       "per_metric": {"ndcg@10": {"tolerance": 0.005}}}
    import tomllib
    raw = tomllib.loads(SUITE)
    for table, match in [({"tolerence": 0.1}, r"\[check.tolerence\].*did you mean 'tolerance'"),
                         ({"alpha": 1.5}, r"\[check.alpha\] must be in \(0, 1\)"),
                         ({"tolerance": "x"}, r"\[check.tolerance\] must be a number"),
                         ({"metrics": ["ndgc@10"]}, r"did you mean 'ndcg'"),
                         ({"metrics": ["ndcg@0"]}, r"k must be a positive integer"),
                         ({"test": "z"}, r"\[check.test\] unknown value"),
                         ({"per_metric": {"ndcg@10": {"tol": 1}}}, r"per_metric.ndcg@10.tol")]:
        with pytest.raises(SuiteError, match=match):
            parse_suite({**raw, "check": table}, "s.toml")
    assert parse_suite(raw).check == {}


def test_precedence_flags_over_per_metric_over_suite_over_defaults():
    table = validate_check_table({"tolerance": 0.02, "alpha": 0.1, "per_metric": {
        "ndcg@10": {"tolerance": 0.005}, "ndcg": {"alpha": 0.01}}}, None)
    s = CheckSettings(suite=table)
    assert s.for_row("ndcg", 10).tolerance == 0.005 and s.for_row("ndcg", 10).alpha == 0.01
    assert s.for_row("ndcg", 5).tolerance == 0.02 and s.for_row("ndcg", 5).alpha == 0.01
    assert s.for_row("recall", 10).alpha == 0.1
    assert s.for_row("latency_p90_ms", 0).latency_tolerance == 0.25
    f = s.with_flags(tolerance=0.1, alpha=None)
    assert f.for_row("ndcg", 10).tolerance == 0.1 and f.for_row("ndcg", 10).alpha == 0.01


def test_check_reads_the_new_runs_suite(runs, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text(SUITE + '[check]\nmetrics = ["ndcg@10"]\n'
                     '[check.per_metric."ndcg@10"]\ntolerance = 0.005\n')
    shift = {("A", "ndcg", 10): -0.008, ("A", "recall", 10): -0.03}
    ref = runs("ref", values=values_for())
    new = runs("new", values=values_for(shift=shift), suite_file=suite)
    res = compare_runs(new, ref)
    assert res.settings.source == str(suite)
    assert set(res.rows["metric"]) == {"ndcg"}              # [check] metrics
    assert verdicts(res)[("A", "ndcg", 10)] == "regression"   # 0.008 > per-metric 0.005
    # a flag wins over the suite
    assert compare_runs(new, ref, CheckSettings().with_flags(tolerance=0.01)).exit_code == 0
    # the suite file changed since the run: error, unless given explicitly with --suite
    suite.write_text(suite.read_text() + "# edited\n")
    with pytest.raises(CheckError, match="changed since the run"):
        compare_runs(new, ref)
    assert compare_runs(new, ref, suite_file=suite).exit_code == 1
    # a suite.toml copy inside the run dir is preferred
    (new / "suite.toml").write_text(SUITE)
    manifest = json.loads((new / "manifest.json").read_text())
    manifest["suite"]["sha256"] = hashlib.sha256(SUITE.encode()).hexdigest()
    (new / "manifest.json").write_text(json.dumps(manifest))
    res = compare_runs(new, ref)
    assert res.settings.source == str(new / "suite.toml") and res.exit_code == 1
    assert set(res.rows["metric"]) == {"ndcg", "recall"}


def test_defaults_when_the_suite_file_is_gone(runs):
    ref = runs("ref", values=values_for())
    res = compare_runs(runs("new", values=values_for()), ref)
    assert "built-in defaults" in res.settings.source and "x-missing.toml" in res.settings.source


# ---------------------------------------------------------------- --update-reference

def test_update_reference(runs, tmp_path, capsys):
    ref_dir = tmp_path / "reference" / "t"
    first = runs("first", values=values_for())
    assert main(["check", str(first), "--against", str(ref_dir), "--update-reference"]) == 0
    assert "creating it" in capsys.readouterr().out
    assert (ref_dir / "manifest.json").exists() and (ref_dir / "per_user.parquet").exists()
    assert main(["check", str(first), "--against", str(ref_dir)]) == 0
    changed = runs("changed", values=values_for(shift={("A", "ndcg", 10): -0.05}))
    capsys.readouterr()
    assert main(["check", str(changed), "--against", str(ref_dir)]) == 1
    capsys.readouterr()
    assert main(["check", str(changed), "--against", str(ref_dir), "--update-reference"]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "reference updated" in out
    assert [ln for ln in out.splitlines() if ln.startswith("A ")] == \
        [ln for ln in out.splitlines() if ln.startswith("A ") and "ndcg@10" in ln]
    assert main(["check", str(changed), "--against", str(ref_dir)]) == 0
    # a new split: not comparable row by row, but the update is allowed and says why
    other = runs("other", values=values_for(), fp="fp-other")
    text, result = update_reference(other, ref_dir)
    assert result is None and "split fingerprint mismatch" in text
    # never from a run with failed cells, never combined with filters
    broken = runs("broken", values=values_for(models=("A",)), failed=("A",))
    with pytest.raises(CheckError, match="failed cells"):
        update_reference(broken, ref_dir)
    assert main(["check", str(first), "--against", str(ref_dir), "--update-reference",
                 "--models", "A"]) == 2


# ---------------------------------------------------------------- CI workflow example

def test_github_actions_example_is_valid_and_runs_the_gate():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((ROOT / "docs" / "github-actions-example.yml").read_text())
    assert doc["name"] and (doc.get("on") or doc.get(True))  # YAML 1.1 reads `on` as True
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    runs_ = [s.get("run", "") for s in steps]
    assert any("harness run" in r for r in runs_)
    check = [r for r in runs_ if "harness check" in r]
    assert check and "--against" in check[0]
    assert runs_.index(next(r for r in runs_ if "harness run" in r)) < runs_.index(check[0])


# ---------------------------------------------------------------- determinism

DETERMINISM = """
[suite]
name = "det"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 300
n_items = 200
n_interactions = 8000
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [10]
[[models]]
name = "itemknn"
[[models]]
name = "ease"
[[models]]
name = "als"
[[models]]
name = "bpr"
params = { epochs = 5 }
"""


@pytest.mark.slow
def test_same_seed_same_numbers_across_thread_counts(tmp_path):
    """Two processes with 1 and 2 threads (OMP/MKL/torch) give bit-identical per-user values,
    and `harness check` passes with every delta exactly 0."""
    suite = tmp_path / "det.toml"
    suite.write_text(DETERMINISM)
    dirs = []
    for threads in ("1", "2"):
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "OPENBLAS_NUM_THREADS": threads}
        out = tmp_path / f"t{threads}"
        subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), "--out",
                        str(out), "--quiet", "--run-id", "r"], check=True, env=env,
                       capture_output=True, timeout=600)
        dirs.append(out / "det" / "r")
    a, b = (pd.read_parquet(d / "per_user.parquet") for d in dirs)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    threads = [json.loads((d / "manifest.json").read_text())["machine"]["torch_threads"]
               for d in dirs]
    assert threads == [1, 2]
    res = compare_runs(dirs[1], dirs[0], CheckSettings().with_flags(tolerance=0.0))
    assert res.exit_code == 0 and (res.rows["delta"] == 0).all()

"""End-to-end runs on small synthetic data: results schema, failures isolated, resume, TREC files."""

import json

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.results import METRIC_COLUMNS, PER_USER_COLUMNS
from harness.runner import run_suite
from harness.suite import load_suite
from tests.plugins import CountingPop

MODELS = """
[[models]]
name = "pop"
[[models]]
name = "random"
[[models]]
name = "tests.plugins:Crashing"
label = "crashing"
[[models]]
name = "tests.plugins:NaNScores"
label = "nan"
[[models]]
name = "tests.plugins:CountingPop"
label = "counting"
"""


def test_run_isolates_failures_and_writes_schema(tmp_path, write_suite, small_suite_text):
    suite = load_suite(write_suite(small_suite_text.replace("seeds = [0]", "seeds = [0, 1]")
                                   + MODELS))
    res = run_suite(suite, tmp_path / "out", quiet=True)
    status = {c["model"]: c["status"] for c in res.manifest["cells"]}
    assert status == {"pop": "ok", "random": "ok", "crashing": "failed", "nan": "failed",
                      "counting": "ok"}
    errors = {c["model"]: c.get("error", "") for c in res.manifest["cells"]}
    assert "boom on purpose" in errors["crashing"] and "NaN" in errors["nan"]
    assert res.manifest["n_failed"] == 4 and res.manifest["complete"]
    assert "boom on purpose" in (res.run_dir / "run.log").read_text()
    m = pd.read_parquet(res.run_dir / "metrics.parquet")
    assert list(m.columns) == METRIC_COLUMNS
    assert set(m["model"]) == {"pop", "random", "counting"}
    assert len(m) == 3 * 2 * 6 * 2  # models x seeds x metrics x ks
    assert (m["protocol"] == "full").all() and (m["pass"] == "accuracy").all()
    pu = pd.read_parquet(res.run_dir / "per_user.parquet")
    assert list(pu.columns) == PER_USER_COLUMNS
    # the long table's value is the mean of the per-user values
    for _, row in m.iterrows():
        sel = pu[(pu.cell == row.cell) & (pu.metric == row.metric) & (pu.k == row.k)]
        assert len(sel) == row.n_users
        assert sel.value.mean() == pytest.approx(row.value, abs=1e-12)
    assert pd.read_csv(res.run_dir / "metrics.csv").shape == m.shape
    assert "Failed cells" in (res.run_dir / "leaderboard.md").read_text()
    man = json.loads((res.run_dir / "manifest.json").read_text())
    assert man["suite"]["sha256"] == suite.sha256
    for key in ("packages", "git", "machine", "datasets", "splits", "cells"):
        assert man[key]
    assert man["packages"]["torch"] and man["machine"]["cpu_count"] >= 1


def test_resume_skips_finished_cells(tmp_path, write_suite, small_suite_text):
    suite = load_suite(write_suite(small_suite_text + MODELS))
    CountingPop.fits = 0
    first = run_suite(suite, tmp_path, models=["counting", "pop"], quiet=True)
    assert CountingPop.fits == 1
    again = run_suite(suite, tmp_path, models=["counting", "pop"], quiet=True)
    assert CountingPop.fits == 1 and all(c.get("resumed") for c in again.manifest["cells"])
    pd.testing.assert_frame_equal(first.metrics, again.metrics)
    # an interrupted run: one cell never finished (no status), manifest missing
    cell = [c for c in first.manifest["cells"] if c["model"] == "counting"][0]["cell"]
    (first.run_dir / "cells" / cell / "status.json").unlink()
    (first.run_dir / "manifest.json").unlink()
    third = run_suite(suite, tmp_path, models=["counting", "pop"], quiet=True)
    assert CountingPop.fits == 2 and (third.run_dir / "manifest.json").exists()
    pd.testing.assert_frame_equal(first.metrics, third.metrics)


def test_cli_bad_input_exit_2_and_no_run_dir(tmp_path, write_suite, small_suite_text, capsys):
    bad = write_suite(small_suite_text + '[[models]]\nname = "eas"\n')
    assert main(["run", str(bad), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "models[0].name" in err and "did you mean 'ease'" in err
    assert not (tmp_path / "o").exists()
    good = write_suite(small_suite_text + '[[models]]\nname = "pop"\n', "g.toml")
    assert main(["run", str(good), "--out", str(tmp_path / "o"), "--models", "pp"]) == 2
    assert "did you mean 'pop'" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.toml")]) == 2


def test_cli_run_prints_leaderboard_and_trec_files_match_ranx(tmp_path, write_suite,
                                                              small_suite_text, capsys):
    from ranx import Qrels, Run, evaluate
    path = write_suite(small_suite_text + '[[models]]\nname = "pop"\n[[models]]\nname = "ease"\n')
    assert main(["run", str(path), "--out", str(tmp_path), "--save-runs", "--quiet",
                 "--seeds", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "| ease |" in out and "ndcg@10" in out
    run_dir = next((tmp_path / "small").iterdir())
    m = pd.read_parquet(run_dir / "metrics.parquet")
    assert set(m.seed) == {0, 1}
    qrels = Qrels.from_file(str(next((run_dir / "runs").glob("*.qrels"))), kind="trec")
    for cell, g in m.groupby("cell"):
        run = Run.from_file(str(run_dir / "runs" / f"{cell}.run"), kind="trec")
        for metric, ranx_name in (("ndcg", "ndcg"), ("map", "map"), ("hit", "hit_rate")):
            expect = g[(g.metric == metric) & (g.k == 10)].value.item()
            got = evaluate(qrels, run, f"{ranx_name}@10")
            assert got == pytest.approx(expect, abs=1e-9)


def test_cli_list_and_datasets_show(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("itemknn", "ml-100k", "random_holdout", "cold_items", "ndcg", "map"):
        assert word in out
    assert main(["datasets", "show", "ml-100k"]) == 0
    out = capsys.readouterr().out
    assert "943" in out and "1,682" in out and "100,000" in out and "movie_title" in out
    assert "6.3047%" in out
    assert main(["datasets", "show", "ml-10k"]) == 2
    assert "did you mean 'ml-100k'" in capsys.readouterr().err


def test_splits_are_same_for_every_model_and_cached(tmp_path, write_suite, small_suite_text):
    suite = load_suite(write_suite(small_suite_text + '[[models]]\nname = "pop"\n'
                                   '[[models]]\nname = "random"\n'))
    res = run_suite(suite, tmp_path, quiet=True)
    assert res.metrics.split_fingerprint.nunique() == 1
    cached = list((tmp_path / ".cache" / "splits").glob("split-*.npz"))
    assert len(cached) == 1 and res.metrics.split_fingerprint.iloc[0] in cached[0].name
    users = pd.read_parquet(res.run_dir / "per_user.parquet").groupby("cell").user.apply(
        lambda s: tuple(sorted(set(s))))
    assert users.nunique() == 1
    assert np.isfinite(res.metrics.value).all()

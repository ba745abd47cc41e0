"""Passes as plug-ins, run records a user can trust (issue 10): a new pass is one module plus one
registry line; a failing pass fails only its rows; manifests are the same on resume; plugin code
changes recompute cells; plugin distributions and thread settings are recorded."""

import json
import textwrap

import pandas as pd
import pytest
import torch

from harness import passes
from harness.check.compare import compare_runs
from harness.runner import run_suite
from harness.suite import load_suite

TINY = "\n[tiny]\n"


@pytest.fixture
def tiny_pass(monkeypatch):
    """Register tests/tiny_pass.py with one registry line."""
    monkeypatch.setitem(passes.PASSES, "tiny", "tests.tiny_pass:CandidateCountPass")
    passes.get.cache_clear()
    yield
    passes.get.cache_clear()


def _suite(write_suite, text, models="[[models]]\nname = \"pop\"\n", name="s.toml"):
    return load_suite(write_suite(text + models, name))


def test_new_pass_is_one_module_plus_one_registry_line(tmp_path, write_suite, small_suite_text,
                                                        tiny_pass):
    res = run_suite(_suite(write_suite, small_suite_text + TINY), tmp_path, quiet=True)
    m = res.metrics
    tiny = m[m["pass"] == "tiny"].set_index("metric")["value"]
    acc = m[(m["pass"] == "accuracy") & (m.metric == "hit") & (m.k == 10)].iloc[0]
    assert tiny["users"] == acc["n_users"]
    # every top-k slot of pop is filled (more candidates than k): users x max k
    assert tiny["listed_items"] == acc["n_users"] * 10
    cell = res.manifest["cells"][0]
    assert cell["passes"]["tiny"]["status"] == "ok" and cell["tiny"]["listed"] == tiny[
        "listed_items"]
    assert passes.higher_is_better("tiny", "listed_items") is True


def test_suite_table_of_an_unregistered_pass_is_an_error(write_suite, small_suite_text):
    from harness.errors import SuiteError
    with pytest.raises(SuiteError, match="tiny.*unknown key"):
        _suite(write_suite, small_suite_text + TINY)


def test_a_failing_pass_fails_its_rows_only(tmp_path, write_suite, small_suite_text, tiny_pass):
    res = run_suite(_suite(write_suite, small_suite_text + "\n[tiny]\nfail = true\n"), tmp_path,
                    quiet=True)
    cell = res.manifest["cells"][0]
    assert cell["status"] == "ok" and res.manifest["n_failed_passes"] == 1
    assert cell["passes"]["tiny"]["status"] == "failed"
    assert "failing on purpose" in cell["passes"]["tiny"]["error"]
    assert set(res.metrics["pass"]) == {"accuracy"}
    assert "Failed passes" in res.leaderboard and "failing on purpose" in res.leaderboard


def test_manifest_is_the_same_when_cells_resume(tmp_path, write_suite, small_suite_text):
    text = small_suite_text + textwrap.dedent("""
        [[candidates]]
        protocol = "full"
        [[candidates]]
        protocol = "sampled"
        n_negatives = 20
        """)
    suite = _suite(write_suite, text)
    first = run_suite(suite, tmp_path / "a", quiet=True)
    run_suite(suite, tmp_path / "b", quiet=True)
    again = run_suite(suite, tmp_path / "b", quiet=True)
    assert all(c.get("resumed") for c in again.manifest["cells"])
    assert again.manifest["candidates"] == first.manifest["candidates"] != {}
    assert compare_runs(again.run_dir, first.run_dir).exit_code == 0


PLUGIN = '''
import torch
from harness.recommender import Recommender

FITS = []


class EditedPop(Recommender):
    def fit(self, split, dataset):
        FITS.append(1)
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).double() + {bonus}

    def score(self, users, items):
        return self.counts[items].expand(len(users), -1)
'''


def test_editing_plugin_code_recomputes_its_cells(tmp_path, write_suite, small_suite_text,
                                                  monkeypatch):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "edited_plugin.py").write_text(PLUGIN.format(bonus="0.0"))
    monkeypatch.syspath_prepend(str(pkg))
    import importlib
    suite = _suite(write_suite, small_suite_text, '[[models]]\nname = "edited_plugin:EditedPop"\n')
    run_suite(suite, tmp_path / "out", quiet=True)
    mod = importlib.import_module("edited_plugin")
    assert len(mod.FITS) == 1
    run_suite(suite, tmp_path / "out", quiet=True)
    assert len(mod.FITS) == 1  # unchanged code: resumed
    (pkg / "edited_plugin.py").write_text(PLUGIN.format(bonus="1.0"))
    res = run_suite(suite, tmp_path / "out", quiet=True)
    assert len(mod.FITS) == 2 and not res.manifest["cells"][0].get("resumed")
    log = (res.run_dir / "run.log").read_text()
    assert "recomputed: code changed (recommender.source_sha256" in log


def test_manifest_lists_the_distribution_of_every_recommender(tmp_path, write_suite,
                                                              small_suite_text, monkeypatch):
    site = tmp_path / "site"
    (site / "pluginpkg").mkdir(parents=True)
    (site / "pluginpkg" / "__init__.py").write_text(PLUGIN.format(bonus="0.0"))
    info = site / "pluginpkg-3.1.4.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pluginpkg\nVersion: 3.1.4\n")
    (info / "top_level.txt").write_text("pluginpkg\n")
    monkeypatch.syspath_prepend(str(site))
    suite = _suite(write_suite, small_suite_text, '[[models]]\nname = "pluginpkg:EditedPop"\n')
    res = run_suite(suite, tmp_path / "out", quiet=True)
    assert res.manifest["packages"]["pluginpkg"] == "3.1.4"
    rec = res.manifest["recommender_packages"]["pluginpkg:EditedPop"]
    assert rec["distribution"] == "pluginpkg" and rec["version"] == "3.1.4"
    assert res.manifest["cells"][0]["code"]["recommender"]["version"] == "3.1.4"


THREADS = '''
import torch
from harness.recommender import Recommender


class OneThreadPop(Recommender):
    def fit(self, split, dataset):
        torch.set_num_threads(1)  # like a library that lowers threads process-wide
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).double()

    def score(self, users, items):
        return self.counts[items].expand(len(users), -1)
'''


def test_thread_settings_are_recorded_and_restored_per_cell(tmp_path, write_suite,
                                                            small_suite_text, monkeypatch):
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "threads_plugin.py").write_text(THREADS)
    monkeypatch.syspath_prepend(str(pkg))
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, 2))  # the plugin's 1 thread must be a change
    start = torch.get_num_threads()
    models = '[[models]]\nname = "threads_plugin:OneThreadPop"\n[[models]]\nname = "pop"\n'
    res = run_suite(_suite(write_suite, small_suite_text, models), tmp_path / "out", quiet=True)
    try:
        assert torch.get_num_threads() == start
        first, second = res.manifest["cells"]
        assert first["threads"]["during"]["torch"] == 1
        assert "torch" in first["threads"]["restored"]
        assert second["threads"]["before"]["torch"] == start and not second["threads"]["restored"]
        assert "changed thread settings" in (res.run_dir / "run.log").read_text()
    finally:
        torch.set_num_threads(before)


def test_cell_tables_carry_the_pass_column_and_schema(tmp_path, write_suite, small_suite_text):
    res = run_suite(_suite(write_suite, small_suite_text), tmp_path, quiet=True)
    cell = json.loads((res.run_dir / "cells" / res.manifest["cells"][0]["cell"]
                       / "status.json").read_text())
    assert cell["passes"]["accuracy"]["status"] == "ok" and cell["code"]["harness"]["version"]
    per_user = pd.read_parquet(res.run_dir / "per_user.parquet")
    assert list(per_user.columns) == ["cell", "user", "metric", "k", "perturbation", "value"]


def test_pointwise_metrics_under_sampled_candidates_equal_sklearn(tmp_path, write_suite,
                                                                   small_suite_text):
    """GAUC / global AUC rows of the accuracy pass (sampled lists) vs scikit-learn."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from harness.workspace import Workspace
    text = small_suite_text + '\n[[candidates]]\nprotocol = "sampled"\nn_negatives = 15\n'
    suite = _suite(write_suite, text)
    res = run_suite(suite, tmp_path, quiet=True)
    m = res.metrics.set_index("metric")
    ws = Workspace(suite, tmp_path / ".cache", res.run_dir)
    split = ws.split(suite.datasets[0], suite.splits[0])
    from harness.runner import select
    cand, _ = ws.candidates(select(suite, None, None)[0], split)
    counts = split.train.csr().sum(0).A1.astype(float)
    truth = cand.truth
    aucs, ys, ss = [], [], []
    for row, u in enumerate(cand.users):
        items = cand.lists[row][cand.lists[row] >= 0]
        y = np.isin(items, truth[u].indices)
        ys.append(y)
        ss.append(counts[items])
        if 0 < y.sum() < len(y):
            aucs.append(roc_auc_score(y, counts[items]))
    assert m.loc["gauc", "value"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert m.loc["gauc", "n_users"] == len(aucs)
    assert m.loc["auc", "value"] == pytest.approx(
        roc_auc_score(np.concatenate(ys), np.concatenate(ss)), abs=1e-12)
    assert "logloss" not in m.index  # pop does not declare calibrated probabilities
    assert passes.higher_is_better("accuracy", "gauc") and not passes.higher_is_better(
        "accuracy", "logloss")


def test_primary_metric_is_declared_validated_and_recorded(tmp_path, write_suite,
                                                           small_suite_text):
    from harness.errors import SuiteError
    bad = small_suite_text.replace("ks = [5, 10]", 'ks = [5, 10]\nprimary = "ndgc@10"')
    with pytest.raises(SuiteError, match="evaluation.primary.*did you mean 'ndcg@10'"):
        _suite(write_suite, bad, name="bad.toml")
    good = small_suite_text.replace("ks = [5, 10]", 'ks = [5, 10]\nprimary = "recall@5"')
    res = run_suite(_suite(write_suite, good), tmp_path, quiet=True)
    assert res.manifest["evaluation"]["primary"] == "recall@5"

"""Candidate protocols: sampled (frozen, seeded, verified) and rerank (first-stage top-M)."""

import numpy as np
import pandas as pd
import pytest

from harness.candidates import full_candidates, sampled_candidates
from harness.errors import CacheError, SuiteError
from harness.runner import run_suite
from harness.splits import make_split
from harness.suite import load_suite


@pytest.fixture(scope="module")
def split(ml100k):
    return make_split(ml100k, "random_holdout", {}, seed=0)


def test_sampled_contains_positives_and_unseen_negatives(ml100k, split):
    cand = sampled_candidates(split, "test", n_negatives=30, seed=1)
    seen = ml100k.interactions.csr()
    truth = cand.truth
    for row, u in enumerate(cand.users):
        lst = cand.lists[row][cand.lists[row] >= 0]
        pos = set(truth.indices[truth.indptr[u]:truth.indptr[u + 1]])
        neg = [i for i in lst if i not in pos]
        assert pos <= set(lst) and len(neg) == 30 and len(set(lst)) == len(lst)
        assert not set(neg) & set(seen.indices[seen.indptr[u]:seen.indptr[u + 1]])
    again = sampled_candidates(split, "test", n_negatives=30, seed=1)
    other = sampled_candidates(split, "test", n_negatives=30, seed=2)
    assert np.array_equal(cand.lists, again.lists) and cand.fingerprint == again.fingerprint
    assert not np.array_equal(cand.lists, other.lists) and cand.fingerprint != other.fingerprint


def test_popularity_sampling_prefers_popular_items(split):
    counts = np.asarray(split.train.csr().sum(0)).ravel()
    mean_pop = {}
    for how in ("uniform", "popularity"):
        c = sampled_candidates(split, "test", n_negatives=50, sampling=how, seed=0)
        pos = c.truth
        negs = [i for row, u in enumerate(c.users) for i in c.lists[row]
                if i >= 0 and not pos[u, i]]
        mean_pop[how] = counts[negs].mean()
    assert mean_pop["popularity"] > 2 * mean_pop["uniform"]


def test_max_users_is_a_seeded_subset(split):
    a = full_candidates(split, "test", max_users=100, seed=0)
    b = full_candidates(split, "test", max_users=100, seed=0)
    c = full_candidates(split, "test", max_users=100, seed=1)
    assert len(a.users) == 100 and np.array_equal(a.users, b.users)
    assert not np.array_equal(a.users, c.users)


SUITE = """
[suite]
name = "cands"
seeds = [0]
[[datasets]]
name = "ml-100k"
[[splits]]
protocol = "random_holdout"
[[candidates]]
protocol = "full"
[[candidates]]
protocol = "sampled"
n_negatives = 50
[[candidates]]
protocol = "rerank"
first_stage = "ease"
m = 50
[evaluation]
ks = [5, 10]
[[models]]
name = "ease"
[[models]]
name = "pop"
[[models]]
name = "itemknn"
"""


def test_every_model_sees_the_same_candidates_and_rerank_is_consistent(tmp_path, write_suite):
    res = run_suite(load_suite(write_suite(SUITE)), tmp_path, quiet=True)
    cells = pd.DataFrame(res.manifest["cells"])
    assert (cells.status == "ok").all() and len(cells) == 9
    assert cells.groupby("candidates").candidates_fingerprint.nunique().eq(1).all()
    assert cells.candidates_fingerprint.nunique() == 3
    assert set(res.metrics.protocol) == {"full", "sampled", "rerank"}
    pu = pd.read_parquet(res.run_dir / "per_user.parquet")
    # EASE re-ranking its own top-50 reproduces its full ranking for every k <= 50
    full = pu[pu.cell.str.contains("__full__ease")].sort_values(["metric", "k", "user"])
    rer = pu[pu.cell.str.contains("__rerank__ease")].sort_values(["metric", "k", "user"])
    rer = rer[rer.metric.isin(set(full.metric))]  # rerank lists also get pointwise (GAUC) rows
    np.testing.assert_allclose(full.value.to_numpy(), rer.value.to_numpy(), atol=1e-12)
    # sampled candidates were stored next to the split and are verified on reuse
    stored = list((tmp_path / ".cache" / "candidates").glob("cand-*.npz"))
    assert len(stored) == 1
    data = dict(np.load(stored[0]))
    data["lists"][0, 0] = data["lists"][0, 1]
    np.savez(stored[0], **data)
    rerun = run_suite(load_suite(write_suite(SUITE)), tmp_path, quiet=True, run_id="second")
    failed = [c for c in rerun.manifest["cells"] if c["status"] != "ok"]
    assert failed and all(c["candidates"] == "sampled" for c in failed)
    assert all("hash" in c["error"] or "differs" in c["error"] for c in failed)


def test_rerank_m_below_k_is_a_suite_error(write_suite):
    with pytest.raises(SuiteError, match=r"candidates\[2\]\.m.*largest k"):
        load_suite(write_suite(SUITE.replace("m = 50", "m = 5")))
    with pytest.raises(SuiteError, match="did you mean 'ease'"):
        load_suite(write_suite(SUITE.replace('first_stage = "ease"', 'first_stage = "eas"')))


def test_cache_error_type_for_corrupt_candidates(tmp_path, split):
    from harness.candidate_store import _load, _save
    cand = sampled_candidates(split, "test", n_negatives=5, seed=0)
    path = tmp_path / "c.npz"
    _save(path, cand)
    users, lists, fp = _load(path)
    assert np.array_equal(lists, cand.lists) and fp == cand.fingerprint
    data = dict(np.load(path))
    data["users"] = data["users"][::-1].copy()
    np.savez(path, **data)
    with pytest.raises(CacheError, match="recorded hash"):
        _load(path)


def test_all_classic_baselines_run_under_all_protocols(tmp_path, write_suite, small_suite_text):
    text = small_suite_text + """
[[candidates]]
protocol = "full"
[[candidates]]
protocol = "sampled"
n_negatives = 20
sampling = "popularity"
[[candidates]]
protocol = "rerank"
first_stage = "pop"
m = 20
""" + "".join(f'[[models]]\nname = "{m}"\n' for m in
              ("random", "pop", "itemknn", "ease", "als", "bpr"))
    res = run_suite(load_suite(write_suite(text)), tmp_path, quiet=True)
    cells = pd.DataFrame(res.manifest["cells"])
    assert len(cells) == 18 and (cells.status == "ok").all(), cells[["cell", "status"]]
    ndcg = res.metrics[(res.metrics.metric == "ndcg") & (res.metrics.k == 10)]
    for proto, g in ndcg.groupby("protocol"):
        v = g.set_index("model").value
        assert v["ease"] > v["random"], proto

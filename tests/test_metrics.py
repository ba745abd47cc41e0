"""Metrics: hand-computed values, per-user equality with ranx, and the evaluator's masking rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate, metrics_from_scores
from harness.metrics import METRICS
from harness.splits import make_split
from tests.ranx_ref import ranx_per_user

ALL = ["ndcg", "recall", "precision", "mrr", "hit", "map"]
KS = [1, 5, 10, 20]
TOL = 1e-9
L3, L5, L6 = math.log2(3), math.log2(5), math.log2(6)


# ---------------------------------------------------------------- hand-computed cases

# row 0: hits at ranks 1 and 3, 2 relevant   row 1: same list, 4 relevant
# row 2: hits at ranks 2 and 5, 2 relevant   row 3: no hit, 3 relevant
HITS = torch.tensor([[1, 0, 1, 0, 0, 0],
                     [1, 0, 1, 0, 0, 0],
                     [0, 1, 0, 0, 1, 0],
                     [0, 0, 0, 0, 0, 0]], dtype=torch.bool)
N_REL = torch.tensor([2, 4, 2, 3])

EXPECTED = {
    # P@k = hits in top-k / k
    ("precision", 1): [1, 1, 0, 0],
    ("precision", 3): [2 / 3, 2 / 3, 1 / 3, 0],
    ("precision", 5): [2 / 5, 2 / 5, 2 / 5, 0],
    # R@k = hits in top-k / |rel|
    ("recall", 1): [1 / 2, 1 / 4, 0, 0],
    ("recall", 3): [1, 2 / 4, 1 / 2, 0],
    ("recall", 5): [1, 2 / 4, 1, 0],
    ("hit", 1): [1, 1, 0, 0],
    ("hit", 3): [1, 1, 1, 0],
    ("hit", 5): [1, 1, 1, 0],
    # first hit at rank 1, 1, 2, none
    ("mrr", 1): [1, 1, 0, 0],
    ("mrr", 3): [1, 1, 1 / 2, 0],
    ("mrr", 5): [1, 1, 1 / 2, 0],
    # DCG: rank r contributes 1/log2(r+1); IDCG@k = sum over the first min(k, |rel|) ranks.
    # row0 @3: (1 + 1/2) / (1 + 1/log2 3);  row1 @3: (1 + 1/2) / (1 + 1/log2 3 + 1/2)
    # row1 @5: 1.5 / (1 + 1/log2 3 + 1/2 + 1/log2 5);  row2 @5: (1/log2 3 + 1/log2 6) / IDCG2
    ("ndcg", 1): [1, 1, 0, 0],
    ("ndcg", 3): [1.5 / (1 + 1 / L3), 1.5 / (1.5 + 1 / L3), (1 / L3) / (1 + 1 / L3), 0],
    ("ndcg", 5): [1.5 / (1 + 1 / L3), 1.5 / (1.5 + 1 / L3 + 1 / L5),
                  (1 / L3 + 1 / L6) / (1 + 1 / L3), 0],
    # AP@k = sum over hit ranks r <= k of P@r, divided by |rel|
    # row0 @3: (1/1 + 2/3) / 2 = 5/6;  row2 @5: (1/2 + 2/5) / 2 = 0.45
    ("map", 1): [1 / 2, 1 / 4, 0, 0],
    ("map", 3): [5 / 6, 5 / 12, (1 / 2) / 2, 0],
    ("map", 5): [5 / 6, 5 / 12, (1 / 2 + 2 / 5) / 2, 0],
}


@pytest.mark.parametrize("metric,k", sorted(EXPECTED))
def test_hand_computed(metric, k):
    got = METRICS[metric](N_REL, HITS, k)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), EXPECTED[(metric, k)], rtol=0, atol=1e-12)


def test_hand_computed_agrees_with_ranx():
    # the same four rows, as ranked lists over item ids: relevant ids are 100+
    truth, ranked = [], []
    for row, n in zip(HITS.tolist(), N_REL.tolist()):
        rel = [100 + j for j in range(n)]
        it = iter(rel)
        ranked.append([next(it) if h else 200 + r for r, h in enumerate(row)])
        truth.append(rel)
    ref = ranx_per_user(truth, ranked, ALL, [1, 3, 5])
    for key, expected in EXPECTED.items():
        np.testing.assert_allclose(ref[key], expected, rtol=0, atol=1e-12, err_msg=str(key))


# ---------------------------------------------------------------- random matrices vs ranx

def _random_case(n_users: int, n_items: int, seed: int):
    """Tie-free float32 scores, 1..many relevant items per user, varying history sizes (some
    users keep fewer unexcluded candidates than the largest k)."""
    rng = np.random.default_rng(seed)
    scores = np.stack([rng.permutation(n_items) for _ in range(n_users)]).astype(np.float32)
    scores = scores / n_items - 0.5
    truth, excl = [], []
    for u in range(n_users):
        n_rel = int(rng.choice([1, 1, 2, 3, 7, min(25, n_items // 2)]))
        perm = rng.permutation(n_items)
        truth.append(np.sort(perm[:n_rel]))
        n_ex = int(rng.integers(0, n_items - n_rel - 1))
        excl.append(np.sort(perm[n_rel:n_rel + n_ex]))
    return torch.from_numpy(scores), truth, excl


def _pairs(lists):
    r = np.concatenate([np.full(len(x), i) for i, x in enumerate(lists)]).astype(np.int64)
    c = np.concatenate(lists).astype(np.int64)
    return torch.from_numpy(r), torch.from_numpy(c)


def _numpy_topk(scores: np.ndarray, excl, k: int):
    """Independent ranking: excluded -> -inf, stable descending sort, drop excluded."""
    out = []
    for u, row in enumerate(scores.astype(np.float64)):
        row = row.copy()
        row[excl[u]] = -np.inf
        order = np.argsort(-row, kind="stable")[:k]
        out.append([int(i) for i in order if np.isfinite(row[i])])
    return out


@pytest.mark.parametrize("n_users,n_items,seed", [(60, 50, 0), (40, 300, 1), (25, 12, 2)])
def test_random_matrices_match_ranx(n_users, n_items, seed):
    scores, truth, excl = _random_case(n_users, n_items, seed)
    n_rel = torch.tensor([len(t) for t in truth])
    values, top_c, top_s = metrics_from_scores(scores, _pairs(truth), _pairs(excl), n_rel,
                                               KS, ALL)
    ranked = [[int(c) for c, s in zip(cs, ss) if np.isfinite(s)]
              for cs, ss in zip(top_c.tolist(), top_s.tolist())]
    # the harness ranking equals an independent numpy ranking (scores are tie-free)
    assert ranked == _numpy_topk(scores.numpy(), excl, max(KS))
    ref = ranx_per_user(truth, ranked, ALL, KS)
    for key in ref:
        assert values[key].shape == (n_users,)
        np.testing.assert_allclose(values[key], ref[key], rtol=0, atol=TOL, err_msg=str(key))
    if n_items >= 50:  # the case covers 1 relevant item and more relevant items than max(KS)
        assert any(len(t) == 1 for t in truth) and any(len(t) > max(KS) for t in truth)


# ---------------------------------------------------------------- ml-100k vs ranx

@pytest.fixture(scope="module")
def holdout_cand(ml100k):  # ml100k: session fixture in conftest.py
    split = make_split(ml100k, "random_holdout", {}, seed=0)
    return split, full_candidates(split, "test")


def _pop_scorer(split):
    pop = torch.from_numpy(np.bincount(split.train.item, minlength=split.dataset.n_items)
                           .astype(np.float32))
    return lambda users, items: pop[items].expand(len(users), -1).clone()


def _random_scorer(n_users, n_items, seed=0):
    """Seeded random scores, tie-free within each row (a random permutation of 0..n-1, scaled)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n_users, n_items, generator=g, dtype=torch.float64)
    table = u.argsort(1).argsort(1).to(torch.float32) / n_items
    return lambda users, items: table[users][:, items]


def _ranked_lists(ev):
    return [[int(i) for i, s in zip(items, scores) if np.isfinite(s)]
            for items, scores in zip(ev.top_items, ev.top_scores)]


@pytest.mark.parametrize("scorer", ["pop", "random"])
def test_ml100k_matches_ranx(holdout_cand, scorer):
    split, cand = holdout_cand
    fn = (_pop_scorer(split) if scorer == "pop"
          else _random_scorer(split.dataset.n_users, split.dataset.n_items))
    ev = evaluate(fn, cand, KS, ALL, keep_top=True)
    assert len(ev.users) == 943 == len(cand.users)
    truth = [cand.truth[u].indices for u in ev.users]
    ref = ranx_per_user(truth, _ranked_lists(ev), ALL, KS)
    for key in ref:
        np.testing.assert_allclose(ev.values[key], ref[key], rtol=0, atol=TOL, err_msg=str(key))
    # sanity: the metrics are not all trivially zero
    assert ev.values[("hit", 20)].mean() > (0.3 if scorer == "pop" else 0.01)


# ---------------------------------------------------------------- masking and scores

def test_history_never_in_top_k(holdout_cand):
    split, cand = holdout_cand
    ev = evaluate(_pop_scorer(split), cand, [50], ["hit"], keep_top=True)
    for u, items in zip(ev.users, ev.top_items):
        hist = set(cand.exclude[u].indices.tolist())
        assert hist and not hist & set(items.tolist())
    assert np.isfinite(ev.top_scores).all()


def test_neginf_below_finite_above_excluded():
    # items: 0 excluded, 1 -inf, 2 finite, 3 -inf, 4 excluded (and relevant), 5 finite
    scores = torch.tensor([[9.0, -torch.inf, 0.5, -torch.inf, 8.0, -3.0]])
    excl = (torch.tensor([0, 0]), torch.tensor([0, 4]))
    truth = (torch.tensor([0, 0]), torch.tensor([3, 4]))
    values, top_c, top_s = metrics_from_scores(scores, truth, excl, torch.tensor([2]),
                                               [6], ["hit", "recall", "precision"])
    order = top_c[0].tolist()
    assert order[:2] == [2, 5]                     # finite scores first, in order
    assert sorted(order[2:4]) == [1, 3]            # then the model's -inf items
    assert sorted(order[4:]) == [0, 4]             # excluded items last ...
    assert torch.isneginf(top_s[0, 4:]).all() and torch.isfinite(top_s[0, :4]).all()
    # ... and an excluded relevant item is never a hit; a ranked -inf relevant item is
    assert values[("precision", 6)][0] == pytest.approx(1 / 6)
    assert values[("recall", 6)][0] == pytest.approx(1 / 2)


def test_nan_scores_raise():
    scores = torch.rand(3, 5)
    scores[1, 2] = float("nan")
    empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        metrics_from_scores(scores, empty, empty, torch.ones(3, dtype=torch.long), [2], ["hit"])


def test_nan_from_score_fn_raises(holdout_cand):
    _, cand = holdout_cand

    def fn(users, items):
        s = torch.rand(len(users), len(items))
        s[0, 0] = float("nan")
        return s

    with pytest.raises(ValueError):
        evaluate(fn, cand, [10], ["ndcg"])


@pytest.mark.parametrize("scorer", ["pop", "random"])
def test_chunking_does_not_change_values(holdout_cand, scorer):
    split, cand = holdout_cand
    fn = (_pop_scorer(split) if scorer == "pop"
          else _random_scorer(split.dataset.n_users, split.dataset.n_items, seed=3))
    small = evaluate(fn, cand, KS, ALL, batch_size=7)
    big = evaluate(fn, cand, KS, ALL, batch_size=1000)
    np.testing.assert_array_equal(small.users, big.users)
    for key in big.values:
        np.testing.assert_array_equal(small.values[key], big.values[key], err_msg=str(key))


def test_eval_items_restriction_cold_items(ml100k):
    split = make_split(ml100k, "cold_items", {}, seed=1)
    cand = full_candidates(split, "test")
    test_items = split.eval_items["test"]
    assert np.array_equal(cand.items.numpy(), test_items)
    table = _random_scorer(ml100k.n_users, ml100k.n_items, seed=5)
    seen_items = []

    def fn(users, items):
        seen_items.append(items.numpy().copy())
        return table(users, items)

    ev = evaluate(fn, cand, KS, ALL, keep_top=True)
    assert all(np.array_equal(s, test_items) for s in seen_items)
    ranked = _ranked_lists(ev)
    allowed = set(test_items.tolist())
    assert all(set(r) <= allowed for r in ranked)
    # independent ranking restricted to the held-out items (history excluded), scored by ranx
    full = table(torch.arange(ml100k.n_users), torch.arange(ml100k.n_items)).numpy()
    indep = []
    for u in ev.users:
        hist = set(cand.exclude[u].indices.tolist())
        cols = [i for i in test_items if i not in hist]
        indep.append([cols[j] for j in np.argsort(-full[u, cols], kind="stable")[:max(KS)]])
    assert ranked == indep
    truth = [cand.truth[u].indices for u in ev.users]
    assert all(set(t.tolist()) <= allowed for t in truth)
    ref = ranx_per_user(truth, indep, ALL, KS)
    for key in ref:
        np.testing.assert_allclose(ev.values[key], ref[key], rtol=0, atol=TOL, err_msg=str(key))


def test_float64_scores_keep_their_order():
    # e.g. a recency scorer returning Unix timestamps: 64 s apart is below float32 resolution
    t = 881_250_949.0
    scores = torch.tensor([[t, t + 1, t + 2, 0.0]], dtype=torch.float64)
    empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    truth = (torch.tensor([0]), torch.tensor([2]))
    values, top_c, _ = metrics_from_scores(scores, truth, empty, torch.tensor([1]), [1], ["hit"])
    assert top_c[0, 0].item() == 2
    assert values[("hit", 1)][0] == 1.0


def test_ties_break_by_lower_column_whatever_k():
    from harness.evaluate import top_k
    s = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.0]])
    for k in (1, 2, 3, 4, 6):
        _, c = top_k(s.clone(), k)
        assert c[0].tolist() == [1, 2, 4, 3, 0, 5][:k]
        assert c[1].tolist() == [0, 1, 2, 3, 4, 5][:k]


def test_popularity_per_user_values_do_not_depend_on_largest_k():
    # pop has many ties; the k = 10 values must be the same whether k = 20 is also evaluated
    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {}, seed=0)
    cand = full_candidates(split, "test")
    fn = _pop_scorer(split)
    a = evaluate(fn, cand, [10], ALL)
    b = evaluate(fn, cand, [5, 10, 20, 50], ALL)
    for m in ALL:
        np.testing.assert_array_equal(a.values[(m, 10)], b.values[(m, 10)])

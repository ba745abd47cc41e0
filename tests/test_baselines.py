"""Classic baselines: shapes, determinism, batch independence, cold users/items, beating random
on synthetic data, hand-checked EASE and ItemKNN, and (slow) quality targets on ml-100k."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import pytest
import torch

from baselines.ease import EASE, ease_weights
from baselines.itemknn import ItemKNN, knn_similarity
from harness.candidates import full_candidates
from harness.data import load_dataset
from harness.data.build import build_dataset
from harness.errors import UserError
from harness.evaluate import evaluate
from harness.registry import build
from harness.splits import make_split
from harness.splits.base import Split

MODELS = ["pop", "random", "itemknn", "ease", "als", "bpr"]
LEARNED = ["pop", "itemknn", "ease", "als", "bpr"]
STOCHASTIC = ["random", "als", "bpr"]
# small settings so the synthetic tests stay fast; everything else is the default
FAST = {"bpr": {"epochs": 30, "batch_size": 512}, "als": {"iterations": 5}}


@functools.lru_cache(maxsize=None)
def synthetic_split() -> Split:
    ds = load_dataset("synthetic", n_users=200, n_items=150, n_interactions=4000)
    return make_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, seed=0)


@functools.lru_cache(maxsize=None)
def fitted(name: str, seed: int = 0):
    split = synthetic_split()
    model = build(name, FAST.get(name, {}), seed=seed)
    model.fit(split, split.dataset)
    return model


def all_scores(model, split) -> torch.Tensor:
    return model.score(torch.arange(split.dataset.n_users), torch.arange(split.dataset.n_items))


def ndcg10(model, split, target: str) -> float:
    ev = evaluate(model.score, full_candidates(split, target), [10], ["ndcg"])
    return float(ev.values[("ndcg", 10)].mean())


@pytest.mark.parametrize("name", MODELS)
def test_shape_and_finite(name):
    split = synthetic_split()
    users, items = torch.tensor([3, 0, 7]), torch.tensor([5, 1, 2, 149])
    s = fitted(name).score(users, items)
    assert s.shape == (3, 4) and s.dtype == torch.float32 and s.device.type == "cpu"
    assert not torch.isnan(all_scores(fitted(name), split)).any()


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_scores(name):
    split = synthetic_split()
    again = build(name, FAST.get(name, {}), seed=0)
    again.fit(split, split.dataset)
    assert torch.equal(all_scores(fitted(name), split), all_scores(again, split))


@pytest.mark.parametrize("name", STOCHASTIC)
def test_different_seeds_differ(name):
    split = synthetic_split()
    assert not torch.allclose(all_scores(fitted(name, 0), split), all_scores(fitted(name, 1), split))


@pytest.mark.parametrize("name", MODELS)
def test_scores_independent_of_batch(name):
    split = synthetic_split()
    model = fitted(name)
    full = all_scores(model, split)
    users = torch.tensor([17, 3, 150, 42, 3])
    items = torch.tensor([9, 120, 0, 77])
    part = model.score(users, items)
    torch.testing.assert_close(part, full[users][:, items], rtol=1e-5, atol=1e-6)
    one = torch.cat([model.score(u.view(1), items) for u in users])
    torch.testing.assert_close(one, part, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("target", ["valid", "test"])
def test_beats_random(name, target):
    split = synthetic_split()
    assert ndcg10(fitted(name), split, target) > ndcg10(fitted("random"), split, target) + 0.02


@pytest.mark.parametrize("name", MODELS)
def test_cold_users_and_items(name):
    """A user with no training rows and an item with no training rows still get finite scores;
    learned models rank a cold user by train popularity."""
    split = synthetic_split()
    inter = split.dataset.interactions
    train = split.rows["train"]
    cold_user, cold_item = 5, 11
    keep = train[(inter.user[train] != cold_user) & (inter.item[train] != cold_item)]
    cold = dataclasses.replace(split, rows={**split.rows, "train": keep})
    model = build(name, FAST.get(name, {}), seed=0)
    model.fit(cold, cold.dataset)
    s = all_scores(model, cold)
    assert torch.isfinite(s).all()
    if name in LEARNED:
        pop = np.bincount(inter.item[keep], minlength=inter.n_items)
        order = np.argsort(-pop, kind="stable")
        got = s[cold_user].numpy()
        assert np.all(np.diff(got[order]) <= 1e-6), "cold user is not ranked by popularity"
    if name in ("itemknn", "ease", "als", "pop"):
        assert torch.all(s[:, cold_item][torch.arange(len(s)) != cold_user] == 0)


def tiny_split(matrix: np.ndarray) -> Split:
    """A split whose train part is exactly the binary `matrix` (users x items)."""
    u, i = np.nonzero(matrix)
    ds = build_dataset("tiny", pd.DataFrame({"user_id": u.astype(str), "item_id": i.astype(str)}))
    assert (ds.n_users, ds.n_items) == matrix.shape
    rows = {"train": np.arange(len(u)), "valid": np.zeros(0, np.int64),
            "test": np.zeros(0, np.int64)}
    return Split(ds, "manual", {}, 0, rows)


def test_ease_matches_constrained_ridge():
    """EASE's closed form equals, column by column, the ridge regression of item j on the other
    items (the diag(B) = 0 constraint), computed independently with numpy."""
    x = np.array([[1, 1, 0, 0, 1], [0, 1, 1, 0, 0], [1, 0, 1, 1, 0], [1, 1, 1, 0, 0],
                  [0, 0, 1, 1, 1], [1, 0, 0, 1, 0]], dtype=np.float64)
    lam = 0.7
    expected = np.zeros((5, 5))
    for j in range(5):
        others = [c for c in range(5) if c != j]
        xo = x[:, others]
        expected[others, j] = np.linalg.solve(xo.T @ xo + lam * np.eye(4), xo.T @ x[:, j])
    np.testing.assert_allclose(ease_weights(x.T @ x, lam), expected, atol=1e-10)
    split = tiny_split(x)
    model = EASE(l2=lam)
    model.fit(split, split.dataset)
    np.testing.assert_allclose(model.score(torch.arange(6), torch.arange(5)).numpy(),
                               x @ expected, rtol=1e-5, atol=1e-5)


def test_ease_item_subset_is_the_full_scores_columns_exactly():
    split = synthetic_split()
    model = fitted("ease")
    users = torch.tensor([17, 3, 150, 42])
    full = model.score(users, torch.arange(split.dataset.n_items))
    items = torch.tensor([9, 120, 0, 77, 9])
    assert torch.equal(model.score(users, items), full[:, items])
    assert model.weights.is_contiguous()  # row-major B: scoring reads its rows


def test_ease_refuses_too_many_items():
    split = synthetic_split()
    with pytest.raises(UserError, match="max_items"):
        EASE(max_items=100).fit(split, split.dataset)


def test_itemknn_hand_example():
    """Users: u0 = {0, 1}, u1 = {0, 1, 2}, u2 = {1, 2}, u3 = {2, 3}; |U| = 2, 3, 3, 1.
    Co-occurrences: (0,1) = 2, (0,2) = 1, (1,2) = 2, (2,3) = 1, others 0. With shrink = 1:
    sim(0,1) = 2/(√6+1), sim(0,2) = 1/(√6+1), sim(1,2) = 2/(3+1), sim(2,3) = 1/(√3+1)."""
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=np.float32)
    s01, s02, s12, s23 = 2 / (6 ** 0.5 + 1), 1 / (6 ** 0.5 + 1), 0.5, 1 / (3 ** 0.5 + 1)
    full = np.array([[0, s01, s02, 0], [s01, 0, s12, 0], [s02, s12, 0, s23], [0, 0, s23, 0]])
    np.testing.assert_allclose(knn_similarity(x, k=3, shrink=1.0).toarray(), full, rtol=1e-6)
    # k = 1: each target item j (column) keeps its single most similar item
    top1 = np.zeros((4, 4))
    top1[1, 0], top1[0, 1], top1[1, 2], top1[2, 3] = s01, s01, s12, s23
    for block in (1 << 24, 5):  # one block, and blocks of one target item
        got = knn_similarity(x, k=1, shrink=1.0, block_elems=block).toarray()
        np.testing.assert_allclose(got, top1, rtol=1e-6)
    split = tiny_split(x)
    model = ItemKNN(k=1, shrink=1.0)
    model.fit(split, split.dataset)
    np.testing.assert_allclose(model.score(torch.arange(4), torch.arange(4)).numpy(), x @ top1,
                               rtol=1e-6)


def test_bpr_records_info():
    info = fitted("bpr").info
    assert 1 <= info["best_epoch"] <= info["epochs_run"] <= FAST["bpr"]["epochs"]
    assert info["best_valid_ndcg@10"] is not None


@pytest.mark.slow
def test_quality_targets_ml100k():
    """Full ranking on ml-100k, random 0.8/0.1/0.1 holdout (split seed 0), model seed 0."""
    ds = load_dataset("ml-100k")
    split = make_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, seed=0)
    cand = full_candidates(split, "test")
    got = {}
    for name in ("pop", "itemknn", "ease"):
        model = build(name, {}, seed=0)
        model.fit(split, ds)
        got[name] = float(evaluate(model.score, cand, [10], ["ndcg"]).values[("ndcg", 10)].mean())
    assert 0.13 <= got["pop"] <= 0.15, got
    assert got["itemknn"] >= 0.28, got
    assert got["ease"] >= 0.32, got

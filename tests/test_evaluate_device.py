"""Evaluation on the scores' device, and what a model's `score` may return.

Masking, top-k and hits run where the scores are (one code path: on CPU here, and on CUDA
too where a GPU is present); only the top-k comes back to the CPU. Plugins may return numpy
arrays or nested lists; anything else is a clear error."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from harness.candidates import full_candidates, sampled_candidates
from harness.data import load_dataset
from harness.evaluate import evaluate, metrics_from_scores, rank_top, score_lists
from harness.splits import make_split

KS, ALL = [1, 3, 10], ["ndcg", "recall", "hit", "mrr", "precision", "map"]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(scope="module")
def split():
    ds = load_dataset("synthetic", n_users=60, n_items=50, n_interactions=900)
    return make_split(ds, "random_holdout", {}, seed=0)


def _table(split, seed=0):
    """Seeded float32 scores with ties (rounded), so the tie-breaking path runs too."""
    g = torch.Generator().manual_seed(seed)
    n = split.dataset
    return (torch.rand(n.n_users, n.n_items, generator=g) * 8).round()


def _same(a, b):
    np.testing.assert_array_equal(a.users, b.users)
    np.testing.assert_array_equal(a.top_items, b.top_items)
    np.testing.assert_array_equal(a.top_scores, b.top_scores)
    assert a.values.keys() == b.values.keys()
    for key in a.values:
        np.testing.assert_array_equal(a.values[key], b.values[key], err_msg=str(key))


def test_numpy_and_list_scores_are_accepted(split):
    """Fails on the old evaluator ('numpy.ndarray' object has no attribute 'detach')."""
    table = _table(split)
    cand = full_candidates(split, "test")
    ref = evaluate(lambda u, i: table[u][:, i], cand, KS, ALL, batch_size=16, keep_top=True)
    as_numpy = evaluate(lambda u, i: table[u][:, i].numpy(), cand, KS, ALL, batch_size=16,
                        keep_top=True)
    as_list = evaluate(lambda u, i: table[u][:, i].tolist(), cand, KS, ALL, batch_size=16,
                       keep_top=True)
    _same(ref, as_numpy)
    _same(ref, as_list)
    assert ref.values[("hit", 10)].mean() > 0  # not trivially zero


class _ListModel:
    """A plugin whose score_candidates returns a numpy float64 array."""

    def __init__(self, table):
        self.table = table

    def score_candidates(self, users, lists):
        return self.table[users[:, None], lists].double().numpy()


def test_score_candidates_returning_numpy(split):
    table = _table(split, 1)
    cand = sampled_candidates(split, "test", n_negatives=10, seed=0)

    class Tensors(_ListModel):
        def score_candidates(self, users, lists):
            return self.table[users[:, None], lists].double()

    ref = evaluate(None, cand, KS, ALL, batch_size=7, keep_top=True, model=Tensors(table))
    got = evaluate(None, cand, KS, ALL, batch_size=7, keep_top=True, model=_ListModel(table))
    _same(ref, got)


@pytest.mark.parametrize("bad,error,match", [
    ({"a": 1}, TypeError, r"score\(\) returned dict, expected a \(3, 5\) = \(len\(users\), "
                          r"len\(items\)\) float tensor or array"),
    (None, TypeError, r"returned NoneType, expected .*float tensor or array"),
    (np.array([["x"] * 5] * 3), TypeError, r"returned ndarray, expected"),
    (np.zeros((3, 5), np.complex64), TypeError, r"complex64 array, expected"),
    (np.zeros((5, 3)), ValueError, r"returned shape \(5, 3\), expected \(3, 5\)"),
])
def test_bad_scores_are_a_clear_error(split, bad, error, match):
    cand = dataclasses.replace(full_candidates(split, "test"), items=torch.arange(5))
    with pytest.raises(error, match=match):
        evaluate(lambda u, i: bad, cand, KS, ALL, batch_size=3)


def test_integer_scores_are_ranked_as_float64(split):
    table = _table(split, 2)
    cand = full_candidates(split, "test")
    ints = evaluate(lambda u, i: table[u][:, i].long().numpy(), cand, KS, ALL, keep_top=True)
    ref = evaluate(lambda u, i: table[u][:, i].double(), cand, KS, ALL, keep_top=True)
    _same(ref, ints)


@pytest.mark.parametrize("device", DEVICES)
def test_scores_on_a_device_evaluate_there_and_match_cpu(split, device):
    """Scores returned on `device` are masked and ranked there; the top-k comes back on the
    CPU and every value equals the CPU evaluation (full and per-user lists)."""
    table = _table(split, 3)
    on_dev = table.to(device)
    full = full_candidates(split, "test")
    ref = evaluate(lambda u, i: table[u][:, i], full, KS, ALL, batch_size=16, keep_top=True)
    got = evaluate(lambda u, i: on_dev[u.to(device)][:, i.to(device)], full, KS, ALL,
                   batch_size=16, keep_top=True)
    _same(ref, got)
    sampled = sampled_candidates(split, "test", n_negatives=12, seed=1)
    dev_model = _ListModel(on_dev)
    dev_model.score_candidates = lambda u, l: on_dev[u.to(device)[:, None], l.to(device)]
    ref = evaluate(None, sampled, KS, ALL, keep_top=True, model=_ListModel(table))
    got = evaluate(None, sampled, KS, ALL, keep_top=True, model=dev_model)
    _same(ref, got)
    lists = torch.from_numpy(sampled.lists[:4])
    kept = score_lists(dev_model, torch.from_numpy(sampled.users[:4]), lists, to_cpu=False)
    assert kept.device.type == torch.device(device).type
    assert score_lists(dev_model, torch.from_numpy(sampled.users[:4]), lists).device.type == "cpu"


@pytest.mark.parametrize("device", DEVICES)
def test_rank_top_and_metrics_return_cpu_top_k(device):
    scores = torch.tensor([[0.5, 2.0, -torch.inf, 2.0, 1.0],
                           [3.0, 1.0, 1.0, 0.0, -1.0]], device=device)
    excl = (torch.tensor([0, 1]), torch.tensor([4, 0]))
    truth = (torch.tensor([0, 1]), torch.tensor([3, 2]))
    top_s, top_c = rank_top(scores, excl, 3)
    assert top_c.device.type == top_s.device.type == "cpu"
    # row 0: 2.0 (col 1) and 2.0 (col 3) tie -> lower column first; col 4 excluded
    assert top_c.tolist() == [[1, 3, 0], [1, 2, 3]]
    values, c2, s2 = metrics_from_scores(scores, truth, excl, torch.tensor([1, 1]), [1, 3],
                                         ["hit", "mrr"])
    assert c2.device.type == s2.device.type == "cpu"
    assert torch.equal(c2, top_c) and torch.equal(s2, top_s)
    assert values[("hit", 1)].tolist() == [0.0, 0.0]
    assert values[("mrr", 3)].tolist() == [0.5, 0.5]


def test_list_padding_reaches_only_models_that_declare_it():
    seen = []

    class Plain:
        def score_candidates(self, users, lists):
            seen.append(lists.clone())
            return lists.double()

    class Skips(Plain):
        list_padding = True

    users, lists = torch.tensor([0, 1]), torch.tensor([[3, -1], [4, 5]])
    plain = score_lists(Plain(), users, lists)
    skips = score_lists(Skips(), users, lists)
    assert seen[0].tolist() == [[3, 0], [4, 5]] and seen[1].tolist() == [[3, -1], [4, 5]]
    expected = torch.tensor([[3.0, -torch.inf], [4.0, 5.0]], dtype=torch.float64)
    assert torch.equal(plain, expected) and torch.equal(skips, expected)

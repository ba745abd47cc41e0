"""The ranking kernels (harness.ranking) against independent references: numpy lexsort for the
ranking rule, a dense relevance matrix for hits, scipy row slicing for csr_pairs."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from harness import ranking


def _reference_top(scores: np.ndarray, excluded: np.ndarray, k: int):
    """Rank each row by masked score descending, ties by lower column (np.lexsort)."""
    s = scores.astype(np.float64 if scores.dtype != np.float32 else np.float32).copy()
    s[np.isneginf(s)] = np.finfo(s.dtype).min
    s[excluded] = -np.inf
    k = min(k, s.shape[1])
    cols = np.stack([np.lexsort((np.arange(s.shape[1]), -row))[:k] for row in s])
    return np.take_along_axis(s, cols, 1), cols


@pytest.mark.parametrize("seed", range(40))
def test_masked_top_k_follows_the_ranking_rule(seed):
    rng = np.random.default_rng(seed)
    b, c, k = rng.integers(1, 30), rng.integers(1, 50), int(rng.integers(1, 25))
    dtype = [np.float32, np.float64, np.int64][seed % 3]
    scores = rng.integers(0, rng.integers(1, 6), (b, c)).astype(dtype)  # many ties
    if dtype != np.int64 and seed % 2:
        scores[rng.random((b, c)) < 0.2] = -np.inf
        scores[rng.random((b, c)) < 0.05] = np.inf
    excluded = rng.random((b, c)) < 0.3
    want_s, want_c = _reference_top(scores, excluded, k)
    ex = torch.nonzero(torch.from_numpy(excluded), as_tuple=True)
    masked = ranking.mask_scores(torch.from_numpy(scores), ex)
    got_s, got_c = ranking.top_k(masked, k)
    np.testing.assert_array_equal(got_c.numpy(), want_c)
    np.testing.assert_array_equal(got_s.numpy(), want_s)
    assert masked.dtype == (torch.float64 if dtype != np.float32 else torch.float32)


def test_top_k_without_ties_is_torch_topk_and_keeps_the_input():
    s = torch.rand(64, 1000, generator=torch.Generator().manual_seed(0))
    before = s.clone()
    got = ranking.top_k(ranking.mask_scores(s, (torch.zeros(0), torch.zeros(0))), 20)
    want = torch.topk(s, 20, dim=1)
    assert torch.equal(got[0], want.values) and torch.equal(got[1], want.indices)
    assert torch.equal(s, before)  # masking works on a copy


def test_hits_match_a_dense_relevance_matrix():
    rng = np.random.default_rng(1)
    b, c, k = 50, 200, 10
    rel = rng.random((b, c)) < 0.05
    top_c = torch.from_numpy(np.stack([rng.permutation(c)[:k] for _ in range(b)]))
    top_s = torch.from_numpy(rng.random((b, k)))
    top_s[rng.random((b, k)) < 0.1] = -torch.inf
    truth = torch.nonzero(torch.from_numpy(rel), as_tuple=True)
    want = np.take_along_axis(rel, top_c.numpy(), 1) & ~np.isneginf(top_s.numpy())
    np.testing.assert_array_equal(ranking.hits(top_c, top_s, truth, c).numpy(), want)


def test_csr_pairs_match_scipy_row_slicing():
    rng = np.random.default_rng(2)
    m = sp.random(300, 120, density=0.05, format="csr", random_state=3)
    rows = np.sort(rng.choice(300, 64, replace=False))
    col_of = np.where(rng.random(120) < 0.7, np.arange(120), -1)
    r, c = ranking.csr_pairs(m, rows, col_of)
    sub = m[rows].tocoo()
    keep = col_of[sub.col] >= 0
    want = sorted(zip(sub.row[keep].tolist(), col_of[sub.col[keep]].tolist()))
    assert sorted(zip(r.tolist(), c.tolist())) == want


def test_nan_among_ranked_candidates_is_found_even_in_tied_rows():
    s = torch.zeros(3, 8)
    s[1, 5] = float("nan")  # a tied row (all zeros) with one NaN
    top_s, _ = ranking.top_k(ranking.mask_scores(s, (torch.tensor([0]), torch.tensor([1]))), 3)
    assert ranking.has_nan(top_s)
    assert not ranking.has_nan(ranking.top_k(torch.zeros(3, 8), 3)[0])

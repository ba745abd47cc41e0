"""The ranking kernels (harness.ranking) against independent references: numpy lexsort for the
ranking rule, a dense relevance matrix for hits, scipy row slicing for csr_pairs; the compiled
CPU pass against the torch path (fuzzed)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


@pytest.mark.parametrize("path", ["torch", "compiled"])
@pytest.mark.parametrize("seed", range(40))
def test_masked_top_k_follows_the_ranking_rule(seed, path):
    """Both paths (torch's, used on CUDA; the compiled CPU pass) rank by the rule; the compiled
    one also returns the hits. Wide rows (up to 300 columns, small k) take the compiled pass's
    chunked filter."""
    rng = np.random.default_rng(seed)
    wide = seed % 4 == 0
    b, c = rng.integers(1, 30), rng.integers(1, 300 if wide else 50)
    k = int(rng.integers(1, 6 if wide else 25))
    dtype = [np.float32, np.float64, np.int64][seed % 3]
    scores = rng.integers(0, rng.integers(1, 6), (b, c)).astype(dtype)  # many ties
    if seed % 5 == 0:
        scores = (scores * 1000 + rng.integers(0, 1000, (b, c))).astype(dtype)  # few ties
    if dtype != np.int64 and seed % 2:
        scores[rng.random((b, c)) < 0.2] = -np.inf
        scores[rng.random((b, c)) < 0.05] = np.inf
    excluded = rng.random((b, c)) < 0.3
    relevant = rng.random((b, c)) < 0.2
    want_s, want_c = _reference_top(scores, excluded, k)
    ex = torch.nonzero(torch.from_numpy(excluded), as_tuple=True)
    truth = torch.nonzero(torch.from_numpy(relevant), as_tuple=True)
    if path == "torch":
        masked = ranking.mask_scores(torch.from_numpy(scores), ex)
        got_s, got_c = ranking.top_k(masked, k)
        assert masked.dtype == (torch.float64 if dtype != np.float32 else torch.float32)
    else:
        got_s, got_c, hit = ranking.masked_top_k_cpu(torch.from_numpy(scores), ex, k, truth)
        want_hit = np.take_along_axis(relevant, want_c, 1) & ~np.isneginf(want_s)
        np.testing.assert_array_equal(hit.numpy(), want_hit)
    np.testing.assert_array_equal(got_c.numpy(), want_c)
    np.testing.assert_array_equal(got_s.numpy(), want_s)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_compiled_pass_equals_torch_path(data):
    """Fuzzed: the compiled CPU pass returns the torch path's values, columns and hits, NaN rows
    flagged the same way (their contents are an error either way)."""
    b = data.draw(st.integers(1, 4))
    c = data.draw(st.integers(1, 200))
    k = data.draw(st.integers(1, c))
    pool = data.draw(st.sampled_from([[0.0, 1.0], [0.0, 1.0, 2.0, -np.inf, np.inf],
                                      [0.5, -np.inf, np.nan], list(np.linspace(-1, 1, 50))]))
    idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=b * c, max_size=b * c))
    scores = torch.tensor(np.array(pool)[idx].reshape(b, c), dtype=torch.float32)
    ex_mask = data.draw(st.lists(st.booleans(), min_size=b * c, max_size=b * c))
    ex = torch.nonzero(torch.tensor(ex_mask).reshape(b, c), as_tuple=True)
    truth = (torch.arange(b), torch.zeros(b, dtype=torch.long))
    want_s, want_c = ranking.top_k(ranking.mask_scores(scores, ex), k)
    want_hit = ranking.hits(want_c, want_s, truth, c)
    got_s, got_c, got_hit = ranking.masked_top_k_cpu(scores, ex, k, truth)
    nan = torch.isnan(want_s).any(1)
    assert torch.equal(nan, torch.isnan(got_s).any(1))
    assert torch.equal(got_c[~nan], want_c[~nan]) and torch.equal(got_s[~nan], want_s[~nan])
    assert torch.equal(got_hit[~nan], want_hit[~nan])


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

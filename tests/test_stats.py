"""harness.report.stats against scipy, ranx and hand computations."""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from harness.report import stats


@pytest.fixture(scope="module")
def ranx_pair():
    """Per-query ndcg@10 of two ranx runs on shared qrels, and ranx's own compare() report."""
    from ranx import Qrels, Run, compare, evaluate
    rng = np.random.default_rng(0)
    qrels, ra, rb = {}, {}, {}
    docs = [f"d{i}" for i in range(30)]
    for q in range(150):
        rel = rng.choice(30, size=rng.integers(1, 6), replace=False)
        qrels[f"q{q}"] = {f"d{i}": 1 for i in rel}
        boost = np.zeros(30)
        boost[rel] = 1
        ra[f"q{q}"] = dict(zip(docs, (rng.normal(size=30) + 0.8 * boost).tolist()))
        rb[f"q{q}"] = dict(zip(docs, (rng.normal(size=30) + 0.6 * boost).tolist()))
    q, a, b = Qrels(qrels), Run(ra, name="a"), Run(rb, name="b")
    va = evaluate(q, a, "ndcg@10", return_mean=False)
    vb = evaluate(q, b, "ndcg@10", return_mean=False)
    reports = {t: compare(q, [a, b], metrics=["ndcg@10"], stat_test=t, n_permutations=5000)
               for t in ("student", "fisher")}
    p = {t: float(r.comparisons[frozenset(["a", "b"])]["ndcg@10"]["p_value"])
         for t, r in reports.items()}
    return va, vb, p


def test_paired_t_matches_ranx_compare_student_and_scipy(ranx_pair):
    a, b, p = ranx_pair
    assert stats.paired_t(a, b) == pytest.approx(p["student"], rel=1e-12)
    assert stats.paired_t(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue, rel=1e-12)
    assert 0.01 < p["student"] < 0.5  # a real, non-degenerate comparison


def test_randomization_matches_ranx_fisher_and_scipy(ranx_pair):
    a, b, p = ranx_pair
    mine = stats.randomization(a, b, n_resamples=20000, seed=0)
    # both are Monte Carlo estimates of the same p (sd ~ sqrt(p(1-p)/5000) ~ 0.004)
    assert mine == pytest.approx(p["fisher"], abs=0.02)
    ref = sps.permutation_test((a, b), lambda x, y, axis=-1: np.mean(x - y, axis=axis),
                               permutation_type="samples", n_resamples=20000,
                               vectorized=True, random_state=0).pvalue
    assert mine == pytest.approx(ref, abs=0.02)


def test_randomization_matches_exact_enumeration():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.3, 0.2, 12), rng.normal(0.2, 0.2, 12)
    d = a - b
    flips = np.array(list(itertools.product([-1, 1], repeat=12)))
    exact = np.mean(np.abs(flips @ d) / 12 >= abs(d.mean()) - 1e-12)
    assert stats.randomization(a, b, 40000, seed=1) == pytest.approx(exact, abs=0.01)
    # seeded: same seed, same p; the +1 correction keeps p > 0
    assert stats.randomization(a, b, 500, 7) == stats.randomization(a, b, 500, 7)
    assert stats.randomization(a + 10, b, 200, 0) == pytest.approx(1 / 201)


def test_wilcoxon_matches_scipy_and_degenerate_cases():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.3, 0.1, 40), rng.normal(0.28, 0.1, 40)
    assert stats.wilcoxon(a, b) == pytest.approx(sps.wilcoxon(a, b).pvalue, rel=1e-12)
    a, b = rng.normal(0.3, 0.1, 300), rng.normal(0.28, 0.1, 300)
    assert stats.wilcoxon(a, b) == pytest.approx(sps.wilcoxon(a - b).pvalue, rel=1e-12)
    same = rng.random(20)
    assert stats.wilcoxon(same, same) == 1.0
    assert stats.paired_t(same, same) == 1.0
    assert stats.paired_t(same + 0.1, same) == 0.0
    assert np.isnan(stats.paired_t(same[:1], same[:1]))
    assert stats.paired_test(a, b, "wilcoxon") == stats.wilcoxon(a, b)
    with pytest.raises(ValueError, match="unknown test"):
        stats.paired_test(a, b, "z")


def test_holm_by_hand():
    # sorted: 0.005 (x4 = 0.02), 0.01 (x3 = 0.03), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # capped at 1, NaN ignored (m counts the non-NaN p-values only), order preserved
    adj = stats.holm([0.5, np.nan, 0.2])
    assert adj[0] == pytest.approx(0.5) and np.isnan(adj[1]) and adj[2] == pytest.approx(0.4)
    assert stats.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # 0.8 x 2 caps at 1
    assert stats.holm([0.3, 0.01]) == pytest.approx([0.3, 0.02])
    assert stats.holm([]).size == 0
    # Holm rejects at least what Bonferroni rejects, never more than unadjusted
    rng = np.random.default_rng(0)
    q = rng.random(30) ** 3
    h = stats.holm(q)
    assert np.all(h >= q) and np.all(h <= np.minimum(1, q * 30) + 1e-15)


def test_bootstrap_ci_deterministic_covers_mean_and_matches_normal_width():
    rng = np.random.default_rng(5)
    x = rng.beta(2, 5, 800)
    lo, hi = stats.bootstrap_ci(x, 2000, seed=0)
    assert (lo, hi) == stats.bootstrap_ci(x, 2000, seed=0)
    assert (lo, hi) != stats.bootstrap_ci(x, 2000, seed=1)
    assert lo < x.mean() < hi
    se = x.std(ddof=1) / np.sqrt(len(x))
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.1)
    ref = sps.bootstrap((x,), np.mean, n_resamples=2000, method="percentile",
                        random_state=0).confidence_interval
    assert lo == pytest.approx(ref.low, abs=se / 4) and hi == pytest.approx(ref.high, abs=se / 4)
    # narrower at a lower confidence level; empty input -> nan
    lo90, hi90 = stats.bootstrap_ci(x, 2000, seed=0, alpha=0.1)
    assert lo < lo90 < hi90 < hi
    assert all(np.isnan(stats.bootstrap_ci(np.array([]), 100)))


def test_bootstrap_chunks_do_not_change_the_draws(monkeypatch):
    x = np.random.default_rng(2).random(300)
    whole = stats.bootstrap_means(x, 50, seed=4)
    monkeypatch.setattr(stats, "_CHUNK_CELLS", 300 * 7)  # 7 resamples per chunk
    assert np.array_equal(stats.bootstrap_means(x, 50, seed=4), whole)
    manual = x[np.random.default_rng(4).integers(0, 300, (50, 300))].mean(axis=1)
    assert np.allclose(whole, manual)

"""Statistics over users: bootstrap confidence intervals, paired tests, Holm correction.

All functions take per-user values (one number per user; with several seeds, the caller first
averages each user's values over the seeds, see `harness.report.tables`). Every random draw
comes from ``numpy.random.default_rng(seed)``, so the same inputs and seed give the same output.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

TESTS = ("t", "wilcoxon", "randomization")
_CHUNK_CELLS = 2_000_000  # bootstrap index matrix cells per chunk (bounded memory)


def bootstrap_means(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Means of `n_boot` resamples of `values`: resample b draws n indices uniformly with
    replacement, I_b ~ U{0..n-1}^n, and returns m_b = (1/n) Σ_i values[I_b,i].

    The draws depend only on (n, n_boot, seed): every model and metric of a table evaluated on
    the same n users gets the same resampled user sets (common random numbers)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0 or n_boot <= 0:
        return np.empty(0)
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    step = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) CI of the mean over users:
    [q_{alpha/2}(m), q_{1-alpha/2}(m)] of the resampled means m_b (`bootstrap_means`),
    quantiles with linear interpolation. (nan, nan) when there are no values or n_boot = 0."""
    means = bootstrap_means(values, n_boot, seed)
    if means.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def paired_t(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided paired t-test on d = a - b: t = mean(d) / (sd(d) / sqrt(n)), sd with ddof 1,
    p = 2 P(T_{n-1} >= |t|) (scipy.stats.ttest_rel). Constant d (up to 1e-12): p = 1 if
    d = 0, else 0."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) < 2:
        return float("nan")
    if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # constant, up to rounding
        return 1.0 if abs(d.mean()) <= 1e-12 else 0.0
    return float(sps.ttest_rel(a, b, alternative="two-sided").pvalue)


def wilcoxon(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank test on d = a - b (scipy.stats.wilcoxon, zero differences
    dropped, 'wilcox'): W = Σ_{d_i>0} rank(|d_i|); exact null for small n without ties, normal
    approximation otherwise. All d = 0: p = 1."""
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) == 0:
        return float("nan")
    if np.all(d == 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def randomization(a: np.ndarray, b: np.ndarray, n_resamples: int = 10000,
                  seed: int = 0) -> float:
    """Two-sided paired randomization (sign-flip permutation) test, as Fisher's randomization
    test in IR (Smucker et al. 2007; ranx 'fisher'): under H0 the labels of each user's pair are
    exchangeable, i.e. d_i = a_i - b_i keeps its size but its sign is random. With R draws
    s^(r) ∈ {-1, +1}^n,
        p = (1 + #{r : |mean(s^(r) d)| >= |mean(d)|}) / (1 + R)
    (the +1 counts the observed labelling, so p > 0; a tolerance of 1e-12 absorbs rounding)."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = len(d)
    if n == 0:
        return float("nan")
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    hits, step = 0, max(1, _CHUNK_CELLS // n)
    for start in range(0, n_resamples, step):
        r = min(step, n_resamples - start)
        signs = rng.integers(0, 2, size=(r, n), dtype=np.int8) * 2 - 1
        hits += int(np.count_nonzero(np.abs(signs @ d) / n >= observed - 1e-12))
    return (1 + hits) / (1 + n_resamples)


def paired_test(a: np.ndarray, b: np.ndarray, test: str = "t", seed: int = 0,
                n_resamples: int = 10000) -> float:
    """p-value of the paired test named `test` (t | wilcoxon | randomization) of a vs b."""
    if test == "t":
        return paired_t(a, b)
    if test == "wilcoxon":
        return wilcoxon(a, b)
    if test == "randomization":
        return randomization(a, b, n_resamples, seed)
    raise ValueError(f"unknown test {test!r}; valid: {', '.join(TESTS)}")


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values. With the m non-NaN p-values sorted ascending,
    p_(1) <= ... <= p_(m):  p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting where p~ <= alpha controls the family-wise error rate at alpha. NaN stays NaN."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out

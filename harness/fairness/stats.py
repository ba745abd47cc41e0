"""User-group gaps: group means, gap and ratio, a permutation test and a bootstrap CI.

For per-user values x_u and group codes g_u ∈ {0..G-1} (users of groups that are reported):

- mean_g = (1/n_g) Σ_{u: g_u = g} x_u
- gap    = max_g mean_g − min_g mean_g   (for two groups: |mean_1 − mean_0|)
- ratio  = min_g mean_g / max_g mean_g   (NaN when max_g mean_g <= 0)
- permutation test of H0 "the group labels are exchangeable": the labels are shuffled over the
  users R times (each shuffle keeps the group sizes) and
      p = (1 + #{r : gap(shuffle r) >= gap − ε}) / (1 + R),   ε = 1e-12 · max(1, |gap|)
  (the +1 counts the observed labelling; the same estimator as scipy.stats.permutation_test
  with permutation_type='independent' and alternative='greater' when it samples);
- bootstrap CI of the gap: the BCa interval (scipy.stats.bootstrap, each group resampled with
  replacement on its own, i.e. stratified) of the contrast mean_hi − mean_lo between the two
  groups observed highest and lowest, held fixed across resamples. For two groups this is the
  CI of the difference of their means (it includes negative values when their order is
  uncertain). The range itself is not bootstrapped: the range of resampled means is biased
  upwards, so its interval can lie entirely above the observed gap. Whether the gap is larger
  than chance, picking the extreme groups included, is the permutation test's question.
  Each group mean gets its own BCa interval; percentile intervals where BCa is undefined
  (constant values).

Every draw comes from a `numpy.random.Generator` the caller seeds.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats as sps

_CHUNK = 2_000_000  # permutation/bootstrap matrix cells per chunk (bounded memory)


def group_means(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """mean_g for g = 0..n_groups-1 (NaN for an empty group)."""
    sums = np.bincount(codes, weights=values, minlength=n_groups)
    counts = np.bincount(codes, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def gap(means: np.ndarray) -> float:
    return float(np.nanmax(means) - np.nanmin(means))


def ratio(means: np.ndarray) -> float:
    hi = np.nanmax(means)
    return float(np.nanmin(means) / hi) if hi > 0 else float("nan")


def _batched_gaps(values: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """gap of each row of a (R, n) matrix of group codes over the same values."""
    r, n = codes.shape
    flat = (codes + n_groups * np.arange(r)[:, None]).ravel()
    sums = np.bincount(flat, weights=np.tile(values, r), minlength=r * n_groups)
    counts = np.bincount(flat, minlength=r * n_groups)
    means = (sums / counts).reshape(r, n_groups)
    return means.max(1) - means.min(1)


def permutation_p(values: np.ndarray, codes: np.ndarray, n_groups: int, n_perm: int,
                  rng: np.random.Generator) -> float:
    """Permutation p-value of the observed gap (see the module docstring)."""
    values = np.asarray(values, float)
    codes = np.asarray(codes, np.int64)
    observed = gap(group_means(values, codes, n_groups))
    tol = 1e-12 * max(1.0, abs(observed))
    hits, step = 0, max(1, _CHUNK // max(len(values), 1))
    for start in range(0, n_perm, step):
        r = min(step, n_perm - start)
        perm = rng.permuted(np.broadcast_to(codes, (r, len(codes))), axis=1)
        hits += int(np.count_nonzero(_batched_gaps(values, perm, n_groups) >= observed - tol))
    return (1 + hits) / (1 + n_perm)


def _difference(hi, lo, axis=-1):
    return hi.mean(axis=axis) - lo.mean(axis=axis)


def bootstrap_ci(samples: list[np.ndarray], statistic, n_boot: int, level: float,
                 rng: np.random.Generator) -> tuple[float, float]:
    """BCa bootstrap CI (scipy.stats.bootstrap; several samples are resampled independently,
    i.e. stratified by group); the percentile interval when BCa is undefined (e.g. constant
    values)."""
    samples = tuple(np.asarray(s, float) for s in samples)
    out = (float("nan"), float("nan"))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(samples, statistic, n_resamples=n_boot, confidence_level=level,
                                method=method, vectorized=True, rng=rng)
        out = (float(res.confidence_interval.low), float(res.confidence_interval.high))
        if np.isfinite(out).all():
            return out
    return out


def gap_test(values: np.ndarray, codes: np.ndarray, n_groups: int, n_perm: int, n_boot: int,
             level: float, rng: np.random.Generator) -> dict:
    """Group means, gap, ratio, permutation p, bootstrap CIs of the gap and of each mean."""
    values = np.asarray(values, float)
    means = group_means(values, codes, n_groups)
    groups = [values[codes == g] for g in range(n_groups)]
    mean_ci = [bootstrap_ci([x], np.mean, n_boot, level, rng) for x in groups]
    out = {"means": means, "gap": gap(means), "ratio": ratio(means),
           "mean_ci": (np.array([c[0] for c in mean_ci]), np.array([c[1] for c in mean_ci])),
           "p": float("nan"), "gap_ci": (float("nan"), float("nan"))}
    if n_groups >= 2:
        hi, lo = int(np.nanargmax(means)), int(np.nanargmin(means))
        out["gap_ci"] = bootstrap_ci([groups[hi], groups[lo]], _difference, n_boot, level, rng)
        out["p"] = permutation_p(values, codes, n_groups, n_perm, rng)
    return out

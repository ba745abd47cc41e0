"""Latency percentiles that are only reported when there are enough samples.

`percentile(x, q)` is the nearest-rank percentile: the value at rank ceil(q/100 * n) of the
sorted samples. It is always one of the measured values (never interpolated or extrapolated
beyond the largest). p99 of 100 samples would be the second-largest measurement, an almost
arbitrary single sample; hence the availability rule `min_samples(q)`:

- p90 needs 64 timed samples and p99 needs 662 (the issue's thresholds; about 6.4 and 6.6
  samples are then expected above the percentile);
- any other q needs ceil(6.62 / (1 - q/100)) samples (the p99 ratio: ~6.6 samples above it),
  e.g. p50: 14, p95: 133, p99.9: 6620.

A percentile with fewer samples is *unavailable*: no metrics row is written for it (a NaN row
would read as a measurement), and the cell's efficiency record in the manifest says
`"latency_p99_ms": "unavailable: needs 662 timed samples, had 200"`; leaderboard.md shows
"n/a (200/662)".
"""

from __future__ import annotations

import math

import numpy as np

FIXED = {90.0: 64, 99.0: 662}
TAIL_SAMPLES = 6.62


def min_samples(q: float) -> int:
    """Timed samples needed before the q-th percentile is reported."""
    q = float(q)
    if q in FIXED:
        return FIXED[q]
    return max(1, math.ceil(TAIL_SAMPLES / (1.0 - q / 100.0) - 1e-9))


def percentile(samples, q: float) -> float:
    """Nearest-rank q-th percentile (a measured value; never interpolated)."""
    x = np.sort(np.asarray(samples, dtype=float))
    if len(x) == 0:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q / 100.0 * len(x) - 1e-9))
    return float(x[rank - 1])


def pct_name(q: float, prefix: str = "latency") -> str:
    """'latency_p90_ms', 'latency_p99.9_ms'."""
    return f"{prefix}_p{q:g}_ms"


def latency_figures(seconds, percentiles, prefix: str = "latency") -> tuple[dict, dict]:
    """({metric: value in ms} for the mean and every available percentile,
    {metric: 'unavailable: ...'} for the others)."""
    ms = np.asarray(seconds, dtype=float) * 1000.0
    n = len(ms)
    values, unavailable = {}, {}
    if n:
        values[f"{prefix}_mean_ms"] = float(ms.mean())
    for q in percentiles:
        name, need = pct_name(q, prefix), min_samples(q)
        if n >= need:
            values[name] = percentile(ms, q)
        else:
            unavailable[name] = f"unavailable: needs {need} timed samples, had {n}"
    return values, unavailable

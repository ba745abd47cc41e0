"""Masking and top-k of a CPU score matrix in one pass per row, compiled by numba.

`masked_top_k` gives exactly what `ranking.mask_scores` followed by `ranking.top_k` give (the
ranking rule: score descending, ties broken by the lower column; a model's -inf is the lowest
finite value, excluded entries are -inf), reading each score once and keeping the k best in
order.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _offer(v, c, hv, hc, n, k, mark, lowest):
    """Offer column c with score v to the row's ranked list hv/hc of n entries (capacity k,
    best first); returns (new n, NaN seen). Columns arrive in ascending order, so the new entry
    goes after every entry with a value >= v (the tie rule), found from the end."""
    if mark[c]:
        return n, False
    if v != v:
        return n, True
    if v == -np.inf:
        v = lowest
    if n == k:
        if not v > hv[k - 1]:
            return n, False
        i = k - 1
    else:
        i = n
        n += 1
    while i > 0 and hv[i - 1] < v:
        hv[i], hc[i] = hv[i - 1], hc[i - 1]
        i -= 1
    hv[i], hc[i] = v, c
    return n, False


CHUNK = 64  # scores tested against the list's worst at once (LLVM vectorizes this count)


@numba.njit(cache=True, parallel=True, nogil=True)
def masked_top_k(scores, ex_ptr, ex_cols, tr_ptr, tr_cols, lowest, top_s, top_c, hits,
                 has_nan, marks):
    """For every row r of `scores` (B, C): the k = top_s.shape[1] best columns by the ranking
    rule into top_s[r], top_c[r], among the columns not listed in
    ex_cols[ex_ptr[r]:ex_ptr[r + 1]]; a -inf score counts as `lowest`. Rows with fewer than k
    such columns end with excluded columns, lowest first, at -inf. A NaN among a row's
    non-excluded scores sets has_nan[r] (and puts NaN first in top_s[r]). hits[r, i]: the
    column at rank i is one of tr_cols[tr_ptr[r]:tr_ptr[r + 1]] (relevant) and not excluded.
    `marks`: (numba threads, C) booleans, all False (and left so): each thread's scratch row
    (arrays allocated inside a parallel loop were not freed by numba 0.68: 5 MB per call).
    One pass per row: once the k-entry list is full, a chunk of scores is looked at only when
    one of them exceeds the list's worst (or is NaN); columns arrive in ascending order, so an
    entry tied with the worst never enters."""
    n_rows, n_cols = scores.shape
    k = top_s.shape[1]
    for r in numba.prange(n_rows):
        hv, hc = top_s[r], top_c[r]
        row = scores[r]
        mark = marks[numba.get_thread_id()]  # excluded columns
        for e in range(ex_ptr[r], ex_ptr[r + 1]):
            mark[ex_cols[e]] = True
        n = 0
        nan = False
        c = 0
        while c < n_cols and n < k:
            n, seen = _offer(row[c], c, hv, hc, n, k, mark, lowest)
            nan |= seen
            c += 1
        while c + CHUNK <= n_cols:
            thr = hv[k - 1]
            below = np.int32(0)
            for j in range(CHUNK):
                below += np.int32(row[c + j] <= thr)
            if below < CHUNK:  # one is above the worst, or NaN
                for j in range(c, c + CHUNK):
                    if not (row[j] <= hv[k - 1]):
                        n, seen = _offer(row[j], j, hv, hc, n, k, mark, lowest)
                        nan |= seen
            c += CHUNK
        while c < n_cols:
            n, seen = _offer(row[c], c, hv, hc, n, k, mark, lowest)
            nan |= seen
            c += 1
        c = 0
        while n < k and c < n_cols:  # fewer than k ranked columns: excluded ones at -inf
            if mark[c]:
                hv[n], hc[n] = -np.inf, c
                n += 1
            c += 1
        while n < k:  # only when NaN entries were left out: the row is an error anyway
            hv[n], hc[n] = np.nan, 0
            n += 1
        if nan:
            has_nan[r] = True
            hv[0] = np.nan
        for e in range(ex_ptr[r], ex_ptr[r + 1]):  # the mark now flags relevant columns
            mark[ex_cols[e]] = False
        for e in range(tr_ptr[r], tr_ptr[r + 1]):
            mark[tr_cols[e]] = True
        for i in range(k):
            hits[r, i] = mark[hc[i]] and hv[i] != -np.inf
        for e in range(tr_ptr[r], tr_ptr[r + 1]):
            mark[tr_cols[e]] = False

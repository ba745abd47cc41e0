"""Masking and top-k of a CPU score matrix in one pass per row, compiled by numba.

`masked_top_k` gives exactly what `ranking.mask_scores` followed by `ranking.top_k` give (the
ranking rule: score descending, ties broken by the lower column; a model's -inf is the lowest
finite value, excluded entries are -inf), reading each score once and keeping a k-entry heap.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(inline="always")
def _worse(va, ca, vb, cb) -> bool:
    """Entry a ranks below entry b: a lower value, or the same value at a higher column."""
    return va < vb or (va == vb and ca > cb)


@numba.njit(inline="always")
def _sift_down(hv, hc, n, i):
    """Restore the heap (worst entry at the root) below position i."""
    while True:
        w, left, right = i, 2 * i + 1, 2 * i + 2
        if left < n and _worse(hv[left], hc[left], hv[w], hc[w]):
            w = left
        if right < n and _worse(hv[right], hc[right], hv[w], hc[w]):
            w = right
        if w == i:
            return
        hv[i], hv[w] = hv[w], hv[i]
        hc[i], hc[w] = hc[w], hc[i]
        i = w


@numba.njit(inline="always")
def _offer(v, c, hv, hc, n, k, mark, lowest):
    """Offer column c with score v to the row's heap of n entries (capacity k); returns
    (new n, NaN seen)."""
    if mark[c]:
        return n, False
    if v != v:
        return n, True
    if v == -np.inf:
        v = lowest
    if n < k:  # heap not full: sift the new entry up
        i = n
        while i > 0:
            parent = (i - 1) // 2
            if not _worse(v, c, hv[parent], hc[parent]):
                break
            hv[i], hc[i] = hv[parent], hc[parent]
            i = parent
        hv[i], hc[i] = v, c
        return n + 1, False
    if _worse(hv[0], hc[0], v, c):
        hv[0], hc[0] = v, c
        _sift_down(hv, hc, k, 0)
    return n, False


CHUNK = 64  # scores tested against the heap's worst at once (LLVM vectorizes this count)


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
    One pass per row: once the k-entry heap is full, a chunk of scores is looked at only when
    one of them exceeds the heap's worst (or is NaN); columns arrive in ascending order, so an
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
            thr = hv[0]
            below = np.int32(0)
            for j in range(CHUNK):
                below += np.int32(row[c + j] <= thr)
            if below < CHUNK:  # one is above the worst, or NaN
                for j in range(c, c + CHUNK):
                    if not (row[j] <= hv[0]):
                        n, seen = _offer(row[j], j, hv, hc, n, k, mark, lowest)
                        nan |= seen
            c += CHUNK
        while c < n_cols:
            n, seen = _offer(row[c], c, hv, hc, n, k, mark, lowest)
            nan |= seen
            c += 1
        for i in range(1, n):  # heap -> ranking order (k is small: insertion sort)
            v, col, j = hv[i], hc[i], i
            while j > 0 and _worse(hv[j - 1], hc[j - 1], v, col):
                hv[j], hc[j] = hv[j - 1], hc[j - 1]
                j -= 1
            hv[j], hc[j] = v, col
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

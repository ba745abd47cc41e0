"""ItemKNN's co-occurrence counts on the CPU, compiled by numba, target items in parallel."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, parallel=True, nogil=True)
def cooccurrence_into(bounds, t_indptr, t_indices, indptr, indices, start, out):
    """out[j - start, i] += |U_j ∩ U_i| for the target items j of the row blocks
    bounds[b]:bounds[b + 1] (run in parallel): for each user u of item j (the items x users CSR
    (t_indptr, t_indices)), +1 for each item i of u (the users x items CSR (indptr, indices)).
    Counts are exact in float32 up to 2²⁴ users."""
    for block in numba.prange(len(bounds) - 1):
        for j in range(bounds[block], bounds[block + 1]):
            row = out[j - start]
            for a in range(t_indptr[j], t_indptr[j + 1]):
                u = t_indices[a]
                for b in range(indptr[u], indptr[u + 1]):
                    row[indices[b]] += 1.0


@numba.njit(cache=True, parallel=True, nogil=True)
def history_scores_into(h_indptr, h_indices, s_indptr, s_indices, s_data, out):
    """out[r] += Σ_{i ∈ history row r} S[i] for the (B, items) float32 `out`: the history
    rows (h_indptr, h_indices) and the similarity rows S as CSR (s_indptr, s_indices, s_data),
    added item by item in CSR order (scipy's sparse product adds in the same order). Rows run
    in parallel."""
    for r in numba.prange(len(h_indptr) - 1):
        row = out[r]
        for a in range(h_indptr[r], h_indptr[r + 1]):
            i = h_indices[a]
            for b in range(s_indptr[i], s_indptr[i + 1]):
                row[s_indices[b]] += s_data[b]

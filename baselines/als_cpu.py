"""ALS's sparse products on the CPU, compiled by numba, row blocks in parallel."""

from __future__ import annotations

import numba
import numpy as np

from harness.kernels import FASTMATH


@numba.njit(cache=True, fastmath=FASTMATH, parallel=True, nogil=True)
def add_sampled_gram(bounds, indptr, indices, v, y, alpha, out):
    """out[u] += alpha Σ_{i∈u} (y_i · v_u) y_i for every row u of the binary CSR matrix
    (indptr, indices): the sparse part of ALS's A_u v_u. The row blocks
    bounds[b]:bounds[b + 1] run in parallel; each row is summed in the same order whatever the
    thread count."""
    f = v.shape[1]
    for block in numba.prange(len(bounds) - 1):
        for row in range(bounds[block], bounds[block + 1]):
            v_row, out_row = v[row], out[row]
            for idx in range(indptr[row], indptr[row + 1]):
                y_i = y[indices[idx]]
                s = np.float32(0.0)
                for k in range(f):
                    s += y_i[k] * v_row[k]
                s *= alpha
                for k in range(f):
                    out_row[k] += s * y_i[k]


@numba.njit(cache=True, fastmath=FASTMATH, parallel=True, nogil=True)
def row_sums(bounds, indptr, indices, y, out):
    """out[u] = Σ_{i∈u} y_i for every row u of the binary CSR matrix (indptr, indices)."""
    f = y.shape[1]
    for block in numba.prange(len(bounds) - 1):
        for row in range(bounds[block], bounds[block + 1]):
            out_row = out[row]
            out_row[:] = 0.0
            for idx in range(indptr[row], indptr[row + 1]):
                y_i = y[indices[idx]]
                for k in range(f):
                    out_row[k] += y_i[k]

"""BPR's minibatch gradients on the CPU, compiled by numba (one pass over the batch)."""

from __future__ import annotations

import numba
import numpy as np

from harness.kernels import FASTMATH


@numba.njit(cache=True, fastmath=FASTMATH, nogil=True)
def bpr_gradients_into(p, q, u, i, j, l2, grad_p, grad_q):
    """Writes into `grad_p`, `grad_q` the gradients w.r.t. p and q of the batch loss
    L = -mean_b log σ(x_b) + l2 (Σ_b |p_u|² + |q_i|² + |q_j|²) / n, x_b = p_uᵀ (q_i - q_j):
    ∂L/∂x_b = -σ(-x_b) / n, ∂L/∂p_u += ∂L/∂x_b (q_i - q_j) + 2 l2 p_u / n,
    ∂L/∂q_i += ∂L/∂x_b p_u + 2 l2 q_i / n, ∂L/∂q_j += -∂L/∂x_b p_u + 2 l2 q_j / n,
    accumulated over the batch in order. float32 arrays, int64 indices."""
    n, f = u.shape[0], p.shape[1]
    scale = np.float32(-1.0 / n)
    c2 = np.float32(2.0 * l2 / n)
    grad_p[:] = 0
    grad_q[:] = 0
    for b in range(n):
        uu, ii, jj = u[b], i[b], j[b]
        x = np.float32(0.0)
        for k in range(f):
            x += p[uu, k] * (q[ii, k] - q[jj, k])
        g = scale / (np.float32(1.0) + np.exp(x))
        for k in range(f):
            pk, qi, qj = p[uu, k], q[ii, k], q[jj, k]
            grad_p[uu, k] += g * (qi - qj) + c2 * pk
            grad_q[ii, k] += g * pk + c2 * qi
            grad_q[jj, k] += c2 * qj - g * pk

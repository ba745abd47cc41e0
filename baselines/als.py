"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), vectorized with torch."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from baselines.factors import factor_scores
from harness.recommender import Recommender


def als_half_step(x: sp.csr_matrix, y: torch.Tensor, alpha: float, l2: float,
                  max_elems: int = 1 << 24) -> torch.Tensor:
    """Solve for every row u of the binary `x` (rows x cols) against fixed column factors `y`:
    (YᵀY + alpha Σ_{i∈u} y_i y_iᵀ + l2 I) w_u = (1 + alpha) Σ_{i∈u} y_i, i.e. the exact
    minimizer of Σ_i c_ui (p_ui - w_uᵀ y_i)² + l2 |w_u|² with c = 1 + alpha on observed entries
    (p = 1) and 1 elsewhere (p = 0).

    The per-row sums Σ_{i∈u} y_i y_iᵀ are one sparse-dense product x @ Z with Z[i] = vec(y_i y_iᵀ)
    (as fast as it gets on CPU, and deterministic). Rows are solved in blocks, and Z is built in
    column slices when needed, so no intermediate holds more than about `max_elems` floats."""
    n_cols, f = y.shape
    base = y.T @ y + l2 * torch.eye(f, dtype=y.dtype)
    rhs = torch.from_numpy(np.asarray(x @ y.numpy(), dtype=np.float32)) * (1.0 + alpha)
    out = torch.empty((x.shape[0], f), dtype=y.dtype)
    block_rows = max(1, max_elems // (f * f))
    slice_a = max(1, min(f, max_elems // max(1, n_cols * f)))
    outer = lambda a0, a1: (y[:, a0:a1, None] * y[:, None, :]).reshape(n_cols, -1).numpy()  # noqa: E731
    z_full = outer(0, f) if slice_a == f else None
    for r0 in range(0, x.shape[0], block_rows):
        xb = x[r0:r0 + block_rows]
        a = base.repeat(xb.shape[0], 1, 1)
        for a0 in range(0, f, slice_a):
            a1 = min(f, a0 + slice_a)
            z = z_full if z_full is not None else outer(a0, a1)
            a[:, a0:a1, :] += alpha * torch.from_numpy(np.asarray(xb @ z)).reshape(-1, a1 - a0, f)
        out[r0:r0 + xb.shape[0]] = torch.linalg.solve(a, rhs[r0:r0 + xb.shape[0]])
    return out


class ALS(Recommender):
    """Implicit ALS: user/item factors minimizing Σ_{u,i} c_ui (p_ui - x_uᵀ y_i)² +
    l2 (Σ|x_u|² + Σ|y_i|²) with confidence c_ui = 1 + alpha on observed (p = 1) entries and 1
    elsewhere, by alternating exact least squares for `iterations` rounds from a seeded
    N(0, 0.01²) init. score(u, i) = x_uᵀ y_i; users with no training history get train
    popularity scores; items never seen in training get zero factors (score 0)."""

    param_ranges = {"factors": "[1, 100000]", "l2": "[0, inf)", "alpha": "[0, inf)",
                    "iterations": "[1, 100000]"}

    def __init__(self, factors: int = 64, l2: float = 40.0, alpha: float = 5.0,
                 iterations: int = 15, seed: int = 0):
        super().__init__(seed)
        self.factors, self.l2, self.alpha, self.iterations = factors, l2, alpha, iterations

    def fit(self, split, dataset) -> None:
        x = split.train.csr()
        xt = x.T.tocsr()
        gen = self.generator()
        n_users, n_items = x.shape
        dt = torch.float32
        self.user_factors = torch.randn((n_users, self.factors), generator=gen, dtype=dt) * 0.01
        self.item_factors = torch.randn((n_items, self.factors), generator=gen, dtype=dt) * 0.01
        for _ in range(self.iterations):
            self.user_factors = als_half_step(x, self.item_factors, self.alpha, self.l2)
            self.item_factors = als_half_step(xt, self.user_factors, self.alpha, self.l2)
        self.cold = torch.from_numpy(np.diff(x.indptr) == 0)
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return factor_scores(self.user_factors, self.item_factors, self.cold, self.popularity,
                             users, items)

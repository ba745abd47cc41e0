"""EASE^R: embarrassingly shallow autoencoder (Steck 2019), closed form."""

from __future__ import annotations

import contextlib

import numpy as np
import scipy.linalg as sl
import torch

from harness.errors import UserError
from harness.recommender import Recommender, all_items

SERIAL_BELOW = 2048  # items: smaller Cholesky factorizations run on one BLAS thread


def serial_blas():
    """BLAS pools limited to one thread inside the block (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, "blas")


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = I - P / diag(P) with P = (G + l2 I)^-1 and G = XᵀX, i.e. B[i, j] = -P[i, j] / P[j, j]
    off the diagonal and B[j, j] = 0.
    G + l2 I is symmetric positive definite for l2 > 0, so P comes from one Cholesky
    factorization and its inverse in float64 (about half the flops of a general inverse).
    Below `SERIAL_BELOW` items: LAPACK potrf + potri through scipy, in place in one float64 copy
    of G, BLAS on one thread (restored after): such a factorization takes a fraction of a
    second, and parallel BLAS mostly adds synchronization there, which a busy machine turns into
    seconds. From `SERIAL_BELOW` items on: torch's LAPACK (cholesky_ex + cholesky_inverse, two
    float64 copies at the peak), because scipy's bundled OpenBLAS crashed the process (SIGSEGV
    in potrf/potri) on a 16,384-item catalog with two threads (benchmarks/large_data.py)."""
    n = gram.shape[0]
    if n >= SERIAL_BELOW:
        return _weights_from_inverse(_spd_inverse_torch(gram, l2))
    g = np.array(gram, dtype=np.float64, order="F")  # the only n x n copy
    g.flat[::n + 1] += l2
    with serial_blas():
        c, info = sl.lapack.dpotrf(g, lower=False, clean=False, overwrite_a=True)
        if info == 0:
            c, info = sl.lapack.dpotri(c, lower=False, overwrite_c=True)
    _check(info, l2)
    lower = np.tril_indices(n, -1)
    c[lower] = c.T[lower]  # potri fills the upper triangle only
    return _weights_from_inverse(c)


def _check(info: int, l2: float) -> None:
    if info != 0:
        raise UserError(f"EASE: XᵀX + l2 I is not positive definite (LAPACK info {info}); "
                        f"use l2 > 0 (got {l2})")


def _spd_inverse_torch(gram: np.ndarray, l2: float) -> np.ndarray:
    """(G + l2 I)^-1 in float64 through torch's Cholesky."""
    g = torch.from_numpy(np.array(gram, dtype=np.float64))
    g.diagonal().add_(l2)
    factor, info = torch.linalg.cholesky_ex(g)
    del g
    _check(int(info), l2)
    return torch.cholesky_inverse(factor).numpy()


def _weights_from_inverse(c: np.ndarray) -> np.ndarray:
    """B = -P / diag(P) with a zero diagonal, in place in P."""
    n = c.shape[0]
    c /= -np.diag(c).copy()[None, :]
    c.flat[::n + 1] = 0.0
    return c


class EASE(Recommender):
    """score(u, ·) = x_u B with B = I - P/diag(P), P = (XᵀX + l2 I)^-1 on the binary training
    matrix X. Needs a dense n_items x n_items inverse: more than `max_items` items is refused
    before the run starts (`scale_problem`). Users with no training history get train popularity
    scores instead."""

    param_ranges = {"l2": "(0, inf)", "max_items": "[1, inf)"}

    def __init__(self, l2: float = 300.0, max_items: int = 20000, seed: int = 0):
        super().__init__(seed)
        self.l2, self.max_items = l2, max_items

    def scale_problem(self, n_users: int, n_items: int, n_interactions: int) -> str | None:
        """Why this model cannot fit data of this size (None: it can)."""
        if n_items <= self.max_items:
            return None
        return (f"EASE needs a dense {n_items:,} x {n_items:,} inverse (~"
                f"{n_items ** 2 * 8 / 2 ** 30:.3g} GiB in float64, about 3 copies at the peak), "
                f"more than max_items = {self.max_items:,}; use itemknn or als for a catalog "
                f"this large, or raise max_items if the memory is there")

    def fit(self, split, dataset) -> None:
        x = split.train.csr()
        problem = self.scale_problem(*x.shape, x.nnz)
        if problem:
            raise UserError(problem)
        gram = (x.T @ x).toarray()
        # row-major: scoring reads B's rows (a column-major B made a 20,000-item catalog's
        # sparse x dense product 82x slower: benchmarks/large_data.py, 5,000 users)
        self.weights = torch.from_numpy(
            np.ascontiguousarray(ease_weights(gram, float(self.l2)), dtype=np.float32))
        self.history = x
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        hist = self.history[users.long().numpy()]
        idx = items.long()
        w = self.weights.numpy()
        out = torch.from_numpy(np.asarray(hist @ w))  # sparse history x dense B: no B copy
        if not all_items(idx, w.shape[1]):
            out = out[:, idx]  # columns of the product (same values): no copy of B's columns
        cold = torch.from_numpy(np.diff(hist.indptr) == 0)
        if cold.any():
            out[cold] = self.popularity[idx]
        return out

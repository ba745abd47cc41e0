"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), vectorized with torch."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from baselines.als_cpu import add_sampled_gram, row_sums
from baselines.factors import factor_scores, intra_op_threads, pick_device
from harness.errors import UserError
from harness.kernels import balanced_bounds, numba_threads
from harness.recommender import Recommender


def als_half_step(x: sp.csr_matrix, y: torch.Tensor, alpha: float, l2: float,
                  max_elems: int = 1 << 24) -> torch.Tensor:
    """Exact solve for every row u of the binary `x` (rows x cols) against fixed column factors
    `y`: (YᵀY + alpha Σ_{i∈u} y_i y_iᵀ + l2 I) w_u = (1 + alpha) Σ_{i∈u} y_i, i.e. the exact
    minimizer of Σ_i c_ui (p_ui - w_uᵀ y_i)² + l2 |w_u|² with c = 1 + alpha on observed entries
    (p = 1) and 1 elsewhere (p = 0).

    The per-row sums Σ_{i∈u} y_i y_iᵀ are one sparse-dense product x @ Z with Z[i] = vec(y_i y_iᵀ)
    (CPU only). Rows are solved in blocks, and Z is built in column slices when needed, so no
    intermediate holds more than about `max_elems` floats."""
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


def csr_pattern(x: sp.csr_matrix, device, dtype) -> torch.Tensor:
    """The binary `x` as a torch CSR tensor (int32 indices when they fit)."""
    itype = np.int32 if x.nnz < 2 ** 31 else np.int64
    ip = torch.from_numpy(x.indptr.astype(itype)).to(device)
    ix = torch.from_numpy(x.indices.astype(itype)).to(device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(ip, ix, torch.ones(x.nnz, dtype=dtype, device=device),
                                       x.shape, check_invariants=False)


class TorchRows:
    """The rows of a binary matrix for `cg_rows`, as a torch CSR tensor on any device: the
    sparse part of A_u v_u is one sampled dense-dense product (the entries v_u · y_i) and one
    sparse-dense product."""

    def __init__(self, x: sp.csr_matrix, device, dtype):
        self.pattern = csr_pattern(x, device, dtype)
        self.empty = torch.from_numpy(np.diff(x.indptr) == 0).to(device)

    def sum_y(self, y: torch.Tensor) -> torch.Tensor:
        return self.pattern @ y

    def a_mul(self, v: torch.Tensor, y: torch.Tensor, gram: torch.Tensor,
              alpha: float) -> torch.Tensor:
        s = torch.sparse.sampled_addmm(self.pattern, v, y.T, beta=0.0)
        return torch.addmm(alpha * (s @ y), v, gram)


class CompiledRows:
    """The rows of a binary matrix for `cg_rows` on the CPU: the sparse products are numba
    kernels (`baselines.als_cpu`) over `n_blocks` row blocks of about equal work
    (nonzeros + rows), run in parallel on numba's threads."""

    def __init__(self, x: sp.csr_matrix, n_blocks: int = 64):
        self.indptr, self.indices = x.indptr, x.indices
        self.empty = torch.from_numpy(np.diff(x.indptr) == 0)
        self.bounds = balanced_bounds(x.indptr + np.arange(x.shape[0] + 1), n_blocks)

    def sum_y(self, y: torch.Tensor) -> torch.Tensor:
        out = torch.empty((len(self.empty), y.shape[1]), dtype=y.dtype)
        row_sums(self.bounds, self.indptr, self.indices, y.numpy(), out.numpy())
        return out

    def a_mul(self, v: torch.Tensor, y: torch.Tensor, gram: torch.Tensor,
              alpha: float) -> torch.Tensor:
        out = v @ gram
        add_sampled_gram(self.bounds, self.indptr, self.indices, v.numpy(), y.numpy(),
                         np.float32(alpha), out.numpy())
        return out


def cg_rows(rows, w0: torch.Tensor, y: torch.Tensor, gram: torch.Tensor, alpha: float,
            steps: int) -> torch.Tensor:
    """`steps` conjugate-gradient iterations from `w0` on the systems A_u w_u = b_u of all
    `rows` (`TorchRows` or `CompiledRows`) at once, with A_u = gram + alpha Σ_{i∈u} y_i y_iᵀ
    (gram = YᵀY + l2 I) and b_u = (1 + alpha) Σ_{i∈u} y_i; O(nnz · f) per iteration. Step:
    a = rᵀr / pᵀAp (0 when pᵀAp ≤ 0), w += a p, r -= a Ap, p = r + (r'ᵀr' / rᵀr) p. Rows without
    entries get 0, their exact solution."""
    w = w0.clone()
    w[rows.empty] = 0.0
    r = (1.0 + alpha) * rows.sum_y(y) - rows.a_mul(w, y, gram, alpha)
    p = r.clone()
    rs = (r * r).sum(1)
    for _ in range(steps):
        ap = rows.a_mul(p, y, gram, alpha)
        pap = (p * ap).sum(1)
        a = torch.where(pap > 0, rs / pap, 0.0)[:, None]
        w.addcmul_(a, p)
        r.addcmul_(a, ap, value=-1.0)
        rs_new = (r * r).sum(1)
        p = torch.addcmul(r, torch.where(rs > 0, rs_new / rs, 0.0)[:, None], p)
        rs = rs_new
    return w


def cg_half_step(rows, w0: torch.Tensor, y: torch.Tensor, alpha: float, l2: float,
                 steps: int) -> torch.Tensor:
    """New row factors against fixed `y` by `cg_rows`, warm started from `w0`."""
    f = y.shape[1]
    gram = torch.addmm(torch.eye(f, dtype=y.dtype, device=y.device), y.T, y, beta=l2)
    return cg_rows(rows, w0, y, gram, alpha, steps)


class ALS(Recommender):
    """Implicit ALS: user/item factors minimizing Σ_{u,i} c_ui (p_ui - x_uᵀ y_i)² +
    l2 (Σ|x_u|² + Σ|y_i|²) with confidence c_ui = 1 + alpha on observed (p = 1) entries and 1
    elsewhere, alternating least squares for `iterations` rounds from a seeded N(0, 0.01²) init.

    solver "cg" (default): each half step runs `cg_steps` conjugate-gradient iterations per row,
    warm started from the previous factors (Takács, Pilászy & Tikk 2011, as the implicit library
    does); O(nnz · f) per step, on CPU or CUDA (`device`: "auto" = CUDA when available, or the
    harness's fit option; "cpu"; "cuda"). On CPU the sparse products are compiled kernels run
    on as many threads as torch's intra-op setting (numba's pool), the dense ones run on one
    intra-op thread, so the factors do not depend on the thread count.
    solver "exact": the exact per-row solves (batched dense systems, CPU, O(nnz · f²)).
    score(u, i) = x_uᵀ y_i; users with no training history get train popularity scores; items
    never seen in training get zero factors (score 0)."""

    param_ranges = {"factors": "[1, 100000]", "l2": "[0, inf)", "alpha": "[0, inf)",
                    "iterations": "[1, 100000]", "cg_steps": "[1, 1000]"}

    def __init__(self, factors: int = 64, l2: float = 40.0, alpha: float = 5.0,
                 iterations: int = 15, solver: str = "cg", cg_steps: int = 3,
                 device: str = "auto", seed: int = 0):
        super().__init__(seed)
        if solver not in ("cg", "exact"):
            raise UserError(f"recommender 'als': solver must be 'cg' or 'exact', got {solver!r}")
        self.factors, self.l2, self.alpha, self.iterations = factors, l2, alpha, iterations
        self.solver, self.cg_steps = solver, cg_steps
        self.device_choice = device
        self.device = pick_device(device, "als") if solver == "cg" else "cpu"
        self.info: dict = {}

    def fit(self, split, dataset) -> None:
        x = split.train.csr()
        xt = x.T.tocsr()
        gen = self.generator()
        n_users, n_items = x.shape
        u = torch.randn((n_users, self.factors), generator=gen, dtype=torch.float32) * 0.01
        v = torch.randn((n_items, self.factors), generator=gen, dtype=torch.float32) * 0.01
        if self.solver == "exact":
            for _ in range(self.iterations):
                u = als_half_step(x, v, self.alpha, self.l2)
                v = als_half_step(xt, u, self.alpha, self.l2)
        else:
            self.device = pick_device(self.device_choice, "als",
                                      getattr(self, "fit_options", None))
            dev = torch.device(self.device)
            u, v = u.to(dev), v.to(dev)
            on_cpu = dev.type == "cpu"
            rows, cols = ((CompiledRows(m) if on_cpu else TorchRows(m, dev, u.dtype))
                          for m in (x, xt))
            with numba_threads(), \
                    intra_op_threads(1 if on_cpu else None):
                for _ in range(self.iterations):
                    u = cg_half_step(rows, u, v, self.alpha, self.l2, self.cg_steps)
                    v = cg_half_step(cols, v, u, self.alpha, self.l2, self.cg_steps)
        self.user_factors, self.item_factors = u.cpu(), v.cpu()
        self.cold = torch.from_numpy(np.diff(x.indptr) == 0)
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())
        self.info = {"solver": self.solver, "device": self.device}

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return factor_scores(self.user_factors, self.item_factors, self.cold, self.popularity,
                             users, items)

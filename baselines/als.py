"""Implicit-feedback ALS (Hu, Koren & Volinsky 2008), vectorized with torch."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
import torch

from baselines.factors import factor_scores, intra_op_threads, pick_device
from harness.errors import UserError
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


def csr_pattern(x: sp.csr_matrix, r0: int, r1: int, device, dtype) -> torch.Tensor:
    """Rows r0:r1 of the binary `x` as a torch CSR tensor (int32 indices when they fit)."""
    lo, hi = x.indptr[r0], x.indptr[r1]
    itype = np.int32 if x.nnz < 2 ** 31 else np.int64
    ip = torch.from_numpy((x.indptr[r0:r1 + 1] - lo).astype(itype)).to(device)
    ix = torch.from_numpy(x.indices[lo:hi].astype(itype)).to(device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(ip, ix, torch.ones(hi - lo, dtype=dtype, device=device),
                                       (r1 - r0, x.shape[1]), check_invariants=False)


def cg_rows(pattern: torch.Tensor, w0: torch.Tensor, y: torch.Tensor, gram: torch.Tensor,
            alpha: float, steps: int) -> torch.Tensor:
    """`steps` conjugate-gradient iterations from `w0` on the rows' systems A_u w_u = b_u with
    A_u = gram + alpha Σ_{i∈u} y_i y_iᵀ (gram = YᵀY + l2 I) and b_u = (1 + alpha) Σ_{i∈u} y_i,
    for all rows of the binary CSR `pattern` at once: A_u v_u for every row is
    v gram + alpha S Y with S = the pattern's entries (v_u · y_i), one sampled dense-dense
    product and one sparse-dense product, O(nnz · f) per iteration. Rows without entries get
    0, their exact solution."""
    y_t = y.T.contiguous()

    def a_mul(v: torch.Tensor) -> torch.Tensor:
        s = torch.sparse.sampled_addmm(pattern, v, y_t, beta=0.0)
        return torch.addmm(alpha * (s @ y), v, gram)

    w = w0.clone()
    w[pattern.crow_indices().diff() == 0] = 0.0
    r = (1.0 + alpha) * (pattern @ y) - a_mul(w)
    p = r.clone()
    rs = (r * r).sum(1)
    for _ in range(steps):
        ap = a_mul(p)
        pap = (p * ap).sum(1)
        a = torch.where(pap > 0, rs / pap, 0.0)[:, None]
        w.addcmul_(a, p)
        r.addcmul_(a, ap, value=-1.0)
        rs_new = (r * r).sum(1)
        p = torch.addcmul(r, torch.where(rs > 0, rs_new / rs, 0.0)[:, None], p)
        rs = rs_new
    return w


def row_blocks(x: sp.csr_matrix, n_blocks: int, device, dtype) -> list[tuple]:
    """(r0, r1, CSR pattern of rows r0:r1) for up to `n_blocks` row blocks of `x` of about equal
    work (nonzeros + rows)."""
    work = x.indptr + np.arange(x.shape[0] + 1)
    cuts = np.searchsorted(work, np.linspace(0, work[-1], n_blocks + 1)[1:-1])
    bounds = [0, *sorted(set(int(c) for c in cuts) - {0, x.shape[0]}), x.shape[0]]
    return [(r0, r1, csr_pattern(x, r0, r1, device, dtype))
            for r0, r1 in zip(bounds[:-1], bounds[1:])]


def cg_half_step(blocks: list[tuple], w0: torch.Tensor, y: torch.Tensor, alpha: float,
                 l2: float, steps: int) -> torch.Tensor:
    """New row factors against fixed `y` by `cg_rows`, warm started from `w0`, for the row
    `blocks` of the binary training matrix (see `row_blocks`). Several blocks are solved by a
    thread pool, one block per thread (coarse-grained parallelism); rows are independent, so
    the result does not depend on the blocks."""
    f = y.shape[1]
    gram = torch.addmm(torch.eye(f, dtype=y.dtype, device=y.device), y.T, y, beta=l2)
    solve = lambda b: cg_rows(b[2], w0[b[0]:b[1]], y, gram, alpha, steps)  # noqa: E731
    if len(blocks) == 1:
        return solve(blocks[0])
    with ThreadPoolExecutor(len(blocks)) as pool:
        return torch.cat(list(pool.map(solve, blocks)))


class ALS(Recommender):
    """Implicit ALS: user/item factors minimizing Σ_{u,i} c_ui (p_ui - x_uᵀ y_i)² +
    l2 (Σ|x_u|² + Σ|y_i|²) with confidence c_ui = 1 + alpha on observed (p = 1) entries and 1
    elsewhere, alternating least squares for `iterations` rounds from a seeded N(0, 0.01²) init.

    solver "cg" (default): each half step runs `cg_steps` conjugate-gradient iterations per row,
    warm started from the previous factors (Takács, Pilászy & Tikk 2011, as the implicit library
    does); O(nnz · f) per step, on CPU or CUDA (`device`: "auto" = CUDA when available, or the
    harness's fit option; "cpu"; "cuda"). On CPU the rows are solved by a pool of as many
    threads as torch's intra-op setting, each running its block on one intra-op thread.
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
            workers = torch.get_num_threads() if dev.type == "cpu" else 1
            rows, cols = (row_blocks(m, workers, dev, u.dtype) for m in (x, xt))
            with intra_op_threads(1 if dev.type == "cpu" else None):
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

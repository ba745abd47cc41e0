"""The per-batch ranking kernels of the evaluation: mask, top-k with deterministic ties, hits.

Each is a fixed, small number of passes over the (B, C) score matrix, and no small operation
uses torch's parallel indexing kernels on the CPU (their thread barrier costs a scheduler time
slice, about 30 ms, when the CPU is oversubscribed): index bookkeeping is done in numpy or with
`index_select` / `index_fill_`. They run on the scores' device (CPU or CUDA).

Ranking rule: score descending, ties broken by the lower candidate column, so a ranking does not
depend on k or on the top-k kernel.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch


def csr_pairs(m: sp.csr_matrix, rows: np.ndarray, col_of: np.ndarray
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """(row positions, column positions) of the entries of `m`'s rows `rows`, columns mapped by
    `col_of` (item -> candidate column, -1 = not a candidate: dropped)."""
    starts, stops = m.indptr[rows], m.indptr[rows + 1]
    lens = (stops - starts).astype(np.int64)
    total = int(lens.sum())
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lens)[:-1])), lens)
    items = m.indices[offsets + np.arange(total)] if total else np.zeros(0, np.int64)
    r = np.repeat(np.arange(len(rows), dtype=np.int64), lens)
    c = col_of[items] if total else np.zeros(0, np.int64)
    keep = c >= 0
    return torch.from_numpy(r[keep]), torch.from_numpy(c[keep].astype(np.int64))


def mask_scores(scores: torch.Tensor, exclude_rc, work: dict | None = None) -> torch.Tensor:
    """A masked copy of (B, C) scores: a model's own -inf becomes the dtype's lowest finite value
    (below real scores, above excluded entries), the (rows, cols) pairs `exclude_rc` become -inf.
    float64 stays float64 (casting would tie scores that differ below float32 resolution); other
    dtypes become float64. One pass (copy and replace together) plus the excluded entries.
    `work`: a dict the caller keeps across batches; the copy then reuses one buffer (no fresh
    pages to fault in per batch), valid until the next call with the same dict."""
    s = scores if scores.dtype in (torch.float32, torch.float64) else scores.double()
    out = None
    if work is not None:
        buf = work.get("mask")
        if (buf is None or buf.dtype != s.dtype or buf.device != s.device
                or buf.shape[1] != s.shape[1] or buf.shape[0] < s.shape[0]):
            buf = work["mask"] = torch.empty(s.shape, dtype=s.dtype, device=s.device)
        out = buf[:s.shape[0]]
    s = torch.nan_to_num(s, nan=float("nan"), posinf=float("inf"),
                         neginf=torch.finfo(s.dtype).min, out=out).contiguous()
    rows, cols = exclude_rc
    if len(rows):
        flat = rows.to(s.device, torch.int64) * s.shape[1] + cols.to(s.device, torch.int64)
        s.view(-1).index_fill_(0, flat, -torch.inf)
    return s


def _stable_first_k(sub: torch.Tensor, top_s: torch.Tensor, top_c: torch.Tensor, k: int
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The first k entries of a stable descending sort of each row of `sub`, given the rows'
    `torch.topk(k)` (values, columns): the entries above the k-th value (exactly those of the
    top-k that exceed it), ordered by value then column, then the lowest columns holding the k-th
    value (the top-k of `C - column` over those entries). Three passes over the rows."""
    n = sub.shape[1]
    kth = top_s[:, k - 1:k]
    above = top_s > kth
    # the entries above the k-th value, by value descending then column ascending, first
    by_col = torch.argsort(top_c, dim=1, stable=True)
    vals, cols = top_s.gather(1, by_col), top_c.gather(1, by_col)
    vals_key = torch.where(above.gather(1, by_col), vals, torch.full_like(vals, -torch.inf))
    by_val = torch.sort(vals_key, dim=1, descending=True, stable=True).indices
    vals, cols = vals.gather(1, by_val), cols.gather(1, by_val)
    # then the lowest columns equal to the k-th value (largest n - column among them)
    back = torch.arange(n, 0, -1, dtype=torch.int32, device=sub.device)
    key = torch.where(sub == kth, back, torch.zeros((), dtype=torch.int32, device=sub.device))
    eq_cols = (n - torch.topk(key, k, dim=1).values).long()  # ascending columns
    n_above = above.sum(1, keepdim=True)
    pos = torch.arange(k, device=sub.device).unsqueeze(0)
    from_eq = pos >= n_above
    cols = torch.where(from_eq, eq_cols.gather(1, (pos - n_above).clamp(min=0)), cols)
    vals = torch.where(from_eq, kth.expand(-1, k), vals)
    return vals, cols


def top_k(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise top-k (values, columns) by the ranking rule. `torch.topk(k + 1)` finds the rows
    whose ranking it could get wrong: a tie at the k-th place (the (k+1)-th value equals the
    k-th), a tie inside the top-k, or fewer than k finite entries; only those rows get the exact
    treatment (`_stable_first_k`)."""
    n = s.shape[1]
    k = min(k, n)
    if k == 0:
        return torch.topk(s, 0, dim=1)
    extra = 1 if n > k else 0
    top_s, top_c = torch.topk(s, k + extra, dim=1)
    edge = (top_s[:, k] == top_s[:, k - 1]) if extra else torch.zeros(
        len(s), dtype=torch.bool, device=s.device)
    top_s, top_c = top_s[:, :k], top_c[:, :k]
    inner = (top_s[:, 1:] == top_s[:, :-1]).any(1)
    fix = (edge | inner | torch.isneginf(top_s[:, -1])) & ~torch.isnan(top_s).any(1)
    rows = torch.nonzero(fix).squeeze(1)  # rows with a NaN are left to the caller's check
    if len(rows):
        vals, cols = _stable_first_k(s.index_select(0, rows), top_s.index_select(0, rows),
                                     top_c.index_select(0, rows), k)
        top_s, top_c = top_s.contiguous(), top_c.contiguous()
        top_s.index_copy_(0, rows, vals)
        top_c.index_copy_(0, rows, cols)
    return top_s, top_c


def _row_pointers(rc, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(row pointers, columns) of (rows, cols) index pairs, as CSR of `n_rows` rows."""
    rows, cols = (t.cpu().numpy().astype(np.int64, copy=False) for t in rc)
    if len(rows) and (np.diff(rows) < 0).any():
        order = np.argsort(rows, kind="stable")
        rows, cols = rows[order], cols[order]
    ptr = np.zeros(n_rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr, cols


def masked_top_k_cpu(scores: torch.Tensor, exclude_rc, k: int, truth_rc=None
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`top_k(mask_scores(scores, exclude_rc), k)` for CPU scores, in one compiled pass per row
    (`harness.ranking_cpu`, rows in parallel on as many numba threads as torch's intra-op
    setting): the same values and columns, to the bit; with `hits(…, truth_rc, …)` as the third
    result (all False without `truth_rc`)."""
    import numba

    from harness.kernels import numba_threads
    from harness.ranking_cpu import masked_top_k
    s = scores if scores.dtype in (torch.float32, torch.float64) else scores.double()
    n_rows, n_cols = s.shape
    k = min(k, n_cols)
    top_s = torch.empty((n_rows, k), dtype=s.dtype)
    top_c = torch.empty((n_rows, k), dtype=torch.int64)
    hit = torch.zeros((n_rows, k), dtype=torch.bool)
    if k == 0 or n_rows == 0:
        return top_s, top_c, hit
    ex_ptr, ex_cols = _row_pointers(exclude_rc, n_rows)
    empty = (torch.zeros(0, dtype=torch.int64),) * 2
    tr_ptr, tr_cols = _row_pointers(truth_rc if truth_rc is not None else empty, n_rows)
    has_nan = np.zeros(n_rows, np.bool_)
    with numba_threads():
        marks = np.zeros((numba.config.NUMBA_NUM_THREADS, n_cols), np.bool_)
        masked_top_k(s.numpy(), ex_ptr, ex_cols, tr_ptr, tr_cols, torch.finfo(s.dtype).min,
                     top_s.numpy(), top_c.numpy(), hit.numpy(), has_nan, marks)
    return top_s, top_c, hit


def hits(top_c: torch.Tensor, top_s: torch.Tensor, truth_rc, n_cols: int) -> torch.Tensor:
    """(B, K) booleans: the ranked column is relevant (a pair of `truth_rc`) and not excluded
    (-inf score). Computed on the CPU from the (B, K) top-k lists: no (B, C) relevance matrix."""
    keys = (truth_rc[0].cpu().numpy().astype(np.int64) * n_cols
            + truth_rc[1].cpu().numpy().astype(np.int64))
    tc = top_c.cpu().numpy()
    flat = np.arange(len(tc), dtype=np.int64)[:, None] * n_cols + tc
    rel = torch.from_numpy(np.isin(flat, keys))
    return rel & ~torch.isneginf(top_s.cpu())


def has_nan(top_s: torch.Tensor) -> bool:
    """Whether a row's ranked values hold a NaN. `torch.topk` orders NaN above every number, so
    a row with a NaN among its ranked (not excluded) candidates has one in its top-k."""
    return bool(torch.isnan(top_s).any())

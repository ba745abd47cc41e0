"""Item-based k-nearest-neighbour recommender with shrunk cosine similarity."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from baselines.itemknn_cpu import cooccurrence_into, history_scores_into
from harness.kernels import balanced_bounds, numba_threads
from harness.recommender import Recommender, all_items


def knn_similarity(x: sp.csr_matrix, k: int, shrink: float,
                   block_elems: int = 1 << 24) -> sp.csr_matrix:
    """Sparse n_items x n_items matrix S with S[i, j] = sim(i, j) for the k items i most similar
    to target item j (i != j, sim > 0), where
    sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i| |U_j|) + shrink) on the binary users x items `x`.
    Co-occurrences are counted by a compiled kernel (target items in parallel on numba threads)
    for blocks of target items at a time, so peak dense memory is about `block_elems` floats
    rather than n_items²."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.sum_duplicates()
    x.data[:] = 1.0
    n_items = x.shape[1]
    xt = x.T.tocsr()  # items x users
    norms = np.sqrt(np.asarray(x.sum(0)).ravel()).astype(np.float32)
    k = max(0, min(int(k), n_items - 1))
    rows, cols, vals = [], [], []
    block = max(1, block_elems // max(1, n_items))
    work = np.concatenate([[0], np.cumsum(xt @ np.diff(x.indptr))])  # co-occurrence increments
    work += np.arange(n_items + 1)
    with numba_threads():
        for start in range(0, n_items, block):
            stop = min(n_items, start + block)
            co = torch.zeros((stop - start, n_items))  # targets x items
            cooccurrence_into(start + balanced_bounds(work[start:stop + 1], 64), xt.indptr,
                              xt.indices, x.indptr, x.indices, start, co.numpy())
            sim = co.div_(torch.from_numpy(norms[start:stop])[:, None]
                          * torch.from_numpy(norms)[None] + float(shrink) + 1e-12)
            targets = torch.arange(start, stop)
            sim[targets - start, targets] = 0.0
            if k == 0:
                continue
            top_v, top_i = torch.topk(sim, k, dim=1)
            keep = top_v > 0
            rows.append(top_i[keep].numpy())
            cols.append(targets[:, None].expand(-1, k)[keep].numpy())
            vals.append(top_v[keep].numpy())
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return sp.csr_matrix((cat(vals, np.float32), (cat(rows, np.int64), cat(cols, np.int64))),
                         shape=(n_items, n_items))


class ItemKNN(Recommender):
    """score(u, j) = sum over items i in u's training history of S[i, j], where S keeps, for each
    target item j, its `k` nearest neighbours by sim(i, j) = |U_i ∩ U_j| / (sqrt(|U_i||U_j|) +
    shrink). Users with no training history get train popularity scores instead; items never
    seen in training score 0."""

    param_ranges = {"k": "[1, inf)", "shrink": "[0, inf)"}

    def __init__(self, k: int = 200, shrink: float = 10.0, seed: int = 0):
        super().__init__(seed)
        self.k, self.shrink = k, shrink
        self.history: sp.csr_matrix | None = None
        self.sim: sp.csc_matrix | None = None
        self.sim_rows: sp.csr_matrix | None = None

    def fit(self, split, dataset) -> None:
        self.history = split.train.csr()
        self.sim = knn_similarity(self.history, self.k, self.shrink).tocsc()
        self.sim_rows = self.sim.tocsr()  # full ranking: every column, no per-batch slicing
        self.popularity = torch.from_numpy(np.asarray(self.history.sum(0), np.float32).ravel())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        u = users.long().numpy()
        idx = items.long().numpy()
        hist = self.history[u]
        if all_items(items, self.sim.shape[1]):  # full ranking: a compiled pass over the rows
            out = torch.zeros((len(u), self.sim.shape[1]))
            s = self.sim_rows
            with numba_threads():
                history_scores_into(hist.indptr, hist.indices, s.indptr, s.indices, s.data,
                                    out.numpy())
        else:
            out = torch.from_numpy((hist @ self.sim[:, idx]).toarray().astype(np.float32))
        cold = torch.from_numpy(np.diff(hist.indptr) == 0)
        if cold.any():
            out[cold] = self.popularity[torch.from_numpy(idx)]
        return out

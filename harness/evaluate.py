"""From scores to per-user metrics: mask history, top-k, hits, metrics; chunked over users."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from harness.candidates import Candidates
from harness.metrics import METRICS


def _rows_to_columns(m: sp.csr_matrix, rows: np.ndarray, col_of: torch.Tensor):
    """(row positions, column positions) of a csr's entries for `rows`, mapped by `col_of`
    (entries whose item is not a candidate column are dropped)."""
    sub = m[rows]
    r = torch.from_numpy(np.repeat(np.arange(len(rows)), np.diff(sub.indptr)))
    c = col_of[torch.from_numpy(sub.indices.astype(np.int64))]
    keep = c >= 0
    return r[keep], c[keep]


def metrics_from_scores(scores: torch.Tensor, truth_rc, exclude_rc, n_relevant: torch.Tensor,
                        ks: list[int], metrics: list[str]):
    """Per-user metric values for one (B, C) score matrix. `truth_rc`/`exclude_rc` are (rows, cols)
    index pairs. Returns ({(metric, k): (B,) float64}, top-K column indices, top-K scores)."""
    if torch.isnan(scores).any():
        raise ValueError("recommender returned NaN scores")
    s = scores.to(torch.float32).clone()
    s[torch.isneginf(s)] = torch.finfo(torch.float32).min  # below real scores, above excluded
    s[exclude_rc[0], exclude_rc[1]] = -torch.inf
    kmax = max(ks)
    top_s, top_c = torch.topk(s, min(kmax, s.shape[1]), dim=1)
    rel = torch.zeros(s.shape, dtype=torch.bool)
    rel[truth_rc[0], truth_rc[1]] = True
    hits = rel.gather(1, top_c) & ~torch.isneginf(top_s)
    if hits.shape[1] < kmax:
        hits = torch.nn.functional.pad(hits, (0, kmax - hits.shape[1]))
    values = {(m, k): METRICS[m](n_relevant, hits, k).numpy() for m in metrics for k in ks}
    return values, top_c, top_s


@dataclass
class Evaluation:
    """Per-user metric values (aligned with `users`) and, when kept, the top-K lists."""

    users: np.ndarray
    values: dict
    top_items: np.ndarray | None = None
    top_scores: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def evaluate(score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], cand: Candidates,
             ks: list[int], metrics: list[str], batch_size: int = 256, keep_top: bool = False,
             progress=None) -> Evaluation:
    """Score candidates batch by batch and compute metrics. `score_fn(users, items)` -> (B, C)."""
    n_items = cand.truth.shape[1]
    col_of = torch.full((n_items,), -1, dtype=torch.long)
    col_of[cand.items] = torch.arange(len(cand.items))
    n_rel_all = np.diff(cand.truth.indptr)
    parts, tops, top_scores = [], [], []
    for start in range(0, len(cand.users), batch_size):
        rows = cand.users[start:start + batch_size]
        scores = score_fn(torch.from_numpy(rows.astype(np.int64)), cand.items)
        if tuple(scores.shape) != (len(rows), len(cand.items)):
            raise ValueError(f"score() returned shape {tuple(scores.shape)}, expected "
                             f"{(len(rows), len(cand.items))}")
        vals, top_c, top_s = metrics_from_scores(
            scores.detach().cpu(), _rows_to_columns(cand.truth, rows, col_of),
            _rows_to_columns(cand.exclude, rows, col_of),
            torch.from_numpy(n_rel_all[rows]), ks, metrics)
        parts.append(vals)
        if keep_top:
            tops.append(cand.items[top_c].numpy())
            top_scores.append(top_s.numpy())
        if progress is not None:
            progress.update(len(rows))
    values = {key: np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)
              for key in ((m, k) for m in metrics for k in ks)}
    return Evaluation(cand.users, values, np.concatenate(tops) if tops else None,
                      np.concatenate(top_scores) if top_scores else None)

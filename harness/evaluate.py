"""From scores to per-user metrics: mask history, top-k, hits, metrics; chunked over users."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from harness import ranking
from harness.candidates import Candidates
from harness.metrics import METRICS
from harness.ranking import mask_scores, top_k  # noqa: F401 - the evaluation's kernels


def rows_to_columns(m: sp.csr_matrix, rows: np.ndarray, col_of):
    """(row positions, column positions) of a csr's entries for `rows`, mapped by `col_of`
    (numpy array or CPU tensor; entries whose item is not a candidate column are dropped)."""
    col_of = col_of.numpy() if isinstance(col_of, torch.Tensor) else np.asarray(col_of)
    return ranking.csr_pairs(m, rows, col_of)


def as_scores(out, shape: tuple[int, int], what: str = "score()") -> torch.Tensor:
    """A model's scores as a tensor on the device they came from: tensors as they are, array-likes
    (numpy arrays, nested lists) through `torch.as_tensor`, integer/boolean ones as float64;
    anything else, or another shape than `shape` = (len(users), len(items)), is an error."""
    expected = f"a {shape} = (len(users), len(items)) float tensor or array"
    if not isinstance(out, torch.Tensor):
        try:
            out = torch.as_tensor(out)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{what} returned {type(out).__name__}, expected {expected}"
                            ) from exc
    if out.is_complex():
        raise TypeError(f"{what} returned a {out.dtype} array, expected {expected}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{what} returned shape {tuple(out.shape)}, expected {tuple(shape)}")
    return out if out.is_floating_point() else out.double()


def score_columns(score_fn, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    """`score_fn(users, items)` as a (len(users), len(items)) tensor (see `as_scores`)."""
    return as_scores(score_fn(users, items), (len(users), len(items)))


def _masked_top(scores: torch.Tensor, exclude_rc, k: int, work: dict | None = None,
                truth_rc=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`mask_scores` then `top_k` (and `ranking.hits` when `truth_rc` is given), on the scores'
    own device; on the CPU in one compiled pass (`ranking.masked_top_k_cpu`)."""
    if scores.device.type == "cpu":
        return ranking.masked_top_k_cpu(scores, exclude_rc, k, truth_rc)
    s = mask_scores(scores, _on(exclude_rc, scores.device), work)
    top_s, top_c = top_k(s, min(k, s.shape[1]))
    hit = None if truth_rc is None else ranking.hits(top_c, top_s, truth_rc, s.shape[1])
    return top_s, top_c, hit


def rank_top(scores: torch.Tensor, exclude_rc, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask and top-k on the scores' own device (CUDA scores stay there); returns the top-k
    (scores, columns) on the CPU. `exclude_rc` index pairs may live on any device."""
    top_s, top_c, _ = _masked_top(scores, exclude_rc, k)
    return top_s.cpu(), top_c.cpu()


def _on(rc, device) -> tuple[torch.Tensor, torch.Tensor]:
    return rc[0].to(device), rc[1].to(device)


def ranked_hits(scores: torch.Tensor, truth_rc, exclude_rc, kmax: int,
                work: dict | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask, top-`kmax` and hits of one (B, C) score matrix on the scores' device; returns
    (hits (B, kmax) bool, top-K columns, top-K scores), all on the CPU (hits padded with False
    where C < kmax). A NaN score among a user's ranked (not excluded) candidates is an error
    (`torch.topk` ranks NaN first, so it is in the top-k)."""
    top_s, top_c, hit = _masked_top(scores, exclude_rc, kmax, work, truth_rc)
    if ranking.has_nan(top_s):
        raise ValueError("recommender returned NaN scores")
    top_s, top_c, hit = top_s.cpu(), top_c.cpu(), hit.cpu()
    if hit.shape[1] < kmax:
        hit = torch.nn.functional.pad(hit, (0, kmax - hit.shape[1]))
    return hit, top_c, top_s


def metric_values(n_relevant: torch.Tensor, hits: torch.Tensor, ks: list[int],
                  metrics: list[str]) -> dict:
    """{(metric, k): (B,) float64} from the users' relevant counts and ranked hits."""
    return {(m, k): METRICS[m](n_relevant, hits, k).numpy() for m in metrics for k in ks}


def metrics_from_scores(scores: torch.Tensor, truth_rc, exclude_rc, n_relevant: torch.Tensor,
                        ks: list[int], metrics: list[str], work: dict | None = None):
    """Per-user metric values for one (B, C) score matrix. `truth_rc`/`exclude_rc` are (rows, cols)
    index pairs. Masking, top-k and hits run on the scores' device (`ranked_hits`); only the
    (B, K) top-k and hits move to the CPU, where the metrics are computed. Returns
    ({(metric, k): (B,) float64}, top-K column indices, top-K scores), both on the CPU."""
    hit, top_c, top_s = ranked_hits(scores, truth_rc, exclude_rc, max(ks), work)
    return metric_values(n_relevant, hit, ks, metrics), top_c, top_s


@dataclass
class Evaluation:
    """Per-user metric values (aligned with `users`) and, when kept, the top-K lists."""

    users: np.ndarray
    values: dict
    top_items: np.ndarray | None = None
    top_scores: np.ndarray | None = None
    pointwise: dict | None = None  # per-user 'auc' (+ 'logloss'), NaN where undefined
    global_auc: float | None = None  # AUC over every (user, candidate) pair of the lists
    auc_pairs: object | None = None  # the GlobalAUC accumulator behind it (merged by shards)


def _pointwise_batch(scores: torch.Tensor, truth_rc, excl_rc, calibrated: bool, acc) -> dict:
    """Pointwise values of one batch of candidate lists (valid = not padding, not history)."""
    from harness.pointwise import pointwise_values
    s = scores.detach().cpu()
    rel = torch.zeros(s.shape, dtype=torch.bool)
    rel[truth_rc[0].cpu(), truth_rc[1].cpu()] = True
    valid = torch.ones(s.shape, dtype=torch.bool)
    valid[excl_rc[0].cpu(), excl_rc[1].cpu()] = False
    acc.add(s, rel, valid)
    return pointwise_values(s, rel, valid, calibrated)


def score_lists(model, users: torch.Tensor, lists: torch.Tensor,
                to_cpu: bool = True) -> torch.Tensor:
    """(B, C) scores for per-user candidate lists (-1 = padding, scored -inf). Uses the model's
    `score_candidates(users, lists)` when it declares one, else `score` on the batch's union.
    Padding reaches `score_candidates` as item 0, or as -1 when the model declares
    `list_padding = True` (it may then skip those entries; their scores are ignored).
    `to_cpu=False` leaves them on the device the model returned them on."""
    valid = lists >= 0
    fn = getattr(model, "score_candidates", None)
    if fn is not None:
        given = lists if getattr(model, "list_padding", False) is True else lists.clamp(min=0)
        out = as_scores(fn(users, given), tuple(lists.shape), "score_candidates()")
    else:
        uniq, inv = torch.unique(lists.clamp(min=0), return_inverse=True)
        out = score_columns(model.score, users, uniq)
        out = out.gather(1, inv.to(out.device))
    out = out.detach()
    if to_cpu:
        out = out.cpu()
    return out.masked_fill(~valid.to(out.device), -torch.inf)


def _list_pairs(lists: np.ndarray, truth: sp.csr_matrix, rows: np.ndarray):
    """(row, col) pairs of relevant entries and of padding, for per-user candidate lists."""
    t = truth[rows]
    keys = np.repeat(np.arange(len(rows)), np.diff(t.indptr)) * truth.shape[1] + t.indices
    flat = np.arange(len(rows))[:, None] * truth.shape[1] + np.maximum(lists, 0)
    rel = np.isin(flat, keys) & (lists >= 0)
    r, c = np.nonzero(rel)
    pr, pc = np.nonzero(lists < 0)
    return ((torch.from_numpy(r), torch.from_numpy(c)),
            (torch.from_numpy(pr), torch.from_numpy(pc)))


def evaluate(score_fn, cand: Candidates, ks: list[int], metrics: list[str],
             batch_size: int = 256, keep_top: bool = False, progress=None,
             model=None, pointwise: bool = False) -> Evaluation:
    """Score candidates batch by batch and compute metrics. `score_fn(users, items)` -> (B, C)
    for shared columns (full); per-user lists (sampled, rerank) go through `model` (or a
    score_fn-only wrapper) and `score_lists`. `pointwise`: also per-user AUC (and log loss for
    models declaring `calibrated = True`) and the global AUC, for per-user candidate lists."""
    from harness.pointwise import GlobalAUC
    pointwise = pointwise and cand.lists is not None
    calibrated = bool(getattr(model, "calibrated", False))
    auc_acc, pw_parts = GlobalAUC(), []
    n_items = cand.truth.shape[1]
    n_rel_all = np.diff(cand.truth.indptr)
    if cand.lists is None:
        col_of = np.full(n_items, -1, dtype=np.int64)
        col_of[cand.items.numpy()] = np.arange(len(cand.items))
    scorer = model if model is not None else _FnModel(score_fn)
    # outputs for every user, allocated once: per-batch arrays kept alive between the batches'
    # large score matrices would fragment the heap (glibc then grows it by about one score
    # matrix per batch instead of reusing the freed one)
    n_users, kmax, work = len(cand.users), max(ks), {}
    hits_all = torch.zeros((n_users, kmax), dtype=torch.bool)
    tops = top_scores = None
    for start in range(0, n_users, batch_size):
        rows = cand.users[start:start + batch_size]
        stop = start + len(rows)
        users = torch.from_numpy(rows.astype(np.int64))
        if cand.lists is None:
            scores = score_columns(score_fn, users, cand.items)
            truth_rc = rows_to_columns(cand.truth, rows, col_of)
            excl_rc = rows_to_columns(cand.exclude, rows, col_of)
            columns = cand.items.expand(len(rows), -1)
        else:
            lists = cand.lists[start:start + batch_size]
            scores = score_lists(scorer, users, torch.from_numpy(lists), to_cpu=False)
            truth_rc, excl_rc = _list_pairs(lists, cand.truth, rows)
            columns = torch.from_numpy(lists)
        hit, top_c, top_s = ranked_hits(scores.detach(), truth_rc, excl_rc, kmax, work)
        hits_all[start:stop] = hit
        if pointwise:
            pw_parts.append(_pointwise_batch(scores, truth_rc, excl_rc, calibrated, auc_acc))
        if keep_top:
            if tops is None:
                tops = np.empty((n_users, top_c.shape[1]), np.int64)
                top_scores = np.empty((n_users, top_c.shape[1]), top_s.numpy().dtype)
            tops[start:stop] = columns.gather(1, top_c).numpy()
            top_scores[start:stop] = top_s.numpy()
        if progress is not None:
            progress.update(len(rows))
        del scores, hit, top_c, top_s, truth_rc, excl_rc  # freed before the next batch
    # metrics once over every user's hits: per-user values, the same as batch by batch
    values = metric_values(torch.from_numpy(n_rel_all[cand.users]), hits_all, ks, metrics)
    pw = ({name: np.concatenate([p[name] for p in pw_parts]) for name in pw_parts[0]}
          if pw_parts else None)
    return Evaluation(cand.users, values, tops, top_scores, pw,
                      auc_acc.value() if pointwise else None, auc_acc if pointwise else None)


class _FnModel:
    """Adapts a bare score function to the model interface used for candidate lists."""

    def __init__(self, fn):
        self.score = fn

"""Pointwise metrics over per-user candidate lists: per-user AUC (and GAUC, its user mean),
global AUC over all (user, candidate) pairs, and log loss for calibrated models.

Inputs are one batch of users: `scores` (B, C) (-inf at padding), `rel` (B, C) bool (the
candidate is a held-out positive), `valid` (B, C) bool (a real candidate: not padding, not
excluded history). Only valid entries count. A model's own -inf on a valid entry is the lowest
possible score (ties with other -inf entries), as in ranking.

AUC with ties counted 1/2 (Mann-Whitney), over the P positive and N negative valid entries:

    AUC = (1 / (P N)) Σ_{p ∈ pos} Σ_{n ∈ neg} ([s_p > s_n] + ½ [s_p = s_n])
        = (Σ_{p ∈ pos} r_p - P (P + 1) / 2) / (P N)

with r the 1-based mid-rank (ties get the average of their ranks) of a score among the valid
entries, ascending. Per user it is undefined (NaN) when P = 0 or N = 0.
"""

from __future__ import annotations

import numpy as np
import torch


def _prepare(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """float64 scores, ±inf on valid entries clamped to the finite range, +inf on invalid ones
    (they sort after every valid entry and are never counted as smaller)."""
    s = scores.detach().cpu().double().clone()
    fin = torch.finfo(torch.float64)
    s = s.clamp(min=fin.min, max=fin.max)
    if torch.isnan(s[valid]).any():
        raise ValueError("scores contain NaN on valid candidates")
    return s.masked_fill(~valid, torch.inf)


def midranks(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, C) 1-based ascending mid-ranks of each valid score within its row (ties share the
    average rank); invalid entries get 0."""
    s = _prepare(scores, valid)
    srt = torch.sort(s, dim=1).values.contiguous()
    below = torch.searchsorted(srt, s.contiguous(), right=False)
    upto = torch.searchsorted(srt, s.contiguous(), right=True)
    return ((below + upto + 1).double() / 2.0).masked_fill(~valid, 0.0)


def _auc_from_ranks(ranks: torch.Tensor, rel: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    pos = (rel & valid).double()
    p = pos.sum(-1)
    n = valid.double().sum(-1) - p
    out = ((ranks * pos).sum(-1) - p * (p + 1) / 2.0) / (p * n)
    return torch.where((p > 0) & (n > 0), out, torch.full_like(out, float("nan")))


def log_loss_per_user(probs: torch.Tensor, rel: torch.Tensor,
                      valid: torch.Tensor) -> torch.Tensor:
    """LL_u = -(1 / n_u) Σ_{valid c} [y_c log p_c + (1 - y_c) log(1 - p_c)], with p clipped to
    [ε, 1 - ε] (ε = float64 machine epsilon, as scikit-learn does); NaN for users with no valid
    candidate. `probs` must lie in [0, 1] on valid entries."""
    p = probs.detach().cpu().double()
    pv = p[valid]
    if len(pv) and (torch.isnan(pv).any() or pv.min() < 0.0 or pv.max() > 1.0):
        raise ValueError("a calibrated model must return probabilities in [0, 1]")
    eps = torch.finfo(torch.float64).eps
    p = p.clamp(eps, 1.0 - eps)
    y = rel.double()
    terms = -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p))
    terms = terms.masked_fill(~valid, 0.0)
    n = valid.double().sum(-1)
    return torch.where(n > 0, terms.sum(-1) / n.clamp(min=1.0),
                       torch.full_like(n, float("nan")))


def pointwise_values(scores: torch.Tensor, rel: torch.Tensor, valid: torch.Tensor,
                     calibrated: bool) -> dict[str, np.ndarray]:
    """Per-user values for one batch: {'auc': (B,)} and, when the model declares calibrated
    probabilities, {'logloss': (B,)}. NaN where undefined (AUC: no positive or no negative
    valid candidate; log loss: no valid candidate). GAUC is the mean of 'auc' over the users
    where it is defined (see `gauc`)."""
    rel, valid = rel.bool().cpu(), valid.bool().cpu()
    out = {"auc": _auc_from_ranks(midranks(scores, valid), rel, valid).numpy()}
    if calibrated:
        out["logloss"] = log_loss_per_user(scores, rel, valid).numpy()
    return out


def gauc(auc: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """GAUC = Σ_u w_u AUC_u / Σ_u w_u over users with a defined AUC (w_u = 1: the user-weighted
    mean; pass e.g. candidate counts for an impression-weighted GAUC). Returns
    {'gauc', 'n_users' (used), 'n_excluded' (users without a positive or a negative)}."""
    auc = np.asarray(auc, np.float64)
    ok = ~np.isnan(auc)
    w = np.ones_like(auc) if weights is None else np.asarray(weights, np.float64)
    value = float((w[ok] * auc[ok]).sum() / w[ok].sum()) if ok.any() else float("nan")
    return {"gauc": value, "n_users": int(ok.sum()), "n_excluded": int((~ok).sum())}


def global_auc(scores: torch.Tensor, rel: torch.Tensor, valid: torch.Tensor) -> float:
    """AUC over all valid (user, candidate) pairs of the batch pooled together (one ranking of
    every pair; NaN when there is no positive or no negative)."""
    acc = GlobalAUC()
    acc.add(scores, rel, valid)
    return acc.value()


class GlobalAUC:
    """Global AUC accumulated over user batches: `add(scores, rel, valid)` per batch, then
    `value()`. Keeps only the valid entries' scores and labels (float64 + bool)."""

    def __init__(self):
        self.scores: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []

    def add(self, scores: torch.Tensor, rel: torch.Tensor, valid: torch.Tensor) -> None:
        valid = valid.bool().cpu()
        s = _prepare(scores, valid)
        self.scores.append(s[valid])
        self.labels.append(rel.bool().cpu()[valid])

    def extend(self, other: "GlobalAUC") -> None:
        """Add the pairs another accumulator kept (e.g. another user range of the same cell)."""
        self.scores += other.scores
        self.labels += other.labels

    def value(self) -> float:
        if not self.scores:
            return float("nan")
        s = torch.cat(self.scores)[None]
        y = torch.cat(self.labels)[None]
        ones = torch.ones_like(y)
        return float(_auc_from_ranks(midranks(s, ones), y, ones)[0])

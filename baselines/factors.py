"""Scoring shared by the latent-factor baselines (ALS, BPR)."""

from __future__ import annotations

import torch


def factor_scores(user_factors: torch.Tensor, item_factors: torch.Tensor, cold: torch.Tensor,
                  popularity: torch.Tensor, users: torch.Tensor,
                  items: torch.Tensor) -> torch.Tensor:
    """score(u, i) = x_uᵀ y_i; users flagged `cold` (no training history) get popularity[i]."""
    u, i = users.long(), items.long()
    out = user_factors[u] @ item_factors[i].T
    c = cold[u]
    if c.any():
        out[c] = popularity[i]
    return out

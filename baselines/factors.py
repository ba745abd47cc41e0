"""Shared by the latent-factor baselines (ALS, BPR): scoring and the training device."""

from __future__ import annotations

from contextlib import contextmanager

import torch

from harness.errors import UserError
from harness.recommender import all_items


def pick_device(choice: str, model: str, options=None) -> str:
    """"cpu" or "cuda" for `choice` ("auto": CUDA when available); a device set in the harness's
    fit options (`FitOptions.device`) overrides "auto"."""
    wanted = getattr(options, "device", None) if choice == "auto" else choice
    if wanted is None or wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind = str(wanted).split(":", 1)[0]
    if kind not in ("cpu", "cuda"):
        raise UserError(f"recommender '{model}': device must be 'auto', 'cpu' or 'cuda', "
                        f"got {wanted!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise UserError(f"recommender '{model}': device {wanted!r} requested but CUDA is not "
                        "available")
    return str(wanted)


@contextmanager
def intra_op_threads(n: int | None):
    """torch's intra-op thread count set to `n` inside the block (None: unchanged), restored
    after. Small per-step tensors gain little from intra-op threads, and each parallel op ends
    in a barrier that costs a scheduler time slice when the CPU is oversubscribed."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield before
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def factor_scores(user_factors: torch.Tensor, item_factors: torch.Tensor, cold: torch.Tensor,
                  popularity: torch.Tensor, users: torch.Tensor,
                  items: torch.Tensor) -> torch.Tensor:
    """score(u, i) = x_uᵀ y_i; users flagged `cold` (no training history) get popularity[i]."""
    u, i = users.long(), items.long()
    rows = user_factors.index_select(0, u.to(user_factors.device))
    cols = (item_factors if all_items(items, len(item_factors))
            else item_factors.index_select(0, i.to(item_factors.device)))
    out = rows @ cols.T
    c = cold.index_select(0, u.to(cold.device))
    if c.any():
        out[c] = popularity.index_select(0, i.to(popularity.device))
    return out

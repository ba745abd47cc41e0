"""Candidate sets: which items each evaluated user ranks, frozen per (split, target part)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from harness.splits.base import Split


@dataclass(frozen=True)
class Candidates:
    """`items`: the item ids scored (columns); `exclude`: users x n_items csr of items a user must
    not be shown (history); `truth`: users x n_items csr of relevant items; `users`: evaluated."""

    protocol: str
    users: np.ndarray
    items: torch.Tensor
    exclude: sp.csr_matrix
    truth: sp.csr_matrix


def full_candidates(split: Split, target: str = "test") -> Candidates:
    """`full`: every item (or the split's eval items) not in the user's train history, and not in
    valid either when the target is test. Evaluated users: those with >= 1 target interaction."""
    ds = split.dataset
    history = split.train.csr()
    if target == "test":
        history = (history + split.valid.csr()).tocsr()
    truth = split.part(target).csr()
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    eval_items = split.eval_items.get(target)
    items = torch.arange(ds.n_items) if eval_items is None else torch.as_tensor(eval_items).long()
    return Candidates("full", users, items, history.tocsr(), truth)

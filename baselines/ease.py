"""EASE^R: embarrassingly shallow autoencoder (Steck 2019), closed form."""

from __future__ import annotations

import numpy as np
import torch

from harness.errors import UserError
from harness.recommender import Recommender


def ease_weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B = I - P / diag(P) with P = (G + l2 I)^-1 and G = XᵀX, i.e. B[i, j] = -P[i, j] / P[j, j]
    off the diagonal and B[j, j] = 0."""
    g = np.array(gram, dtype=np.float64)
    g[np.diag_indices_from(g)] += l2
    p = np.linalg.inv(g)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices_from(b)] = 0.0
    return b


class EASE(Recommender):
    """score(u, ·) = x_u B with B = I - P/diag(P), P = (XᵀX + l2 I)^-1 on the binary training
    matrix X. Needs a dense n_items x n_items inverse: more than `max_items` items is an error.
    Users with no training history get train popularity scores instead."""

    param_ranges = {"l2": "(0, inf)", "max_items": "[1, inf)"}

    def __init__(self, l2: float = 300.0, max_items: int = 20000, seed: int = 0):
        super().__init__(seed)
        self.l2, self.max_items = l2, max_items

    def fit(self, split, dataset) -> None:
        x = split.train.csr()
        n_items = x.shape[1]
        if n_items > self.max_items:
            raise UserError(f"EASE needs a dense {n_items} x {n_items} inverse "
                            f"(~{n_items ** 2 * 8 / 2 ** 30:.1f} GiB in float64), more than "
                            f"max_items={self.max_items}; raise max_items or use itemknn/als")
        gram = (x.T @ x).toarray()
        self.weights = torch.from_numpy(ease_weights(gram, float(self.l2)).astype(np.float32))
        self.history = x
        self.popularity = torch.from_numpy(np.asarray(x.sum(0), np.float32).ravel())

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        hist = self.history[users.long().numpy()]
        idx = items.long()
        out = torch.from_numpy(hist.toarray()) @ self.weights[:, idx]
        cold = torch.from_numpy(np.diff(hist.indptr) == 0)
        if cold.any():
            out[cold] = self.popularity[idx]
        return out

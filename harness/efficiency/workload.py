"""Requests built from a cell's candidates, and serving one: what the efficiency pass times.

A request is a set of users (one user for single_stream and server, a batch for offline) with
their frozen candidates. Serving it = the model's scores (`score` on the shared columns for
`full`; `score_candidates`, or `score` on the batch's union of lists, for `sampled` / `rerank`:
exactly the accuracy pass's path), moved to the CPU, the user's history (and list padding)
masked to -inf, and the top-k items selected with the harness's tie-stable `top_k`. Building the
request (user ids, candidate tensors, the history mask's indices) is not timed: it stands for
the request arriving; metrics are not computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from harness.candidates import Candidates
from harness.evaluate import mask_scores, rows_to_columns, score_columns, score_lists, top_k


@dataclass(frozen=True)
class Request:
    users: torch.Tensor
    items: torch.Tensor | None
    lists: torch.Tensor | None
    exclude: tuple[torch.Tensor, torch.Tensor]
    n_candidates: int


class Workload:
    """Prepares requests for rows of `cand.users` and serves them with top-`k`."""

    def __init__(self, cand: Candidates, k: int):
        self.cand, self.k = cand, int(k)
        if cand.lists is None:
            self.col_of = torch.full((cand.truth.shape[1],), -1, dtype=torch.long)
            self.col_of[cand.items] = torch.arange(len(cand.items))

    @property
    def n_users(self) -> int:
        return len(self.cand.users)

    def prepare(self, positions: np.ndarray) -> Request:
        """The request for the candidate users at `positions` (indices into cand.users)."""
        positions = np.asarray(positions, dtype=np.int64)
        rows = self.cand.users[positions]
        users = torch.from_numpy(rows.astype(np.int64))
        if self.cand.lists is None:
            excl = rows_to_columns(self.cand.exclude, rows, self.col_of)
            return Request(users, self.cand.items, None, excl, len(rows) * len(self.cand.items))
        lists = self.cand.lists[positions]
        pr, pc = np.nonzero(lists < 0)
        return Request(users, None, torch.from_numpy(lists),
                       (torch.from_numpy(pr), torch.from_numpy(pc)), int((lists >= 0).sum()))

    def serve(self, model, req: Request) -> torch.Tensor:
        """Score, mask, top-k; returns the (B, k) top candidate columns."""
        if req.lists is None:
            s = score_columns(model.score, req.users, req.items)
        else:
            s = score_lists(model, req.users, req.lists)
        s = mask_scores(s.detach().cpu(), req.exclude)
        return top_k(s, min(self.k, s.shape[1]))[1]

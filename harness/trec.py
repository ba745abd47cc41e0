"""TREC-format run and qrels files (read by trec_eval, ranx and pytrec_eval)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from harness.io import write_text


def write_qrels(path: Path, truth: sp.csr_matrix, users: np.ndarray, user_ids, item_ids) -> None:
    """`qid 0 docid relevance` per relevant (user, item)."""
    lines = []
    for u in users:
        for i in truth.indices[truth.indptr[u]:truth.indptr[u + 1]]:
            lines.append(f"{user_ids[u]} 0 {item_ids[i]} 1")
    write_text(path, "\n".join(lines) + "\n")


def write_run(path: Path, users: np.ndarray, top_items: np.ndarray, top_scores: np.ndarray,
              user_ids, item_ids, tag: str) -> None:
    """`qid Q0 docid rank score tag` for each user's ranked top-K (excluded items dropped).

    The score column is K + 1 - rank (strictly decreasing), not the model's score: tools re-sort
    by score, and model ties would otherwise be broken differently than the harness broke them,
    so the file reproduces the harness's metrics exactly."""
    lines = []
    for u, items, scores in zip(users, top_items, top_scores):
        k = len(items)
        for rank, (i, s) in enumerate(zip(items, scores), start=1):
            if np.isneginf(s):
                break
            lines.append(f"{user_ids[u]} Q0 {item_ids[i]} {rank} {k + 1 - rank} {tag}")
    write_text(path, "\n".join(lines) + "\n")

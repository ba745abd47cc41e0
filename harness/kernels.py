"""Shared by the numba kernels (harness/ranking_cpu.py, baselines/*_cpu.py)."""

from __future__ import annotations

from contextlib import contextmanager

import numba
import numpy as np
import torch

# Reassociation lets LLVM vectorize the kernels' f-long dot products and updates; results are
# deterministic on a given instruction set, like BLAS's.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}


def balanced_bounds(cum_work: np.ndarray, n_blocks: int) -> np.ndarray:
    """Row bounds 0 = r_0 < r_1 < … < r_m = n (m ≤ n_blocks) cutting n rows into blocks of
    about equal work, where cum_work[r] is the work of the rows before r (length n + 1)."""
    n = len(cum_work) - 1
    cuts = np.searchsorted(cum_work, np.linspace(cum_work[0], cum_work[-1], n_blocks + 1)[1:-1])
    return np.unique(np.concatenate([[0], cuts, [n]])).astype(np.int64)


@contextmanager
def numba_threads(n: int | None = None):
    """numba's thread count for the calling thread set to `n` (default: torch's intra-op
    setting, which the harness sets per cell; at most numba's pool size), restored afterwards."""
    before = numba.get_num_threads()
    n = torch.get_num_threads() if n is None else n
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(before)

"""Process-wide thread settings (torch intra-op threads, BLAS/OpenMP pools): recorded and restored.

Libraries change these behind the caller's back (implicit sets BLAS to one thread, LensKit
lowers torch threads); one cell must not change every later cell. `contained()` snapshots the
settings, runs the block, and restores whatever changed; the snapshot goes into the manifest.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def snapshot() -> dict:
    """{'torch': intra-op threads, '<user_api>:<internal_api>:<library path>': threads, ...}
    (keyed by the library's file name: numpy's and scipy's OpenBLAS share a prefix)."""
    import torch
    out = {"torch": int(torch.get_num_threads())}
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            out[f"{pool['user_api']}:{pool['internal_api']}:{os.path.basename(pool['filepath'])}"] = int(
                pool["num_threads"])
    except ImportError:  # threadpoolctl missing: torch threads only
        pass
    return out


def restore(before: dict) -> list[str]:
    """Set every setting that differs from `before` back; returns the names that were changed
    (pools loaded after the snapshot are left as they are)."""
    import torch
    now = snapshot()
    changed = [k for k, v in before.items() if k in now and now[k] != v]
    if "torch" in changed:
        torch.set_num_threads(before["torch"])
    pools = [k for k in changed if k != "torch"]
    if pools:
        from threadpoolctl import ThreadpoolController
        ctl = ThreadpoolController()
        for key in pools:
            name = key.split(":", 2)[2]
            for lib in ctl.lib_controllers:
                if os.path.basename(lib.filepath) == name:
                    lib.set_num_threads(before[key])
    return changed


@contextmanager
def contained(record: dict | None = None):
    """Run a block and restore thread settings after it. When `record` is given it receives
    'before', 'during' (as the block left them) and 'restored' (names changed back)."""
    before = snapshot()
    try:
        yield before
    finally:
        during = snapshot()
        restored = restore(before)
        if record is not None:
            record.update(before=before, during=during, restored=restored)

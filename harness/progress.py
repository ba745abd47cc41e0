"""Progress bars (tqdm), silent under --quiet or when CI is set."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def bar(total: int, desc: str, quiet: bool, leave: bool = False, unit: str = "it"):
    """A tqdm bar, disabled when quiet, in CI, or when stderr is not a terminal."""
    disable = quiet or bool(os.environ.get("CI")) or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=disable, leave=leave, unit=unit,
                dynamic_ncols=True)

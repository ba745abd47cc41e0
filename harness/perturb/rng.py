"""Derived random streams: one `numpy.random.Generator` per (seed, key...), never a global RNG.

The key names what is perturbed (e.g. ``("item", "242", "typo_keyboard", "{}", 0.2)``). It is
hashed (sha256 of its JSON form) into the entropy of a `numpy.random.SeedSequence`, so a stream
depends only on its key: adding a model, a perturbation or an item to a suite never changes the
draws for another key.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def key_entropy(seed: int, *key) -> list[int]:
    """Four 32-bit words of sha256(json([seed, *key])) (floats written with repr)."""
    blob = json.dumps([int(seed), *[repr(k) if isinstance(k, float) else str(k) for k in key]])
    digest = hashlib.sha256(blob.encode()).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


def derive_rng(seed: int, *key) -> np.random.Generator:
    """A generator seeded by SeedSequence(key_entropy(seed, *key))."""
    return np.random.default_rng(np.random.SeedSequence(key_entropy(seed, *key)))

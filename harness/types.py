"""Core data types: Interactions and Dataset."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp


@dataclass(frozen=True)
class Interactions:
    """User/item index arrays (int32) with optional rating and timestamp, in a shared index space."""

    user: np.ndarray
    item: np.ndarray
    n_users: int
    n_items: int
    rating: np.ndarray | None = None
    timestamp: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.user.shape[0])

    def subset(self, idx: np.ndarray) -> "Interactions":
        """The interactions at row positions `idx` (same index space)."""
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Interactions(self.user[idx], self.item[idx], self.n_users, self.n_items,
                            pick(self.rating), pick(self.timestamp))

    def csr(self, dtype=np.float32) -> sp.csr_matrix:
        """Binary users x items matrix (duplicates collapse to 1)."""
        m = sp.csr_matrix((np.ones(len(self), dtype=dtype), (self.user, self.item)),
                          shape=(self.n_users, self.n_items))
        m.sum_duplicates()
        m.data[:] = 1
        return m

    def users(self) -> np.ndarray:
        """Sorted unique user indices present."""
        return np.unique(self.user)

    def content_hash(self) -> str:
        """sha256 over the arrays' bytes."""
        h = hashlib.sha256()
        for a in (self.user, self.item, self.rating, self.timestamp):
            h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes())
        h.update(f"{self.n_users},{self.n_items}".encode())
        return h.hexdigest()


@dataclass(frozen=True)
class Dataset:
    """Interactions plus optional item (text) and user (attribute) tables, indexed by position."""

    name: str
    interactions: Interactions
    user_ids: np.ndarray
    item_ids: np.ndarray
    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    options: dict = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @cached_property
    def fingerprint(self) -> str:
        """Content fingerprint: interactions, id maps and side tables."""
        h = hashlib.sha256(self.interactions.content_hash().encode())
        for ids in (self.user_ids, self.item_ids):
            h.update("\x1f".join(map(str, ids)).encode())
        for table in (self.items, self.users):
            if table is not None:
                h.update("\x1f".join(map(str, table.columns)).encode())
                h.update(pd.util.hash_pandas_object(table, index=True).values.tobytes())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Counts, density and side fields, as `harness datasets show` prints them."""
        n = len(self.interactions)
        return {
            "name": self.name,
            "users": self.n_users,
            "items": self.n_items,
            "interactions": n,
            "density": n / max(1, self.n_users * self.n_items),
            "item_fields": [] if self.items is None else list(self.items.columns),
            "user_fields": [] if self.users is None else list(self.users.columns),
            "has_rating": self.interactions.rating is not None,
            "has_timestamp": self.interactions.timestamp is not None,
            "fingerprint": self.fingerprint,
        }

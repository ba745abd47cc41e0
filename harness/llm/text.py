"""Text layer: item text from a template over the dataset's item fields; user histories."""

from __future__ import annotations

import string

import numpy as np

from harness.errors import UserError
from harness.splits.base import Split
from harness.types import Dataset

MOVIE_TEMPLATE = "{movie_title} ({release_year}), genres: {class}"


def template_fields(template: str) -> list[str]:
    """Field names used by a str.format template."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def default_template(ds: Dataset) -> str:
    """Title/year/genres for MovieLens-style items, else every item field as 'name: value'."""
    cols = list(ds.items.columns)
    if {"movie_title", "release_year", "class"} <= set(cols):
        return MOVIE_TEMPLATE
    return "; ".join(f"{c}: {{{c}}}" for c in cols)


def item_texts(ds: Dataset, template: str = "auto") -> tuple[list[str], str]:
    """(one text per item index, the template used). Missing fields are a UserError."""
    if ds.items is None:
        raise UserError(f"dataset '{ds.name}' has no item table: text-based recommenders need "
                        "item text (a .item file)")
    template = default_template(ds) if template == "auto" else template
    missing = [f for f in template_fields(template) if f not in ds.items.columns]
    if missing:
        raise UserError(f"item template '{template}' names field(s) {missing} that dataset "
                        f"'{ds.name}' lacks; item fields: {list(ds.items.columns)}")
    records = ds.items.astype(str).replace({"nan": ""}).to_dict("records")
    texts = [" ".join(template.format(**r).split()) for r in records]
    return texts, template


def user_histories(split: Split) -> list[np.ndarray]:
    """Per user, train item indices ordered most recent first (row order when no timestamps)."""
    train = split.train
    n = split.dataset.n_users
    ts = train.timestamp if train.timestamp is not None else np.arange(len(train), dtype=float)
    order = np.lexsort((-np.arange(len(train)), -ts, train.user))
    users, items = train.user[order], train.item[order]
    bounds = np.searchsorted(users, np.arange(n + 1))
    return [items[bounds[u]:bounds[u + 1]] for u in range(n)]


def capped_lengths(hist: list[np.ndarray], users, cap: int) -> np.ndarray:
    """Per user, min(len(history), cap): the history items a model reads (its
    `history_len_used`, recorded by the efficiency pass)."""
    return np.array([min(len(hist[int(u)]), cap) for u in users], np.int64)


def user_attributes_text(ds: Dataset, user: int, fields: list[str] | None = None) -> str:
    """'age: 24, gender: M, ...' for the user's attribute fields (empty when there are none)."""
    if ds.users is None:
        return ""
    fields = fields or list(ds.users.columns)
    row = ds.users.iloc[user]
    return ", ".join(f"{f}: {row[f]}" for f in fields if f in row and str(row[f]))

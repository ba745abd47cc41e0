"""Seeded synthetic interactions with genre structure, popularity skew, item text and user attributes.

Generative story: item i has a genre g(i) and a Zipf popularity weight; user u has a Dirichlet
preference over genres and a log-normal activity. Each interaction draws a user by activity, a genre
from that user's preference, then an item of that genre by popularity; (user, item) pairs are
de-duplicated. Ratings are 4-5 for the user's top genre, else 1-5; timestamps increase with draw order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WORDS = ["Silent", "Golden", "Last", "Lost", "Night", "River", "Star", "Winter", "Iron", "Glass",
         "Secret", "Red", "Blue", "Wild", "City", "Dream", "Storm", "Shadow", "Paper", "Fire"]
GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Documentary",
          "Animation", "Western", "Musical", "Mystery"]
OCCUPATIONS = ["student", "engineer", "artist", "doctor", "teacher", "writer", "other"]


def synthetic_tables(n_users: int = 500, n_items: int = 300, n_interactions: int = 10_000,
                     n_genres: int = 8, seed: int = 0):
    """(interactions, items, users) DataFrames with RecBole-style column names."""
    sizes = {"n_users": n_users, "n_items": n_items, "n_interactions": n_interactions,
             "n_genres": n_genres}
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if n_interactions > n_users * n_items:
        raise ValueError(f"n_interactions = {n_interactions} exceeds n_users x n_items = "
                         f"{n_users * n_items} distinct (user, item) pairs")
    rng = np.random.default_rng(seed)
    n_genres = min(n_genres, len(GENRES))
    genre = rng.integers(0, n_genres, n_items)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop = pop[rng.permutation(n_items)]
    pref = rng.dirichlet(np.full(n_genres, 0.3), n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    order = np.argsort(genre, kind="stable")
    starts = np.searchsorted(genre[order], np.arange(n_genres + 1))
    wcum = np.cumsum(pop[order])
    cum = np.cumsum(pref, axis=1)
    p_user = activity / activity.sum()

    def draw(k: int) -> pd.DataFrame:
        users = rng.choice(n_users, k, p=p_user)
        g = np.minimum((cum[users] < rng.random((k, 1))).sum(1), n_genres - 1)
        lo = np.where(starts[g] > 0, wcum[np.maximum(starts[g] - 1, 0)], 0.0)
        hi = wcum[np.maximum(starts[g + 1] - 1, 0)]
        pos = np.searchsorted(wcum, lo + rng.random(k) * (hi - lo), side="right")
        pos = np.clip(pos, starts[g], np.maximum(starts[g + 1] - 1, starts[g]))
        return pd.DataFrame({"user_id": users, "item_id": order[np.minimum(pos, n_items - 1)]})

    # draw until there are enough distinct (user, item) pairs (keeping draw order)
    pairs = draw(int(n_interactions * 1.3) + 16).drop_duplicates()
    for _ in range(50):
        if len(pairs) >= n_interactions:
            break
        more = draw(2 * (n_interactions - len(pairs)) + 16)
        pairs = pd.concat([pairs, more]).drop_duplicates(keep="first")
    pairs = pairs.iloc[:n_interactions].reset_index(drop=True)
    top = pref.argmax(1)
    liked = genre[pairs["item_id"].to_numpy()] == top[pairs["user_id"].to_numpy()]
    rating = np.where(liked, rng.integers(4, 6, len(pairs)), rng.integers(1, 6, len(pairs)))
    inter = pd.DataFrame({
        "user_id": (pairs["user_id"] + 1).astype(str).to_numpy(),
        "item_id": (pairs["item_id"] + 1).astype(str).to_numpy(),
        "rating": rating.astype(float),
        "timestamp": 1_000_000_000.0 + np.arange(len(pairs)) * 60.0,
    })
    w = rng.integers(0, len(WORDS), (n_items, 2))
    item_table = pd.DataFrame({
        "item_id": np.arange(1, n_items + 1).astype(str),
        "movie_title": [f"The {WORDS[a]} {WORDS[b]} {i + 1}" for i, (a, b) in enumerate(w)],
        "release_year": rng.integers(1950, 2024, n_items).astype(str),
        "class": [GENRES[k] for k in genre],
    })
    user_table = pd.DataFrame({
        "user_id": np.arange(1, n_users + 1).astype(str),
        "age": rng.integers(16, 70, n_users).astype(str),
        "gender": rng.choice(["F", "M"], n_users),
        "occupation": rng.choice(OCCUPATIONS, n_users),
    })
    return inter, item_table, user_table

"""What a text recommender reads at inference, replaceable without retraining.

The robustness pass (perturbed item/user text) and the fairness pass (counterfactual user
attributes) hand a `TextView` to recommenders that declare `uses_text = True` through
`model.set_text_view(view)`; `set_text_view(None)` restores the clean text. A model recomputes
only what depends on texts that changed (e.g. embeddings cached by text hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd


@dataclass(frozen=True)
class TextView:
    """Replacements for the dataset's text, all optional (None = as in the dataset).

    items: replaces `dataset.items` (field-level changes: a field dropped, a title reformatted).
    users: replaces `dataset.users` (user attributes: counterfactual values, perturbed fields).
    item_text: (item index, rendered item text) -> text, applied after the item template.
    user_text: (user index, rendered user text) -> text, applied to texts describing a user.
    label: what the view is (e.g. 'typo@0.2', 'gender=F'), for logs and records.
    """

    items: pd.DataFrame | None = None
    users: pd.DataFrame | None = None
    item_text: Callable[[int, str], str] | None = None
    user_text: Callable[[int, str], str] | None = None
    label: str = "clean"


def reads_text(model) -> bool:
    """Whether a model declares that it reads text and accepts a text view."""
    return bool(getattr(model, "uses_text", False)) and callable(
        getattr(model, "set_text_view", None))

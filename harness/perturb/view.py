"""Text views from perturbations, and the helpers a text recommender uses to read a view.

A recommender that declares `uses_text = True` and has `set_text_view(view)` reads perturbed or
counterfactual text at inference (harness/textview.py); `text_targets` (default: items and
users) says which texts it reads, so a user-text perturbation skips a model that reads none. A
recommender that scores from a user's history may also have `set_history_view(histories)`
(per user, item indices most recent first, as `harness.llm.text.user_histories`; None =
the clean histories).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from harness.textview import TextView

TARGETS = ("items", "users")


def reads_history(model) -> bool:
    """Whether a model accepts a history view at inference."""
    return callable(getattr(model, "set_history_view", None))


def text_targets(model) -> tuple[str, ...]:
    """The texts a text model reads: 'items' (item text) and/or 'users' (user text)."""
    return tuple(getattr(model, "text_targets", TARGETS))


def view_dataset(dataset, view: TextView | None):
    """The dataset with the view's item / user tables (the dataset itself without a view)."""
    if view is None or (view.items is None and view.users is None):
        return dataset
    return replace(dataset, items=dataset.items if view.items is None else view.items,
                   users=dataset.users if view.users is None else view.users)


def view_item_texts(dataset, template: str, view: TextView | None) -> tuple[list[str], str]:
    """Item texts under a view: the template over the view's item table, then `item_text`."""
    from harness.llm.text import item_texts
    texts, template = item_texts(view_dataset(dataset, view), template)
    if view is not None and view.item_text is not None:
        texts = [view.item_text(i, t) for i, t in enumerate(texts)]
    return texts, template


def view_user_text(view: TextView | None, user: int, text: str) -> str:
    """A text describing user `user` under the view (`user_text`), unchanged without one."""
    if view is None or view.user_text is None or not text:
        return text
    return view.user_text(user, text)


def default_fields(pert, table: pd.DataFrame) -> list[str]:
    """The fields a field perturbation changes when the suite names none."""
    if pert.default_fields is not None:
        return list(pert.default_fields)
    return list(table.columns[1:]) if pert.field_only else list(table.columns)


def text_view(pert, severity: float, seed: int, dataset, target: str,
              fields: list[str] | None, label: str) -> tuple[TextView, dict]:
    """(the TextView of a text perturbation at `severity`, record with the realized share of
    changed values or texts). With fields (always for field-only perturbations) the target
    table's values are perturbed, keyed (seed, target, id, field); otherwise the rendered
    texts are, keyed (seed, 'item', item id) for items, (seed, 'user', user id, text) for
    texts describing a user."""
    ids = dataset.item_ids if target == "items" else dataset.user_ids
    table = dataset.items if target == "items" else dataset.users
    kind = target[:-1]
    if fields or pert.field_only:
        fields = fields or default_fields(pert, table)
        new = table.copy()
        changed = 0
        for f in fields:
            old = table[f].astype(str).replace({"nan": ""}).tolist()
            vals = [pert(v, severity, seed, kind, ids[i], f) for i, v in enumerate(old)]
            changed += sum(a != b for a, b in zip(old, vals))
            new[f] = pd.Series(vals, index=table.index, dtype=object)
        view = TextView(items=new, label=label) if target == "items" else \
            TextView(users=new, label=label)
        return view, {"fields": fields, "changed_share": changed / max(1, len(table) * len(fields))}
    if target == "items":
        def item_text(i: int, text: str) -> str:
            return pert(text, severity, seed, "item", ids[i])
        view = TextView(item_text=item_text, label=label)
        from harness.llm.text import item_texts
        try:
            clean, _ = item_texts(dataset)
            share = sum(item_text(i, t) != t for i, t in enumerate(clean)) / max(1, len(clean))
        except Exception:  # noqa: BLE001 - the share is informative only
            share = None
        return view, {"changed_share": share}

    def user_text(u: int, text: str) -> str:
        return pert(text, severity, seed, "user", ids[u], text)
    return TextView(user_text=user_text, label=label), {}

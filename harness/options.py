"""Typed fit options handed to every recommender before `fit` (replaces the untyped `runtime`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class FitOptions:
    """What the harness tells a recommender about its environment.

    cache_dir: where a model may cache derived artifacts (embeddings, trained weights), keyed and
        hash-verified by the model; None = no cache.
    use_cache: False = recompute (and overwrite) cached artifacts.
    quiet: no progress output (CI, --quiet).
    device: "cpu", "cuda", "cuda:1", ... or None = the model's own choice (auto: CUDA if present).
    target: the part scored after fit ("test": history = train + valid; "valid": train), for
        models that score from a user's history (sequential models).
    """

    cache_dir: Path | None = None
    use_cache: bool = True
    quiet: bool = True
    device: str | None = None
    target: str = "test"

    def with_(self, **changes) -> "FitOptions":
        return replace(self, **changes)

    def as_runtime(self) -> dict:
        """The legacy `runtime` dict (cache_dir, use_cache, quiet, device) for older plugins."""
        return asdict(self)


def apply_options(model, options: FitOptions) -> None:
    """Hand `options` to a model before fit: `model.fit_options` (typed) and, for models that
    have the legacy attribute, `model.runtime` (a dict with the same keys)."""
    try:
        model.fit_options = options
    except AttributeError:  # __slots__ or a read-only property: the model does not want them
        pass
    if hasattr(model, "runtime"):
        model.runtime = options.as_runtime()

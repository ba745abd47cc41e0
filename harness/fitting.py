"""The one way to build and fit a model (cells, rerank first stages, the efficiency `fit`
scenario and the robustness pass's refits all use it)."""

from __future__ import annotations

from harness import registry
from harness.options import FitOptions, apply_options


def new_model(name: str, params: dict, seed: int, options: FitOptions):
    """A fresh, unfitted instance with `options` applied."""
    model = registry.build(name, params, seed)
    apply_options(model, options)
    return model


def fit_model(name: str, params: dict, seed: int, split, options: FitOptions):
    """A fresh instance fitted on `split` (`fit(split, dataset)`, the plugin protocol)."""
    model = new_model(name, params, seed, options)
    model.fit(split, split.dataset)
    return model

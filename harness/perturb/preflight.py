"""Checks of `[robustness]` against the loaded datasets and the suite's models (before anything
is written): a text field the dataset lacks is a SuiteError naming file, key and fields; a
perturbation no model of the suite can take is a `RobustnessWarning` naming the models it
skips (the pass records the skip per cell; nothing crashes)."""

from __future__ import annotations

import warnings

from harness.errors import SuiteError, did_you_mean
from harness.perturb.view import default_fields, reads_history


class RobustnessWarning(UserWarning):
    """A perturbation that some or all models of the suite skip."""


def _warn(file: str, key: str, msg: str) -> None:
    warnings.warn(f"{file}: [{key}] {msg}", RobustnessWarning, stacklevel=3)


def _check_fields(entry, key: str, datasets: dict, file: str) -> None:
    pert = entry.make()
    what = entry.target[:-1]
    for label, ds in datasets.items():
        table = ds.items if entry.target == "items" else ds.users
        if table is None:
            raise SuiteError(file, f"{key}.target", f"dataset '{label}' has no {what} table, "
                             f"so '{entry.label}' has no {what} text to perturb")
        fields = list(entry.fields) or (default_fields(pert, table) if pert.field_only else [])
        missing = [f for f in fields if f not in table.columns]
        if missing:
            where = f"{key}.fields" if entry.fields else f"{key}.name"
            hint = "" if entry.fields else f" ('{entry.name}' defaults to {fields}; set 'fields')"
            raise SuiteError(file, where, f"dataset '{label}' lacks {what} field(s) {missing}"
                             f"{hint}{did_you_mean(missing[0], table.columns)}")


def _reads_history(m, cls) -> bool:
    """The class has `set_history_view`, or the built instance has (a family's variant, e.g.
    'recbole:SASRec')."""
    from harness import registry
    return reads_history(cls) or reads_history(registry.build(m.name, m.params, 0))


def preflight_robustness(spec, suite, datasets: dict, file: str) -> None:
    from harness import registry
    classes = {m.label: registry.resolve(m.name) for m in suite.models}
    specs = {m.label: m for m in suite.models}
    in_pass = [m.label for m in suite.models if not spec.models or m.label in spec.models]
    for i, e in enumerate(spec.perturbations):
        key = f"robustness.perturbations[{i}]"
        models = [m for m in in_pass if not e.models or m in e.models]
        if e.kind == "text":
            _check_fields(e, key, datasets, file)
            ok = [m for m in models if getattr(classes[m], "uses_text", False)]
            why = "read no text (uses_text)"
        elif e.kind == "history":
            ok = [m for m in models if _reads_history(specs[m], classes[m])]
            why = "score from no history view (set_history_view)"
        elif e.kind == "order":
            ok = [m for m in models if getattr(classes[m], "order_sensitive", False)
                  or m in e.models]
            why = "are pointwise (declare no order_sensitive; list them in 'models' to check)"
        else:
            continue
        skipped = [m for m in models if m not in ok]
        if not ok:
            _warn(file, key, f"'{e.label}' applies to no model of the suite: {skipped} {why}; "
                             "it is skipped")
        elif skipped and e.models:
            _warn(file, key, f"'{e.label}' skips {skipped}: they {why}")

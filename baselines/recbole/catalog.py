"""Which RecBole models the adapter runs, and which hyperparameters each one accepts.

A model name must be a class of `recbole.model.general_recommender` or of
`recbole.model.sequential_recommender` (except the sequential models that need item features, a
knowledge graph or click labels, listed in `SEQUENTIAL_UNSUPPORTED`); names of context-aware,
knowledge-aware or external-library models get a "not supported yet" error.
Hyperparameters are RecBole config keys: those of `properties/overall.yaml`, the dataset defaults
(`properties/dataset/sample.yaml`), the model's `properties/model/<Model>.yaml`, and any key the
model's source reads as `config["key"]`. Values must match the type of RecBole's default (an int
is accepted for a float). Keys that the adapter itself controls (files, devices, logging, the
split, the seed) are rejected with the reason; of the dataset keys only `MAX_ITEM_LIST_LENGTH`
(sequential models) may be set.
"""

from __future__ import annotations

import functools
import inspect
import pkgutil
import re
from importlib.util import find_spec
from pathlib import Path

from harness.errors import UserError, did_you_mean

from baselines.recbole.compat import import_recbole

OTHER_FAMILIES = {
    "context_aware_recommender": "context-aware",
    "knowledge_aware_recommender": "knowledge-aware",
    "exlib_recommender": "external-library (XGBoost/LightGBM)",
}
# Sequential models the adapter cannot feed: they need more than (user, item sequence) pairs.
SEQUENTIAL_UNSUPPORTED = {
    "DIN": "item features and click labels", "DIEN": "item features and click labels",
    "FDSA": "item features", "SASRecF": "item features", "GRU4RecF": "item features",
    "S3Rec": "item attributes and a pre-training stage",
    "GRU4RecKG": "a knowledge graph", "KSR": "a knowledge graph",
}
# Dataset keys a sequential model may set.
SEQUENTIAL_KEYS = {"MAX_ITEM_LIST_LENGTH"}
# Keys set by the adapter; a suite may not override them.
FIXED = {
    "model": "given by the registry name 'recbole:<Model>'",
    "dataset": "the adapter writes the harness split as its own dataset",
    "data_path": "the adapter writes the split to a temporary directory",
    "benchmark_filename": "the harness split is passed as train/valid/test files",
    "eval_args": "the harness split is used as is (no re-splitting or re-ordering)",
    "checkpoint_dir": "the best state is kept in memory, nothing is written",
    "save_dataset": "nothing is written outside the run's temporary directory",
    "dataset_save_path": "nothing is written outside the run's temporary directory",
    "save_dataloaders": "nothing is written outside the run's temporary directory",
    "dataloaders_save_path": "nothing is written outside the run's temporary directory",
    "seed": "use the suite's seeds",
    "state": "RecBole's log goes to the adapter's log file at level INFO",
    "show_progress": "progress bars are off (the harness draws its own)",
    "log_wandb": "not supported", "wandb_project": "W&B logging is not supported",
    "valid_metric_bigger": "RecBole derives it from valid_metric",
    "gpu_id": "use the adapter's 'device' parameter",
    "use_gpu": "use the adapter's 'device' parameter",
    "repeatable": "models are evaluated non-repeatably",
    "load_col": "the adapter writes the columns it needs",
    "unload_col": "the adapter writes the columns it needs",
    "unused_col": "the adapter writes the columns it needs",
    "USER_ID_FIELD": "fixed field names", "ITEM_ID_FIELD": "fixed field names",
    "RATING_FIELD": "fixed field names", "TIME_FIELD": "fixed field names",
    "field_separator": "fixed file format", "seq_separator": "fixed file format",
    "rm_dup_inter": "the split is used as is", "val_interval": "the split is used as is",
    "filter_inter_by_user_or_item": "the split is used as is",
    "user_inter_num_interval": "the split is used as is",
    "item_inter_num_interval": "the split is used as is",
}


def _package_dir(sub: str) -> Path:
    spec = find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("recommender 'recbole:*' needs the recbole package (recbole==1.2.1)")
    return Path(list(spec.submodule_search_locations)[0]) / sub


@functools.cache
def general_models() -> dict[str, type]:
    """RecBole's general recommenders: class name -> class."""
    rb = import_recbole()
    return {name: obj for name, obj in vars(rb.general).items()
            if isinstance(obj, type) and issubclass(obj, rb.GeneralRecommender)}


@functools.cache
def sequential_models() -> dict[str, type]:
    """RecBole's sequential recommenders the adapter supports: class name -> class."""
    rb = import_recbole()
    return {name: obj for name, obj in vars(rb.sequential).items()
            if isinstance(obj, type) and issubclass(obj, rb.SequentialRecommender)
            and name not in SEQUENTIAL_UNSUPPORTED}


def supported_models() -> dict[str, type]:
    return {**general_models(), **sequential_models()}


def is_sequential(name: str) -> bool:
    """True for a supported RecBole sequential model name (False for anything else)."""
    try:
        return name in sequential_models()
    except ImportError:
        return False


@functools.cache
def _other_models() -> dict[str, str]:
    """lower-case model name -> family, for RecBole's non-general models (by module file name
    and the names of their config files)."""
    out = {}
    for sub, family in OTHER_FAMILIES.items():
        for mod in pkgutil.iter_modules([str(_package_dir(f"model/{sub}"))]):
            out[mod.name.lower()] = family
    return out


def check_model(name: str) -> type:
    """The RecBole model class for `name`; UserError for unknown or unsupported models."""
    models = supported_models()
    if name in models:
        return models[name]
    if name in SEQUENTIAL_UNSUPPORTED:
        raise UserError(f"recommender 'recbole:{name}': this sequential model needs "
                        f"{SEQUENTIAL_UNSUPPORTED[name]}, which the adapter does not pass "
                        f"(supported sequential models: {', '.join(sorted(sequential_models()))})")
    family = _other_models().get(name.lower())
    if family is not None:
        raise UserError(f"recommender 'recbole:{name}': RecBole's {family} models are not "
                        f"supported yet (only general and sequential recommenders: "
                        f"{', '.join(sorted(models))})")
    same = [m for m in models if m.lower() == name.lower()]
    hint = (f" (did you mean '{same[0]}'?); valid: {', '.join(sorted(models))}" if same
            else did_you_mean(name, models))
    raise UserError(f"unknown recommender 'recbole:{name}': not a RecBole model{hint}")


def _yaml(path: Path) -> dict:
    """A RecBole config file, parsed like RecBole does (YAML 1.1 plus '1e-4'-style floats),
    without touching PyYAML's global loaders."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""", re.X), list("-+0123456789."))
    if not path.is_file():
        return {}
    return yaml.load(path.read_text(encoding="utf-8"), Loader=Loader) or {}


@functools.cache
def defaults(model: str) -> dict:
    """RecBole's default config for a model: overall + dataset sample + model yaml, plus keys
    its source reads without a default (value None)."""
    cls = check_model(model)
    out = _yaml(_package_dir("properties/overall.yaml"))
    out.update(_yaml(_package_dir("properties/dataset/sample.yaml")))
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith(("recbole.model.general_recommender",
                                        "recbole.model.sequential_recommender")):
            out.update(_yaml(_package_dir(f"properties/model/{klass.__name__}.yaml")))
            try:
                src = inspect.getsource(klass)
            except (OSError, TypeError):
                continue
            for key in re.findall(r"""config\[\s*["'](\w+)["']\s*\]""", src):
                out.setdefault(key, None)
    return out


def _type_ok(default, value) -> bool:
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


@functools.cache
def _dataset_keys() -> frozenset:
    return frozenset(_yaml(_package_dir("properties/dataset/sample.yaml")))


def check_params(model: str, params: dict) -> dict:
    """Validate suite hyperparameters for a RecBole model; returns them unchanged."""
    known = defaults(model)
    own = SEQUENTIAL_KEYS if is_sequential(model) else set()
    for key, value in params.items():
        reason = FIXED.get(key) or (
            "the adapter passes (user, item) pairs or item sequences only: dataset options "
            "do not apply" if key in _dataset_keys() and key not in own else None)
        if reason:
            raise UserError(f"recommender 'recbole:{model}': parameter '{key}' is set by the "
                            f"adapter ({reason})")
        if key not in known:
            valid = (set(known) - set(FIXED) - _dataset_keys()) | own
            raise UserError(f"recommender 'recbole:{model}' has no parameter '{key}'"
                            f"{did_you_mean(key, valid)}")
        if not _type_ok(known[key], value):
            raise UserError(f"recommender 'recbole:{model}': parameter '{key}' must be "
                            f"{type(known[key]).__name__} like RecBole's default "
                            f"{known[key]!r}, got {value!r}")
    return dict(params)

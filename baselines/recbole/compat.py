"""RecBole 1.2.1 under today's stack: every workaround the adapter needs, in one place.

Everything here is scoped: `session()` patches on entry and restores on exit (also on error), so
no process-wide state outlives a `fit` or `score` call. The workarounds:

- numpy 2 removed `np.float_`, `np.complex_`, `np.unicode_`; RecBole's `Config` assigns
  `np.float = np.float_` (and `np.bool/int/complex/object/str/long/unicode`) and its evaluator and
  data code use `np.float`. The session defines these aliases and afterwards restores numpy's
  module dict exactly (names that did not exist are removed again).
- scipy 1.17's `dok_matrix` has no `_update`, which the adjacency construction of LightGCN, NGCF,
  NCL, GCMC and SpectralCF calls: a temporary `dok_matrix._update` that delegates to the public,
  validating `dok_matrix.update`.
- pandas 3 (copy-on-write) turns `df[col].fillna(..., inplace=True)` into a no-op: a temporary
  `Dataset._fill_nan` that assigns the filled column instead (same imputation rules).
- pandas 3's `Series.agg(len)` returns the length of the Series, where RecBole (remapping token
  sequences, `SequentialDataset._benchmark_presets`) expects the length of each element: a
  temporary `Series.agg` that maps `len` element-wise and passes every other call through
  (only installed when pandas shows that behaviour).
- torch >= 2.6 loads with `weights_only=True`, so RecBole's `Trainer.evaluate(load_best_model=True)`
  and `resume_checkpoint` fail on its own checkpoints. The adapter never calls them and never
  calls `torch.load`: it keeps the best state in memory (see `adapter.py`); nothing is patched.
- tensorboard is an import-time dependency of `recbole.utils` but not needed: when it is missing,
  a no-op `SummaryWriter` stands in while recbole is imported, and during a session
  `get_tensorboard` returns a no-op writer (RecBole would otherwise create `./log_tensorboard/`).
- RecBole's `Config` reads `sys.argv` (`--key=value` overrides), sets `CUDA_VISIBLE_DEVICES`, and
  adds an implicit float resolver to PyYAML's `FullLoader` class; `init_seed` reseeds the global
  `random`/numpy/torch RNGs and cudnn flags. All of these are saved and restored.
- RecBole's `Config` eval()s string values given in `config_dict`; the adapter passes its
  configuration as a YAML file instead (`config_file_list`), so no suite string is evaluated.
- Output: RecBole logs to the root logger, warns through `warnings`, may `print` and draw tqdm bars.
  For the session the root logger's handlers are replaced by one that writes to the given stream
  (ANSI colours stripped), warnings are written there too, and `sys.stdout`/`sys.stderr` point to
  it; handlers, level, warning filters and streams are restored afterwards.

Not thread-safe: one session at a time per process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import random
import re
import sys
import types
import warnings
from typing import Iterator, TextIO

import numpy as np
import torch

_MISSING = object()
# what Config.compatibility_settings assigns, with the values numpy 1.x had for them
_NP_ALIASES = {
    "float_": np.float64, "complex_": np.complex128, "unicode_": np.str_,
    "bool": np.bool_, "int": np.int_, "float": np.float64, "complex": np.complex128,
    "object": np.object_, "str": np.str_, "long": np.int_, "unicode": np.str_,
}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NullWriter:
    """Stands in for tensorboard's SummaryWriter: accepts every call, writes nothing."""

    def __init__(self, *args, **kwargs):
        pass

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def numpy_aliases() -> Iterator[None]:
    """numpy 1.x aliases RecBole relies on; numpy's module dict is restored on exit."""
    saved = {name: np.__dict__.get(name, _MISSING) for name in _NP_ALIASES}
    try:
        for name, value in _NP_ALIASES.items():
            setattr(np, name, value)
        yield
    finally:
        for name, value in saved.items():
            if value is _MISSING:
                np.__dict__.pop(name, None)
            else:
                setattr(np, name, value)


def import_recbole() -> types.SimpleNamespace:
    """Import the recbole modules the adapter uses (once; later calls are cheap). When the
    tensorboard package is absent, a stub `torch.utils.tensorboard` is visible during the import
    only. Raises ImportError naming the missing packages."""
    key = "torch.utils.tensorboard"
    stub = None
    if key not in sys.modules and importlib.util.find_spec("tensorboard") is None:
        stub = types.ModuleType(key)
        stub.SummaryWriter = NullWriter
        sys.modules[key] = stub
    try:
        with numpy_aliases():
            from recbole.config import Config
            from recbole.data import create_dataset, data_preparation
            from recbole.data.dataset import dataset as dataset_module
            from recbole.data.interaction import Interaction
            import recbole.model.general_recommender as general
            import recbole.model.sequential_recommender as sequential
            from recbole.model.abstract_recommender import GeneralRecommender
            from recbole.model.abstract_recommender import SequentialRecommender
            from recbole.trainer import trainer as trainer_module
            from recbole.utils import get_trainer, init_seed
            from recbole.utils.enum_type import FeatureType
    except ImportError as exc:
        raise ImportError(f"the RecBole adapter could not import recbole ({exc}); it needs "
                          "recbole==1.2.1 plus pyyaml, colorlog, colorama and texttable") from exc
    finally:
        if stub is not None and sys.modules.get(key) is stub:
            del sys.modules[key]
            if getattr(torch.utils, "tensorboard", None) is stub:
                delattr(torch.utils, "tensorboard")
    return types.SimpleNamespace(
        Config=Config, create_dataset=create_dataset, data_preparation=data_preparation,
        Dataset=dataset_module.Dataset, Interaction=Interaction, general=general,
        GeneralRecommender=GeneralRecommender, sequential=sequential,
        SequentialRecommender=SequentialRecommender, trainer_module=trainer_module,
        get_trainer=get_trainer, init_seed=init_seed, FeatureType=FeatureType)


@contextlib.contextmanager
def _patched(obj, name: str, value) -> Iterator[None]:
    """Set `obj.name = value` for the duration; restore (or remove) it afterwards."""
    had = name in vars(obj)
    old = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)


def _dok_update(self, data) -> None:
    """scipy < 1.12's private `dok_matrix._update(dict)`, via the public `update`."""
    self.update(data)


def _fill_nan_fixed(rb):
    """`Dataset._fill_nan` with assignments instead of chained in-place `fillna` (pandas 3)."""
    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in list(feat):
                ftype = self.field2type[field]
                if ftype == rb.FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(value=0)
                elif ftype == rb.FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(value=feat[field].mean())
                else:
                    dtype = np.int64 if ftype == rb.FeatureType.TOKEN_SEQ else np.float64
                    feat[field] = feat[field].apply(
                        lambda x: np.array([], dtype=dtype) if isinstance(x, float) else x)
    return _fill_nan


def _agg_len_elementwise(agg):
    """`Series.agg` where `agg(len)` is the length of each element (pandas < 3 behaviour)."""
    def patched(self, func=None, axis=0, *args, **kwargs):
        if func is len:
            return self.map(len)
        return agg(self, func, axis, *args, **kwargs)
    return patched


def _pandas_agg_len_is_scalar() -> bool:
    import pandas as pd
    return np.ndim(pd.Series([[1, 2], [3]]).agg(len)) == 0


@contextlib.contextmanager
def _global_state() -> Iterator[None]:
    """Save and restore what RecBole changes process-wide: RNGs, cudnn flags, sys.argv,
    CUDA_VISIBLE_DEVICES and PyYAML's FullLoader resolvers."""
    import yaml
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    argv, env = sys.argv, os.environ.get("CUDA_VISIBLE_DEVICES")
    loader = yaml.FullLoader
    own = "yaml_implicit_resolvers" in vars(loader)
    resolvers = {k: list(v) for k, v in loader.yaml_implicit_resolvers.items()} if own else None
    sys.argv = sys.argv[:1]  # Config parses --key=value from the command line
    try:
        yield
    finally:
        sys.argv = argv
        if env is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = env
        if own:
            loader.yaml_implicit_resolvers = resolvers
        elif "yaml_implicit_resolvers" in vars(loader):
            delattr(loader, "yaml_implicit_resolvers")
        random.setstate(rng[0])
        np.random.set_state(rng[1])
        torch.set_rng_state(rng[2])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn


class _StripAnsi(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _ANSI.sub("", super().format(record))


@contextlib.contextmanager
def captured_output(stream: TextIO) -> Iterator[None]:
    """Route the root logger, warnings, stdout and stderr to `stream`; restore them after."""
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_StripAnsi("%(asctime)s %(levelname)s %(message)s"))
    saved = (root.handlers[:], root.level, root.disabled)

    def show(message, category, filename, lineno, file=None, line=None):
        stream.write(_ANSI.sub("", warnings.formatwarning(message, category, filename, lineno,
                                                          line)))

    root.handlers = [handler]
    root.setLevel(logging.INFO)
    root.disabled = False
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(stream), \
                contextlib.redirect_stderr(stream):
            warnings.simplefilter("default")
            warnings.showwarning = show
            yield
    finally:
        handler.flush()
        root.handlers, root.disabled = saved[0], saved[2]
        root.setLevel(saved[1])


@contextlib.contextmanager
def session(rb: types.SimpleNamespace, stream: TextIO) -> Iterator[None]:
    """All workarounds at once, around any call into RecBole (see the module docstring)."""
    import scipy.sparse as sp
    with contextlib.ExitStack() as stack:
        stack.enter_context(_global_state())
        stack.enter_context(captured_output(stream))
        stack.enter_context(numpy_aliases())
        if not hasattr(sp.dok_matrix, "_update"):
            stack.enter_context(_patched(sp.dok_matrix, "_update", _dok_update))
        stack.enter_context(_patched(rb.Dataset, "_fill_nan", _fill_nan_fixed(rb)))
        if _pandas_agg_len_is_scalar():
            import pandas as pd
            stack.enter_context(_patched(pd.Series, "agg", _agg_len_elementwise(pd.Series.agg)))
        stack.enter_context(_patched(rb.trainer_module, "get_tensorboard",
                                     lambda logger=None: NullWriter()))
        yield

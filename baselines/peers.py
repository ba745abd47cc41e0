"""Shared by the peer-library families (`implicit:<Model>`, `cornac:<Model>`): install hints,
hyperparameter checks against the library's own defaults, the train-only index space, contained
side effects, and the mapping of library scores back onto harness candidates.

Index space: a library sees only the users and items that have a training interaction, numbered
in increasing harness order (`TrainIndex`). Scores: items the library never saw are -inf (it
cannot score them); users it never saw score 0 on every item it knows; a NaN from the library
becomes -inf and +inf the largest finite float, so every other score is finite.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import random
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from harness.errors import UserError, did_you_mean
from harness.recommender import Recommender
from harness.threads import contained
from harness.validation import Spec, problems

DEVICES = ("auto", "cpu", "cuda")


def require(module: str, pip: str, shown: str):
    """`module`, imported; UserError "recommender '<shown>': not installed: pip install <pip>"
    when it (or a parent package) is missing. Other import errors name the module and cause."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module == missing or module.startswith(missing + ".")):
            raise UserError(f"recommender '{shown}': not installed: pip install {pip}") from exc
        raise UserError(f"recommender '{shown}': importing '{module}' failed: {exc} "
                        f"(pip install {pip})") from exc


def resolve_name(family: str, name: str, names, aliases: dict | None = None) -> str:
    """The canonical variant for `name` (exact, an alias, or a case-insensitive match);
    UserError with did-you-mean otherwise."""
    aliases = aliases or {}
    if name in names:
        return name
    if name in aliases:
        return aliases[name]
    same = [n for n in [*names, *aliases] if n.lower() == name.lower()]
    if same:
        return aliases.get(same[0], same[0])
    raise UserError(f"unknown recommender '{family}:{name}'"
                    f"{did_you_mean(name, [*names, *aliases])}")


def _spec(default) -> Spec | None:
    """The accepted types for a library default (None: any)."""
    if default is None:
        return None
    if isinstance(default, bool):
        return Spec((bool,))
    if isinstance(default, float):
        return Spec((int, float))
    if isinstance(default, (list, tuple)):
        return Spec((list, tuple))
    if isinstance(default, (int, str, dict)):
        return Spec((type(default),))
    return None


def check_params(shown: str, params: dict, defaults: dict, fixed: dict[str, str]) -> dict:
    """Suite hyperparameters checked against a library's keyword defaults: a key the adapter
    sets (`fixed`: key -> reason) or an unknown key (did-you-mean) is a UserError, and so is a
    value whose type differs from the default's (an int passes for a float, a list for a
    tuple). Returns the parameters with lists turned into tuples where the default is one."""
    out = {}
    for key, value in params.items():
        if key in fixed:
            raise UserError(f"recommender '{shown}': parameter '{key}' is set by the adapter "
                            f"({fixed[key]})")
        if key not in defaults:
            raise UserError(f"recommender '{shown}' has no parameter '{key}'"
                            f"{did_you_mean(key, set(defaults) - set(fixed))}")
        spec = _spec(defaults[key])
        found = problems(value, spec) if spec is not None else []
        if found:
            raise UserError(f"recommender '{shown}': parameter '{key}' {found[0][1]} like the "
                            f"library's default {defaults[key]!r}")
        out[key] = tuple(value) if isinstance(defaults[key], tuple) else value
    return out


def check_device(shown: str, device) -> str:
    if device not in DEVICES:
        raise UserError(f"recommender '{shown}': device must be 'auto', 'cpu' or 'cuda', got "
                        f"{device!r}{did_you_mean(str(device), DEVICES)}")
    return device


class TrainIndex:
    """Harness indices <-> a library's compact indices: the users and items with at least one
    training interaction, numbered in increasing harness order. `matrix` is the binary
    training matrix in the compact space (CSR, float32)."""

    def __init__(self, split):
        x = split.train.csr()
        self.users = np.flatnonzero(np.diff(x.indptr))
        self.items = np.flatnonzero(np.bincount(x.indices, minlength=x.shape[1]))
        self.user_of = np.full(x.shape[0], -1, np.int64)
        self.user_of[self.users] = np.arange(len(self.users))
        self.item_of = np.full(x.shape[1], -1, np.int64)
        self.item_of[self.items] = np.arange(len(self.items))
        self.matrix = sp.csr_matrix(x[self.users][:, self.items], dtype=np.float32)

    def local(self, users: torch.Tensor, items: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(compact user ids, compact item ids) with -1 for ones the library never saw."""
        return (self.user_of[users.long().numpy()], self.item_of[items.long().numpy()])


def assemble(n_users: int, lu: np.ndarray, li: np.ndarray, known_scores) -> torch.Tensor:
    """(len(lu), len(li)) float32 harness scores from `known_scores`, the library's scores of
    the known users (lu >= 0, in order) on the known items (li >= 0, in order); unknown items
    -inf, unknown users 0, NaN -inf, +inf the largest float32."""
    ku, ki = lu >= 0, li >= 0
    out = torch.zeros((n_users, len(li)), dtype=torch.float32)
    if ku.any() and ki.any():
        s = torch.as_tensor(np.asarray(known_scores, dtype=np.float32))
        s = torch.nan_to_num(s, nan=-torch.inf, posinf=torch.finfo(torch.float32).max)
        out[torch.from_numpy(np.flatnonzero(ku))[:, None], torch.from_numpy(np.flatnonzero(ki))] = s
    out[:, torch.from_numpy(~ki)] = -torch.inf
    return out


@contextlib.contextmanager
def library_call(record: dict | None = None):
    """Run a library call with thread settings (torch, BLAS/OpenMP pools) and the global RNG
    states (random, numpy, torch) restored afterwards, and its console output and warnings
    captured; yields a StringIO holding the output."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    buffer = io.StringIO()
    try:
        with contained(record), warnings.catch_warnings(), \
                contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])


class PeerRecommender(Recommender):
    """Base of a peer-library family: `fit` builds the `TrainIndex` and calls `_fit(matrix)`
    inside `library_call`; `score` maps harness (users, items) to the compact ids, calls
    `_score(known users, known items) -> (n, m) array` inside `library_call`, and assembles
    harness scores (`assemble`). `info` gets the library's name and version, the device, and
    which thread settings the library changed (restored)."""

    family = ""

    def __init__(self, model: str, device: str = "auto", seed: int = 0, **params):
        super().__init__(seed)
        self.spec, self.params = self.check_variant(model, {**params, "device": device})
        self.model_name = self.spec["name"]
        self.device_choice = device
        self.device = "cpu"
        self.lib = None
        self.log = ""
        self.info: dict = {}

    @classmethod
    def check_variant(cls, model: str, params: dict) -> tuple[dict, dict]:
        """(model spec, library parameters) for '<family>:<model>'; UserError when wrong."""
        raise NotImplementedError

    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, split, dataset) -> None:
        self.index = TrainIndex(split)
        record: dict = {}
        with library_call(record) as out:
            for seeded in (random.seed, np.random.seed, torch.manual_seed):
                seeded(int(self.seed))  # for models without a seed parameter; restored after
            self._fit(self.index.matrix)
        self.log += out.getvalue()
        self.info.update({"library": self.spec["library"], "model": self.model_name,
                          "device": self.device, "threads_restored": record.get("restored")})

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.lib is None:
            raise RuntimeError("score() called before fit()")
        lu, li = self.index.local(users, items)
        known = None
        if (lu >= 0).any() and (li >= 0).any():
            with library_call() as out:
                known = self._score(lu[lu >= 0], li[li >= 0])
            self.log += out.getvalue()
        return assemble(len(users), lu, li, known)

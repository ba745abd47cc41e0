"""`cornac:<Model>`: Cornac's top-N models for implicit feedback trained on the harness split
and scored on harness candidates.

    [[models]]
    name = "cornac:BPR"
    params = { k = 64, max_iter = 100, learning_rate = 0.05, lambda_reg = 0.01 }

Models (`MODELS`): BPR, WBPR, MMMF (pairwise matrix factorization, Cython), EASE, MostPop, HPF
(Poisson factorization), WMF (needs TensorFlow), GMF, MLP, NeuMF (neural collaborative
filtering; the adapter's default backend is "pytorch" instead of Cornac's "tensorflow"), VAECF,
BiVAECF, IBPR (PyTorch). Rating-prediction models (MF, PMF, SVD, NMF, ItemKNN/UserKNN's
weighted rating averages) are not offered: on one value per (user, item) they rank nothing.
Hyperparameters are the keyword arguments of Cornac's classes, checked at suite load against
their defaults; `seed` comes from the suite's seeds (the global RNGs are also seeded for models
without one, and restored afterwards), `use_gpu` from `device`; names, verbosity and
pretrained weights are the adapter's. Cornac sees the train part as its Dataset (one rating 1
per pair, in the compact index space of baselines/peers.py) and the valid pairs of known users
and items as `val_set` (used by models with early stopping).

score(u, ·) = Cornac's own `score(u)` for each known user (one call per user), restricted to
the candidates. Unknown users and items: see baselines/peers.py.
"""

from __future__ import annotations

import inspect
from collections import OrderedDict

import numpy as np
import torch

from baselines.peers import (PeerRecommender, TrainIndex, check_device, check_params, require,
                             resolve_name)
from harness.errors import UserError

PIP = "cornac==3.0.1"
NCF = {"backend": "pytorch"}
# variant -> default overrides
MODELS = {"BPR": {}, "WBPR": {}, "MMMF": {}, "EASE": {}, "MostPop": {}, "HPF": {}, "WMF": {},
          "GMF": NCF, "MLP": NCF, "NeuMF": NCF, "VAECF": {}, "BiVAECF": {}, "IBPR": {}}
# real-valued parameters whose Cornac default is written as an int
REAL = {"EASE": {"lamb"}, "WMF": {"a"}}
# extra packages a model needs: variant -> (module, pip name)
NEEDS = {"WMF": ("tensorflow", "tensorflow")}
FIXED = {
    "model": "given by the registry name 'cornac:<Model>'",
    "name": "the registry name is the model's name",
    "trainable": "the adapter always trains", "verbose": "output is captured by the adapter",
    "seed": "use the suite's seeds", "init_params": "no pretrained parameters",
    "use_gpu": "use the adapter's 'device' parameter",
    "B": "no pretrained weights", "U": "no pretrained weights",
}
OWN = ("device",)


def cornac_dataset(cornac, index: TrainIndex, pairs, seed: int):
    """A cornac Dataset of (compact user, compact item) pairs with rating 1, in the full compact
    id space of `index` (ids are the string of the compact number)."""
    u, i = pairs
    uid = OrderedDict((str(k), k) for k in range(len(index.users)))
    iid = OrderedDict((str(k), k) for k in range(len(index.items)))
    return cornac.data.Dataset(num_users=len(uid), num_items=len(iid), uid_map=uid, iid_map=iid,
                               uir_tuple=(np.asarray(u, int), np.asarray(i, int),
                                          np.ones(len(u), float)), seed=seed)


class CornacRecommender(PeerRecommender):
    """A Cornac model (`cornac:BPR`, `cornac:EASE`, `cornac:NeuMF`, ...; see `MODELS`).
    `device`: "auto" (CUDA when available, for models with `use_gpu`; NCF's PyTorch backend
    picks CUDA by itself when present), "cpu" or "cuda"."""

    family = "cornac"

    def __init__(self, model: str = "BPR", device: str = "auto", seed: int = 0, **params):
        super().__init__(model, device, seed, **params)

    @classmethod
    def check_variant(cls, model: str, params: dict) -> tuple[dict, dict]:
        """({name, library, class}, Cornac parameters) for 'cornac:<model>'; UserError for an
        unknown or unsupported model, a missing library or backend, or an unknown, fixed or
        mistyped parameter."""
        cornac = require("cornac", PIP, f"cornac:{model}")
        if model not in MODELS and hasattr(cornac.models, model):
            raise UserError(f"recommender 'cornac:{model}' is not offered (rating prediction, "
                            f"side information or sequences); offered: {', '.join(MODELS)}")
        name = resolve_name("cornac", model, MODELS)
        shown = f"cornac:{name}"
        klass = getattr(cornac.models, name)
        defaults = {k: p.default for k, p in inspect.signature(klass.__init__).parameters.items()
                    if k != "self" and p.default is not inspect.Parameter.empty}
        defaults.update({k: float(defaults[k]) for k in REAL.get(name, ())})
        device = check_device(shown, params.get("device", "auto"))
        lib = {**MODELS[name], **check_params(
            shown, {k: v for k, v in params.items() if k not in OWN}, defaults, FIXED)}
        if name in NEEDS:
            require(NEEDS[name][0], NEEDS[name][1], shown)
        if lib.get("backend") == "tensorflow":
            require("tensorflow", "tensorflow", shown)
        elif "backend" in lib and lib["backend"] != "pytorch":
            raise UserError(f"recommender '{shown}': backend must be 'pytorch' or 'tensorflow', "
                            f"got {lib['backend']!r}")
        spec = {"name": name, "library": f"cornac {cornac.__version__}", "class": klass,
                "accepts": set(defaults), "device": device}
        return spec, lib

    def fit(self, split, dataset) -> None:
        self._valid = split.valid
        super().fit(split, dataset)

    def _fit(self, matrix) -> None:
        import cornac
        seed = int(self.seed)
        gpu = torch.cuda.is_available() if self.device_choice == "auto" else (
            self.device_choice == "cuda")
        if self.device_choice == "cuda" and not torch.cuda.is_available():
            raise UserError(f"recommender 'cornac:{self.model_name}': device 'cuda' requested "
                            "but CUDA is not available")
        kwargs = dict(self.params)
        accepts = self.spec["accepts"]
        for key, value in (("verbose", False), ("seed", seed), ("use_gpu", gpu)):
            if key in accepts:
                kwargs[key] = value
        self.device = "cuda" if gpu and ("use_gpu" in accepts or "backend" in kwargs) else "cpu"
        coo = matrix.tocoo()
        train = cornac_dataset(cornac, self.index, (coo.row, coo.col), seed)
        lu, li = self.index.local(torch.from_numpy(self._valid.user.astype(np.int64)),
                                  torch.from_numpy(self._valid.item.astype(np.int64)))
        keep = (lu >= 0) & (li >= 0)
        valid = (cornac_dataset(cornac, self.index, (lu[keep], li[keep]), seed)
                 if keep.any() else None)
        model = self.spec["class"](**kwargs)
        model.fit(train, valid)
        self.lib = model

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        out = np.empty((len(users), len(items)), np.float32)
        for row, u in enumerate(users):
            out[row] = np.asarray(self.lib.score(int(u)), dtype=np.float32).ravel()[items]
        return out

"""`implicit:<Model>`: the implicit library's models (ALS, BPR, LMF, item-item nearest
neighbours) trained on the harness split and scored on harness candidates.

    [[models]]
    name = "implicit:ALS"
    params = { factors = 64, regularization = 40.0, alpha = 6.0, iterations = 15 }

Hyperparameters are the keyword arguments of the library's own classes (checked at suite load
against their defaults; `random_state` comes from the suite's seeds, `use_gpu` from `device`,
`dtype` is float32). The training matrix is the binary train part in the library's compact
index space (see baselines/peers.py), one value 1 per (user, item): implicit's confidence for an
observed pair is `alpha` times that value (ALS: alpha = 1 + the native `als`'s alpha).
Fitting runs with BLAS limited to one thread, as implicit asks; thread settings, RNG states and
console output are restored or captured around every library call.

score(u, i): matrix factorization models, the dot product of implicit's user and item factors
(what its `recommend` ranks by); nearest-neighbour models, Σ over u's training items j of
similarity[j, i] (its `recommend` score). Unknown users and items: see baselines/peers.py.
"""

from __future__ import annotations

import inspect

import numpy as np

from baselines.peers import PeerRecommender, check_device, check_params, require, resolve_name
from harness.errors import UserError

PIP = "implicit==0.7.3"
# variant -> (module, class, GPU module or None)
MODELS = {
    "ALS": ("implicit.cpu.als", "AlternatingLeastSquares", "implicit.gpu.als"),
    "BPR": ("implicit.cpu.bpr", "BayesianPersonalizedRanking", "implicit.gpu.bpr"),
    "LMF": ("implicit.cpu.lmf", "LogisticMatrixFactorization", None),
    "CosineRecommender": ("implicit.nearest_neighbours", "CosineRecommender", None),
    "BM25Recommender": ("implicit.nearest_neighbours", "BM25Recommender", None),
    "TFIDFRecommender": ("implicit.nearest_neighbours", "TFIDFRecommender", None),
}
ALIASES = {"AlternatingLeastSquares": "ALS", "BayesianPersonalizedRanking": "BPR",
           "LogisticMatrixFactorization": "LMF", "Cosine": "CosineRecommender",
           "BM25": "BM25Recommender", "TFIDF": "TFIDFRecommender"}
FIXED = {
    "model": "given by the registry name 'implicit:<Model>'",
    "seed": "use the suite's seeds", "random_state": "use the suite's seeds",
    "use_gpu": "use the adapter's 'device' parameter",
    "dtype": "factors are float32",
}
OWN = ("device",)


class ImplicitRecommender(PeerRecommender):
    """An implicit model (`implicit:ALS`, `implicit:BPR`, `implicit:LMF`,
    `implicit:CosineRecommender`, `implicit:BM25Recommender`, `implicit:TFIDFRecommender`).
    `device`: "auto" (implicit's CUDA build when it has one and the model has a GPU version),
    "cpu" or "cuda"."""

    family = "implicit"

    def __init__(self, model: str = "ALS", device: str = "auto", seed: int = 0, **params):
        super().__init__(model, device, seed, **params)

    @classmethod
    def check_variant(cls, model: str, params: dict) -> tuple[dict, dict]:
        """({name, library, class, gpu}, library parameters) for 'implicit:<model>'; UserError
        for an unknown model, a missing library, or an unknown, fixed or mistyped parameter."""
        name = resolve_name("implicit", model, MODELS, ALIASES)
        shown = f"implicit:{name}"
        implicit = require("implicit", PIP, shown)
        module, cls_name, gpu = MODELS[name]
        klass = getattr(require(module, PIP, shown), cls_name)
        defaults = {k: p.default for k, p in inspect.signature(klass.__init__).parameters.items()
                    if k != "self" and p.default is not inspect.Parameter.empty}
        device = check_device(shown, params.get("device", "auto"))
        lib = check_params(shown, {k: v for k, v in params.items() if k not in OWN}, defaults,
                           FIXED)
        spec = {"name": name, "library": f"implicit {implicit.__version__}", "class": klass,
                "accepts": set(defaults), "gpu": gpu, "device": device}
        return spec, lib

    def _use_gpu(self) -> bool:
        import implicit.gpu
        has = bool(implicit.gpu.HAS_CUDA) and self.spec["gpu"] is not None
        if self.device_choice == "cuda" and not has:
            raise UserError(f"recommender 'implicit:{self.model_name}': device 'cuda' requested "
                            "but implicit has no CUDA build here (or no GPU version of it)")
        return has and self.device_choice in ("auto", "cuda")

    def _fit(self, matrix) -> None:
        from threadpoolctl import threadpool_limits
        gpu = self._use_gpu()
        self.device = "cuda" if gpu else "cpu"
        with threadpool_limits(1, "blas"):
            if gpu:
                klass = getattr(require(self.spec["gpu"], PIP, self.model_name),
                                self.spec["class"].__name__)
                accepted = inspect.signature(klass.__init__).parameters  # no CPU-only knobs
                model = klass(**{k: v for k, v in self.params.items() if k in accepted},
                              random_state=int(self.seed))
            else:
                extra = {"random_state": int(self.seed)} if self.spec["name"] in (
                    "ALS", "BPR", "LMF") else {}
                model = self.spec["class"](**self.params, **extra)
            model.fit(matrix, show_progress=False)
        self.lib = model.to_cpu() if gpu else model
        self.user_items = matrix

    def _score(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        m = self.lib
        if hasattr(m, "similarity"):  # item-item nearest neighbours
            return (self.user_items[users] @ m.similarity[:, items]).toarray()
        return np.asarray(m.user_factors)[users] @ np.asarray(m.item_factors)[items].T

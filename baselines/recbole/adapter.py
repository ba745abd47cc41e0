"""`recbole:<Model>`: a RecBole general recommender, trained by RecBole on the harness split
(sequential models: `baselines.recbole.sequential`)."""

from __future__ import annotations

import copy
import io
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from harness.errors import UserError
from harness.recommender import Recommender

from baselines.recbole import catalog
from baselines.recbole.compat import import_recbole, session

PARTS = ("train", "valid", "test")
DATASET = "harness"
EVAL_USERS_PER_BATCH = 256  # default eval_batch_size = this many users x items


def write_atomic(split, directory: Path) -> None:
    """`<dir>/harness/harness.{train,valid,test}.inter`: (user, item) pairs as tokens equal to
    the harness indices, tab-separated with RecBole's `name:type` header."""
    d = directory / DATASET
    d.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        inter = split.part(part)
        lines = [f"{u}\t{i}\n" for u, i in zip(inter.user.tolist(), inter.item.tolist())]
        (d / f"{DATASET}.{part}.inter").write_text(
            "user_id:token\titem_id:token\n" + "".join(lines), encoding="utf-8")


def index_map(tokens: np.ndarray, n: int) -> torch.Tensor:
    """harness index -> RecBole internal id (-1 when RecBole never saw it), from RecBole's
    `field2id_token` array (position 0 is the padding token)."""
    out = torch.full((n,), -1, dtype=torch.long)
    out[torch.from_numpy(tokens[1:].astype(np.int64))] = torch.arange(1, len(tokens))
    return out


class RecBoleRecommender(Recommender):
    """A RecBole general recommender (`recbole:BPR`, `recbole:LightGCN`, ...), trained with
    RecBole's own trainer on the harness's train part, with the valid part for RecBole's early
    stopping (`valid_metric`, `eval_step`, `stopping_step`); the state of the best validation
    is kept in memory and used for scoring.

    Hyperparameters are RecBole config keys given as keyword arguments (a suite's `params`
    table); they are checked at construction against RecBole's defaults for the model
    (`catalog.check_params`). RecBole's defaults apply except: `eval_batch_size` defaults to
    256 users per full-ranking batch, and `valid_metric`'s metric and cutoff are added to
    `metrics`/`topk` when missing. `device`: "auto" (CUDA when available), "cpu" or "cuda".
    RecBole's log (and any warning, print or progress bar during its calls) goes to `log_file`
    when given, else to a file in the run's temporary directory whose text is kept in
    `self.recbole_log`; the temporary directory is removed when `fit` returns or raises.

    score(u, i) = the model's `full_sort_predict` (or `predict`) for RecBole's ids of u and i.
    Items RecBole never saw (no interaction in any part of the split) score -inf; users it
    never saw score 0 for every item. Only (user, item) pairs are passed to RecBole: models
    that need ratings, timestamps or side features are not supported.
    """

    packages = ("recbole",)  # the wrapped library, recorded with its version in the manifest

    needs_timestamps: bool = False  # True for sequential variants (see `variant_class`)

    def __new__(cls, model: str = "BPR", *args, **kwargs):
        """`RecBoleRecommender(model=<sequential model>)` builds a `RecBoleSequential`."""
        return super().__new__(cls.variant_class(model) if cls is RecBoleRecommender else cls)

    @classmethod
    def variant_class(cls, model: str) -> type:
        """The adapter class for 'recbole:<model>': `RecBoleSequential` for RecBole's sequential
        models (it declares `needs_timestamps = True`), else this class."""
        if catalog.is_sequential(model):
            from baselines.recbole.sequential import RecBoleSequential
            return RecBoleSequential
        return cls

    def __init__(self, model: str = "BPR", device: str = "auto", log_file: str = "",
                 seed: int = 0, **params):
        super().__init__(seed)
        self.model_name = model
        self.model_class, self.params = self.check_variant(model, params)
        if device not in ("auto", "cpu", "cuda"):
            raise UserError(f"recommender 'recbole:{model}': device must be 'auto', 'cpu' or "
                            f"'cuda', got {device!r}")
        self.device_choice, self.log_file = device, log_file
        self.device = "cpu"
        self.keep_recbole_state = False  # set True before fit to keep loaders for recbole_evaluate
        self.recbole_log = ""
        self.info: dict = {}
        self.net = None

    @classmethod
    def check_variant(cls, model: str, params: dict) -> tuple[type, dict]:
        """(model class, params) for 'recbole:<model>' with RecBole hyperparameters `params`;
        UserError for an unknown or non-general model or an unknown or mistyped parameter.
        Needs no split, so a suite validator can call it; the adapter's own keyword arguments
        (device, log_file, seed) are skipped."""
        own = {"model", "device", "log_file", "seed"}
        return catalog.check_model(model), catalog.check_params(
            model, {k: v for k, v in params.items() if k not in own})

    # ---- configuration -------------------------------------------------------------------
    def _data_config(self, n_items: int) -> dict:
        """The config keys that describe the written files (overridden for sequences)."""
        return {"load_col": {"inter": ["user_id", "item_id"]},
                "eval_batch_size": EVAL_USERS_PER_BATCH * (n_items + 1)}

    def _write(self, split, directory: Path) -> None:
        write_atomic(split, directory)

    def _config_dict(self, data_path: Path, n_items: int) -> dict:
        cfg = {
            "data_path": str(data_path), "benchmark_filename": list(PARTS),
            "checkpoint_dir": str(data_path / "checkpoints"),
            "seed": int(self.seed), "reproducibility": True, "state": "INFO",
            "show_progress": False, "log_wandb": False, "save_dataset": False,
            "save_dataloaders": False,
            "use_gpu": self.device == "cuda", "gpu_id": "0" if self.device == "cuda" else "",
        }
        cfg.update(self._data_config(n_items))
        cfg.update(copy.deepcopy(self.params))
        base = catalog.defaults(self.model_name)
        valid_metric = str(cfg.get("valid_metric", base["valid_metric"]))
        metric, _, k = valid_metric.partition("@")
        metrics = cfg.get("metrics", base["metrics"])
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        if metric.lower() not in {m.lower() for m in metrics}:
            cfg["metrics"] = metrics + [metric]
        topk = cfg.get("topk", base["topk"])
        topk = [topk] if isinstance(topk, int) else list(topk)
        if k.isdigit() and int(k) not in topk:
            cfg["topk"] = topk + [int(k)]
        return cfg

    def _stream(self, workdir: Path | None):
        if self.log_file:
            Path(self.log_file).parent.mkdir(parents=True, exist_ok=True)
            return open(self.log_file, "a", encoding="utf-8")
        if workdir is not None:
            return open(workdir / "recbole.log", "w+", encoding="utf-8")
        return io.StringIO()

    def _keep_log(self, stream) -> None:
        if not self.log_file:
            stream.seek(0)
            self.recbole_log += stream.read()

    # ---- training ------------------------------------------------------------------------
    def fit(self, split, dataset) -> None:
        rb = import_recbole()
        if self.device_choice == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        else:
            self.device = self.device_choice
            if self.device == "cuda" and not torch.cuda.is_available():
                raise UserError(f"recommender 'recbole:{self.model_name}': device 'cuda' "
                                "requested but CUDA is not available")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="harness-recbole-") as tmp:
            workdir = Path(tmp)
            self.workdir = workdir  # for tests: gone once fit returns
            stream = self._stream(workdir)
            try:
                with session(rb, stream):
                    self._fit(rb, split, workdir)
            except Exception as exc:
                if self.log_file:
                    exc.add_note(f"RecBole log: {self.log_file}")
                else:
                    stream.seek(0)
                    tail = "".join(stream.readlines()[-15:])
                    exc.add_note(f"last lines of RecBole's log:\n{tail}")
                raise
            finally:
                self._keep_log(stream)
                stream.close()
        self.info["fit_s"] = round(time.perf_counter() - t0, 4)

    def _fit(self, rb, split, workdir: Path) -> None:
        self._write(split, workdir)
        cfg = self._config_dict(workdir, split.dataset.n_items)
        # a config file, not config_dict: RecBole eval()s the string values of config_dict
        cfg_file = workdir / "config.yaml"
        cfg_file.write_text(yaml.safe_dump(cfg), encoding="utf-8")
        config = rb.Config(model=self.model_name, dataset=DATASET,
                           config_file_list=[str(cfg_file)])
        config.final_config_dict["device"] = torch.device(self.device)
        rb.init_seed(int(self.seed), True)
        data = rb.create_dataset(config)
        logging.getLogger().info("%s\n%s", config, data)  # as RecBole's quick_start logs them
        if max(config["topk"]) > data.item_num:
            raise UserError(f"recommender 'recbole:{self.model_name}': RecBole's evaluator needs "
                            f"every topk <= {data.item_num} (items + padding) on this split, got "
                            f"topk={config['topk']} (set 'topk' and 'valid_metric')")
        train, valid, test = rb.data_preparation(config, data)
        rb.init_seed(int(self.seed), True)
        net = self.model_class(config, train.dataset).to(config["device"])
        trainer = rb.get_trainer(config["MODEL_TYPE"], self.model_name)(config, net)
        best: dict = {}
        snapshot = trainer.epochs > 1

        def keep_best(epoch, verbose=True, **kwargs):
            """Replaces Trainer._save_checkpoint: the best state stays in memory (no torch.save,
            so no torch.load later)."""
            best["epoch"] = epoch
            if snapshot:
                best["state"] = {k: v.detach().clone() for k, v in net.state_dict().items()}
                best["other"] = copy.deepcopy(net.other_parameter())

        trainer._save_checkpoint = keep_best
        has_valid = len(split.valid) > 0
        score, result = trainer.fit(train, valid if has_valid else None, saved=True,
                                    show_progress=False)
        epochs_run = len(trainer.train_loss_dict)
        last = max(trainer.train_loss_dict, default=-1)
        if "state" in best and best["epoch"] != last:
            net.load_state_dict(best["state"])
            net.load_other_parameter(best["other"])
        for attr in ("restore_user_e", "restore_item_e"):  # embeddings cached by some models
            if getattr(net, attr, None) is not None:
                setattr(net, attr, None)
        net.eval()
        self.net, self.config = net, config
        self.uid_field, self.iid_field = data.uid_field, data.iid_field
        self.user_map = index_map(data.field2id_token[data.uid_field], split.dataset.n_users)
        self.item_map = index_map(data.field2id_token[data.iid_field], split.dataset.n_items)
        self.n_items_rb = data.item_num
        self._trainer = trainer if self.keep_recbole_state else None
        self._loaders = {"valid": valid, "test": test} if self.keep_recbole_state else None
        self.info = {
            "recbole_model": self.model_name, "device": self.device,
            "best_epoch": best["epoch"] + 1 if "epoch" in best else None,
            "epochs_run": epochs_run,
            "valid_metric": config["valid_metric"],
            "best_valid_score": None if not has_valid else float(score),
            "log_file": self.log_file or None,
        }

    # ---- scoring -------------------------------------------------------------------------
    def _full_scores(self, uids: torch.Tensor) -> torch.Tensor:
        """(len(uids), RecBole item_num) scores for RecBole user ids."""
        dev, n = torch.device(self.device), self.n_items_rb
        try:
            s = self.net.full_sort_predict(self._rb.Interaction({self.uid_field: uids.to(dev)}))
        except NotImplementedError:  # pairwise predict, at most eval_batch_size pairs a call
            step = max(1, int(self.config["eval_batch_size"]) // n)
            parts = []
            for chunk in uids.to(dev).split(step):
                parts.append(self.net.predict(self._rb.Interaction({
                    self.uid_field: chunk.repeat_interleave(n),
                    self.iid_field: torch.arange(n, device=dev).repeat(len(chunk))})))
            s = torch.cat(parts)
        s = s.view(len(uids), -1).detach().cpu()
        return s if s.is_floating_point() else s.float()

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("score() called before fit()")
        self._rb = import_recbole()
        u = self.user_map[users.long()]
        i = self.item_map[items.long()]
        known = u >= 0
        full = None
        if known.any():
            stream = self._stream(None)
            try:
                with session(self._rb, stream), torch.no_grad():
                    full = self._full_scores(u[known])
            finally:
                self._keep_log(stream)
                stream.close()
        out = torch.zeros((len(users), len(items)),
                          dtype=torch.float32 if full is None else full.dtype)
        if full is not None:
            out[known] = full[:, i.clamp(min=0)]
        out[:, i < 0] = -torch.inf
        return out

    def recbole_evaluate(self, part: str = "test") -> dict:
        """RecBole's own evaluator on `part` ('valid' or 'test') with the kept best state —
        for cross-checking the harness's metrics. Needs `keep_recbole_state = True` before fit."""
        if not self._loaders:
            raise RuntimeError("set keep_recbole_state = True before fit() to use this")
        rb = import_recbole()
        stream = self._stream(None)
        try:
            with session(rb, stream):
                result = self._trainer.evaluate(self._loaders[part], load_best_model=False,
                                                show_progress=False)
        finally:
            self._keep_log(stream)
            stream.close()
        return {k: float(v) for k, v in result.items()}

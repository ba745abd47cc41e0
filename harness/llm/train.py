"""The one training machinery of the fine-tuned recommenders (llm-hybrid, llm-embed-ft,
llm-classifier, llm-rank-ft): parameter checks, seeding, device and precision, a step/epoch
budget with early stopping on the split's valid part, progress bars, training cost, and a
safetensors weight cache verified by sha256.

Determinism: every random draw of a fit comes from generators seeded by the model's `seed`
(data order, negatives) or from the global torch RNG inside `seeded(seed)`, which forks it and
restores it afterwards (weight init, LoRA init, dropout). On CPU with a fixed thread count two
fits with the same seed are bitwise identical.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import torch

from harness.errors import UserError, did_you_mean
from harness.io import write_json
from harness.options import FitOptions
from harness.progress import bar

FORMAT = 1  # bump when a model's saved state changes meaning: old cache entries stop matching


# ---------------------------------------------------------------- parameter checks (at __init__)

def check_choice(model: str, key: str, value, choices) -> None:
    """UserError naming the parameter and the valid choices when `value` is not one of them."""
    if value not in choices:
        raise UserError(f"recommender '{model}': {key} = {value!r} is not valid"
                        f"{did_you_mean(str(value), [str(c) for c in choices])}")


def check_positive(model: str, **values) -> None:
    """UserError for any budget-like parameter that is <= 0 (None means 'no limit')."""
    for key, value in values.items():
        if value is not None and not value > 0:
            raise UserError(f"recommender '{model}': {key} must be > 0, got {value!r}")


@dataclass(frozen=True)
class Budget:
    """How long to train: `epochs` passes over the training examples, stopped early after
    `max_steps` optimizer steps (None: no step limit) or after `patience` validations without
    improvement (0: no early stopping); validation every `eval_every` epochs and after the last."""

    epochs: int = 1
    max_steps: int | None = None
    patience: int = 0
    eval_every: int = 1

    def check(self, model: str) -> "Budget":
        check_positive(model, epochs=self.epochs, max_steps=self.max_steps,
                       eval_every=self.eval_every)
        if self.patience < 0:
            raise UserError(f"recommender '{model}': patience must be >= 0, got {self.patience}")
        return self


# ---------------------------------------------------------------- options, device, seeding

def fit_options(model) -> FitOptions:
    """The typed fit options handed to `model` (FitOptions), else built from its legacy
    `runtime` dict, else the defaults."""
    opts = getattr(model, "fit_options", None)
    if isinstance(opts, FitOptions):
        return opts
    rt = getattr(model, "runtime", None) or {}
    known = {k: rt[k] for k in ("cache_dir", "use_cache", "quiet", "device") if k in rt}
    if known.get("cache_dir") is not None:
        known["cache_dir"] = Path(known["cache_dir"])
    return FitOptions(**known)


def training_device(preference: str = "auto", options: FitOptions | None = None) -> torch.device:
    """The model's own `device` parameter when not 'auto', else the fit options' device, else
    CUDA when present, else CPU."""
    if preference != "auto":
        return torch.device(preference)
    if options is not None and options.device:
        return torch.device(options.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device):
    """bf16 autocast on CUDA (fp32 master weights), nothing on CPU (fp32)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None):
    """Seed the global torch RNG (CPU, and the CUDA device when given) for the block and restore
    the previous RNG state afterwards, so a fit is reproducible and touches no one else's RNG."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def trainable_copy(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """A deep copy of a (memoized, shared) base model in fp32 on `device`, in train mode: the
    base object handed out by the loader is never modified."""
    m = copy.deepcopy(module)
    return m.to(device=device, dtype=torch.float32).train()


# ---------------------------------------------------------------- the training loop

@dataclass
class Step:
    """What one training step reports: the loss to minimize, examples and tokens in the batch."""

    loss: torch.Tensor
    samples: int
    tokens: int = 0


@dataclass
class TrainResult:
    """The state kept (best validation, else last) and the training cost."""

    state: dict[str, torch.Tensor]
    info: dict = field(default_factory=dict)


def train(params: list, batches: Callable[[int], Iterable],
          step: Callable[[object], Step], budget: Budget, *, lr: float,
          weight_decay: float = 0.0, snapshot: Callable[[], dict[str, torch.Tensor]],
          validate: Callable[[], float] | None = None, steps_per_epoch: int | None = None,
          desc: str = "train", quiet: bool = True, device: torch.device | None = None,
          optimizer: str = "adamw") -> TrainResult:
    """Minimize `step(batch).loss` over `batches(epoch)` (epoch = 1, 2, ...) with AdamW (or Adam
    with `weight_decay` as plain L2 when optimizer='adam') within `budget`. `params`: tensors,
    or optimizer parameter groups (dicts, e.g. with their own lr).

    `validate()` (higher is better, e.g. NDCG@10 on split.valid) runs every `budget.eval_every`
    epochs and after the last; `snapshot()` copies the state to keep when it improves. Without
    `validate`, or with a single epoch (nothing to choose between), the last state is kept. Cost in `info`: train_s, steps, epochs_run, samples,
    samples_per_s, tokens and tokens_per_s (when steps report tokens), best_epoch, best_valid.
    """
    validate = None if budget.epochs == 1 else validate
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    opt = cls(params, lr=lr, weight_decay=weight_decay)
    first = params[0]["params"][0] if isinstance(params[0], dict) else params[0]
    device = device or first.device
    total = budget.epochs * steps_per_epoch if steps_per_epoch else None
    if total is not None and budget.max_steps:
        total = min(total, budget.max_steps)
    steps = samples = tokens = 0
    best, best_epoch, best_state, bad, epoch = None, 0, None, 0, 0
    history: list[float] = []
    stop = False
    t0 = time.perf_counter()
    with bar(total or 0, desc, quiet, unit="step") as pb:
        for epoch in range(1, budget.epochs + 1):
            for batch in batches(epoch):
                with autocast(device):
                    out = step(batch)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                steps, samples, tokens = steps + 1, samples + out.samples, tokens + out.tokens
                pb.update(1)
                if budget.max_steps and steps >= budget.max_steps:
                    stop = True
                    break
            last = stop or epoch == budget.epochs
            if validate is None or (epoch % budget.eval_every and not last):
                if stop:
                    break
                continue
            value = float(validate())
            history.append(round(value, 6))
            pb.set_postfix_str(f"valid {value:.4f}")
            if best is None or value > best:
                best, best_epoch, bad, best_state = value, epoch, 0, snapshot()
            else:
                bad += 1
                if budget.patience and bad >= budget.patience:
                    break
            if stop:
                break
    secs = time.perf_counter() - t0
    if best_state is None:
        best_state, best_epoch = snapshot(), epoch
    info = {"train_s": round(secs, 3), "steps": steps, "epochs_run": epoch,
            "best_epoch": best_epoch, "samples": samples,
            "samples_per_s": round(samples / max(secs, 1e-9), 1),
            "best_valid": None if best is None else round(best, 6),
            "valid_history": history, "device": str(device),
            "precision": "bf16-autocast" if device.type == "cuda" else "fp32"}
    if tokens:
        info.update(tokens=tokens, tokens_per_s=round(tokens / max(secs, 1e-9), 1))
    return TrainResult(best_state, info)


def valid_metric(split, model, max_users: int | None = None, n_negatives: int | None = None,
                 k: int = 10, seed: int = 0) -> Callable[[], float] | None:
    """A `validate` function: mean NDCG@k on `split.valid` for `model` as it is at call time,
    on full candidates (`n_negatives` None: model.score) or on sampled ones (held-out positives
    + `n_negatives` uniform negatives, through model.score_candidates when it has one), over at
    most `max_users` seeded users. None when the split has no valid interactions."""
    from harness.candidates import full_candidates, sampled_candidates
    from harness.evaluate import evaluate
    if len(split.valid) == 0:
        return None
    if n_negatives is None:
        cand = full_candidates(split, "valid", max_users=max_users, seed=seed)
    else:
        cand = sampled_candidates(split, "valid", n_negatives, "uniform", seed, max_users)
    if len(cand.users) == 0:
        return None

    def run() -> float:
        with torch.no_grad():
            ev = evaluate(model.score, cand, [k], ["ndcg"], batch_size=1024, model=model)
        return float(ev.values[("ndcg", k)].mean())
    return run


NEGATIVE_SAMPLERS = ("uniform", "popularity")


def sample_negatives(users: torch.Tensor, pos_keys: torch.Tensor, n_items: int,
                     pool: torch.Tensor, gen: torch.Generator,
                     weights: torch.Tensor | None = None, rounds: int = 5) -> torch.Tensor:
    """One negative item per entry of `users`, drawn from `pool` uniformly (weights None) or
    proportionally to `weights` (e.g. train counts + 1), redrawn up to `rounds` times where it is
    a positive; `pos_keys` = sorted user * n_items + item of the training positives."""
    def draw(n: int) -> torch.Tensor:
        if weights is None:
            return pool[torch.randint(len(pool), (n,), generator=gen)]
        return pool[torch.multinomial(weights, n, replacement=True, generator=gen)]
    neg = draw(len(users))
    todo = torch.arange(len(users))
    for _ in range(rounds):
        if len(todo) == 0 or len(pos_keys) == 0:
            break
        keys = users[todo] * n_items + neg[todo]
        at = torch.searchsorted(pos_keys, keys).clamp(max=len(pos_keys) - 1)
        todo = todo[pos_keys[at] == keys]
        if len(todo):
            neg[todo] = draw(len(todo))
    return neg


# ---------------------------------------------------------------- weight cache

def weights_key(model: str, fingerprint: str, params: dict, seed: int) -> str:
    """sha256 of (model, data fingerprint, hyperparameters, seed, format), 24 hex chars."""
    blob = json.dumps({"model": model, "data": fingerprint, "params": params, "seed": seed,
                       "format": FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class WeightCache:
    """Trained weights as `<dir>/weights/<model>-<key>.safetensors` plus a JSON record (sha256
    of the file, training info). `get` returns (state, record) or None; a file whose bytes do not
    match the recorded sha256, or that cannot be read, is listed in `corrupt` and ignored."""

    def __init__(self, directory: Path | None, model: str, key: str):
        self.dir = Path(directory) / "weights" if directory is not None else None
        stem = f"{model.replace(':', '-').replace('/', '-')}-{key}"
        self.path = self.dir / f"{stem}.safetensors" if self.dir else None
        self.meta = self.dir / f"{stem}.json" if self.dir else None
        self.corrupt: list[str] = []

    def get(self) -> tuple[dict[str, torch.Tensor], dict] | None:
        from safetensors.torch import load_file
        if self.path is None or not (self.path.exists() and self.meta.exists()):
            return None
        try:
            record = json.loads(self.meta.read_text())
            if _sha256(self.path) != record["sha256"]:
                raise ValueError("sha256 mismatch")
            state = load_file(str(self.path))
        except Exception:  # noqa: BLE001 - unreadable or altered counts as corrupt
            self.corrupt.append(str(self.path))
            return None
        return state, record

    def put(self, state: dict[str, torch.Tensor], record: dict) -> None:
        from safetensors.torch import save_file
        if self.path is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        write_json(self.meta, {**record, "sha256": _sha256(self.path)})


def cached_training(model, name: str, fingerprint: str, params: dict,
                    fit: Callable[[], TrainResult],
                    expected: dict[str, tuple] | None = None
                    ) -> tuple[dict[str, torch.Tensor], dict]:
    """Trained state for (name, data fingerprint, params, model.seed): from the weight cache
    when present and intact, else `fit()` (then stored). Returns (state, info) where info has
    `weights_cache` ('hit', 'miss', 'bypassed' (use_cache off: retrained and overwritten),
    'off' (no cache_dir) or 'corrupt, retrained: <file>'), the key, the
    training cost of the run that produced the weights, and `tokens_processed` = tokens
    trained in this call (0 on a hit). `expected` (name -> shape): a cached state with other
    names or shapes counts as corrupt."""
    opts = fit_options(model)
    key = weights_key(name, fingerprint, params, model.seed)
    cache = WeightCache(opts.cache_dir, name, key)
    hit = cache.get() if opts.use_cache else None
    if hit is not None and expected is not None and (
            {k: tuple(v.shape) for k, v in hit[0].items()} != {k: tuple(v) for k, v in
                                                              expected.items()}):
        cache.corrupt.append(f"{cache.path} (names or shapes differ)")
        hit = None
    if hit is not None:
        state, record = hit
        info = {**record.get("train", {}), "weights_cache": "hit", "weights_key": key,
                "tokens_processed": 0}
        return state, info
    result = fit()
    status = "off" if cache.path is None else ("miss" if opts.use_cache else "bypassed")
    if cache.corrupt:
        status = f"corrupt, retrained: {', '.join(cache.corrupt)}"
    cache.put(result.state, {"model": name, "data": fingerprint, "params": params,
                             "seed": model.seed, "train": result.info})
    info = {**result.info, "weights_cache": status, "weights_key": key,
            "tokens_processed": result.info.get("tokens", 0)}
    return result.state, info

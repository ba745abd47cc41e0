"""SASRec (Kang & McAuley 2018): causal self-attention over a user's last `max_len` items."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.candidates import full_candidates
from harness.errors import UserError
from harness.evaluate import evaluate

from baselines.sequences import SequentialRecommender, left_aligned, ordered_sequences


class _Block(nn.Module):
    """Post-LN transformer block: x = LN(x + drop(attn(x))); x = LN(x + drop(W2 gelu(W1 x)))."""

    def __init__(self, d: int, heads: int, inner: int, p_hidden: float, p_attn: float,
                 eps: float):
        super().__init__()
        self.heads, self.p_attn = heads, p_attn
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d, eps=eps), nn.LayerNorm(d, eps=eps)
        self.ff1, self.ff2 = nn.Linear(d, inner), nn.Linear(inner, d)
        self.drop = nn.Dropout(p_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.p_attn if self.training else 0.0)
        x = self.ln1(x + self.drop(self.out(a.transpose(1, 2).reshape(b, n, d))))
        return self.ln2(x + self.drop(self.ff2(F.gelu(self.ff1(x)))))


class _Net(nn.Module):
    """Item (+1 for padding id 0) and position embeddings, LN, dropout, causal blocks."""

    def __init__(self, n_items: int, max_len: int, d: int, layers: int, heads: int, inner: int,
                 p_hidden: float, p_attn: float, eps: float, init_std: float):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(max_len, d)
        self.ln, self.drop = nn.LayerNorm(d, eps=eps), nn.Dropout(p_hidden)
        self.blocks = nn.ModuleList(_Block(d, heads, inner, p_hidden, p_attn, eps)
                                    for _ in range(layers))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, init_std)
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) padded item ids (+1) -> (B, L, d) hidden states."""
        x = self.item(seq) + self.pos.weight[: seq.shape[1]]
        x = self.drop(self.ln(x))
        for block in self.blocks:
            x = block(x)
        return x

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """Scores h·e_i for every real item (padding excluded)."""
        return h @ self.item.weight[1:].T


def windows(seqs: list[np.ndarray], max_len: int, stride: int):
    """Training windows over each sequence s (items +1): inputs s[a:a+max_len], labels
    s[a+1:a+1+max_len]. The first window starts at 0 and covers targets 1..max_len; later
    windows end `stride` targets further (the last one at the sequence end) and only their
    last `stride` (new) labels count, so every target is predicted once per epoch, from the
    same context as at scoring time when it is among the first max_len items and otherwise
    from at least max_len - stride + 1 items. Labels that do not count are -100."""
    inputs, labels = [], []
    for s in seqs:
        n = len(s)
        if n < 2:
            continue
        s = torch.from_numpy(s + 1)
        end, first = min(n - 1, max_len), True  # `end` = number of targets covered so far
        while True:
            a = max(0, end - max_len)
            x = torch.zeros(max_len, dtype=torch.long)
            y = torch.full((max_len,), -100, dtype=torch.long)
            x[: end - a] = s[a:end]
            y[: end - a] = s[a + 1:end + 1]
            if not first:
                y[: end - a - new] = -100
            inputs.append(x)
            labels.append(y)
            if end >= n - 1:
                break
            new = min(stride, n - 1 - end)
            end, first = end + new, False
    if not inputs:
        return torch.zeros((0, max_len), dtype=torch.long), torch.zeros((0, max_len),
                                                                          dtype=torch.long)
    return torch.stack(inputs), torch.stack(labels)


class SASRec(SequentialRecommender):
    """score(u, i) = h_uᵀ e_i, where h_u is the last hidden state of a causal transformer over
    the last `max_len` items of u's time-ordered history (train items for the valid target,
    train + valid items for test), with learned item and position embeddings (post-LN blocks,
    GELU feed-forward of width `inner_size`, as RecBole's SASRec). Trained with Adam on the
    softmax cross-entropy of the next item at every position of windows over each user's train
    sequence (see `windows`); `batch_size` counts target positions (as RecBole's prefixes): a
    step holds the number of windows that carry batch_size targets on average. Every
    `eval_every` epochs NDCG@10 on the valid part (full ranking, train history excluded) is
    measured; the best state is kept and training stops after `patience` evaluations without
    improvement. Users without history score train popularity. Deterministic on CPU for a seed
    and thread count (all randomness from the seed, global RNG state restored after fit);
    `device` "auto" = the harness's device option, else CUDA when available."""

    param_ranges = {"max_len": "[1, inf)", "hidden_size": "[1, inf)", "n_layers": "[1, inf)",
                    "n_heads": "[1, inf)", "inner_size": "[1, inf)",
                    "hidden_dropout": "[0, 1)", "attn_dropout": "[0, 1)",
                    "layer_norm_eps": "(0, inf)", "init_std": "(0, inf)", "lr": "(0, inf)",
                    "weight_decay": "[0, inf)", "batch_size": "[1, inf)", "stride": "[1, inf)",
                    "epochs": "[1, inf)", "patience": "[1, inf)", "eval_every": "[1, inf)"}

    def __init__(self, max_len: int = 50, hidden_size: int = 64, n_layers: int = 2,
                 n_heads: int = 2, inner_size: int = 256, hidden_dropout: float = 0.5,
                 attn_dropout: float = 0.5, layer_norm_eps: float = 1e-12,
                 init_std: float = 0.02, lr: float = 0.001, weight_decay: float = 0.0,
                 batch_size: int = 2048, stride: int = 10, epochs: int = 300,
                 patience: int = 10, eval_every: int = 1, device: str = "auto", seed: int = 0):
        super().__init__(seed)
        if hidden_size % n_heads:
            raise UserError(f"recommender 'sasrec': hidden_size ({hidden_size}) must be a "
                            f"multiple of n_heads ({n_heads})")
        if device not in ("auto", "cpu", "cuda"):
            raise UserError(f"recommender 'sasrec': device must be 'auto', 'cpu' or 'cuda', "
                            f"got {device!r}")
        self.max_len, self.stride = max_len, min(stride, max_len)
        self.arch = dict(d=hidden_size, layers=n_layers, heads=n_heads, inner=inner_size,
                         p_hidden=hidden_dropout, p_attn=attn_dropout, eps=layer_norm_eps,
                         init_std=init_std)
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.epochs, self.patience, self.eval_every = epochs, patience, eval_every
        self.device_choice, self.device = device, "cpu"
        self.net: _Net | None = None
        self.info: dict = {}

    def _pick_device(self) -> str:
        if self.device_choice != "auto":
            if self.device_choice == "cuda" and not torch.cuda.is_available():
                raise UserError("recommender 'sasrec': device 'cuda' requested but CUDA is not "
                                "available")
            return self.device_choice
        opt = getattr(getattr(self, "fit_options", None), "device", None)
        return opt or ("cuda" if torch.cuda.is_available() else "cpu")

    # ---- training ------------------------------------------------------------------------
    def fit(self, split, dataset) -> None:
        t0 = time.perf_counter()
        self.device = self._pick_device()
        self._set_histories(split)
        dev = torch.device(self.device)
        rng_devices = [dev.index or 0] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(int(self.seed))
            self._train(split, dev)
        self.info["fit_s"] = round(time.perf_counter() - t0, 4)

    def _train(self, split, dev: torch.device) -> None:
        n_items = split.dataset.n_items
        train_seqs = ordered_sequences(split, ("train",))
        x_all, y_all = windows(train_seqs, self.max_len, self.stride)
        net = _Net(n_items, self.max_len, **self.arch).to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        gen = self.generator()
        n_targets = int((y_all >= 0).sum())
        per_step = max(1, round(self.batch_size * len(x_all) / max(1, n_targets)))
        cand = full_candidates(split, "valid") if len(split.valid) else None
        cand = cand if cand is not None and len(cand.users) else None
        counts = np.bincount(split.train.item, minlength=n_items).astype(np.float32)
        self.popularity = torch.from_numpy(counts)
        self.net = net
        best, best_epoch, best_state, bad, epoch, curve = -1.0, 0, None, 0, 0, []
        for epoch in range(1, self.epochs + 1):
            net.train()
            order = torch.randperm(len(x_all), generator=gen)
            for start in range(0, len(order), per_step):
                b = order[start:start + per_step]
                x, y = x_all[b].to(dev), y_all[b].to(dev)
                keep = y >= 0
                h = net(x)[keep]
                loss = F.cross_entropy(net.logits(h), y[keep] - 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if cand is None or (epoch % self.eval_every and epoch != self.epochs):
                continue
            ndcg = self._valid_ndcg(cand)
            curve.append(round(ndcg, 5))
            if ndcg > best:
                best, best_epoch, bad = ndcg, epoch, 0
                best_state = copy.deepcopy(net.state_dict())
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if best_state is not None:
            net.load_state_dict(best_state)
        else:
            best_epoch = epoch
        net.eval()
        self.info = {"best_epoch": best_epoch, "epochs_run": epoch,
                     "best_valid_ndcg@10": None if cand is None else best,
                     "valid_ndcg@10_curve": curve, "train_windows": int(len(x_all)),
                     "train_targets": n_targets,
                     "device": self.device}

    def _valid_ndcg(self, cand) -> float:
        self.net.eval()
        hist = self._histories["valid"]
        fn = lambda u, i: self._scores([hist[int(v)] for v in u], i)  # noqa: E731
        ev = evaluate(fn, cand, [10], ["ndcg"], batch_size=1024)
        return float(ev.values[("ndcg", 10)].mean())

    # ---- scoring -------------------------------------------------------------------------
    @torch.no_grad()
    def _scores(self, hist: list[np.ndarray], items: torch.Tensor) -> torch.Tensor:
        """(len(hist), len(items)) scores from ordered histories (popularity when empty)."""
        seq, length = left_aligned(hist, self.max_len, offset=1)
        out = torch.empty((len(hist), len(items)), dtype=torch.float32)
        warm = length > 0
        if warm.any():
            dev = torch.device(self.device)
            h = self.net(seq[warm].to(dev))
            last = h[torch.arange(int(warm.sum()), device=dev), length[warm].to(dev) - 1]
            e = self.net.item.weight[1:][items.long().to(dev)]
            out[warm] = (last @ e.T).float().cpu()
        if (~warm).any():
            out[~warm] = self.popularity[items.long()]
        return out

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("score() called before fit()")
        self.net.eval()
        return self._scores(self.history(users), items)

    def score_candidates(self, users: torch.Tensor, lists: torch.Tensor) -> torch.Tensor:
        """(B, C) scores for per-user candidate lists: all-item scores gathered per row."""
        n = len(self.popularity)
        return self.score(users, torch.arange(n)).gather(1, lists.long())


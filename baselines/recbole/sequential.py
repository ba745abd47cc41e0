"""`recbole:<SequentialModel>` (SASRec, GRU4Rec, BERT4Rec, Caser, ...): trained by RecBole on the
harness's train part as time-ordered item sequences, scored from each user's history."""

from __future__ import annotations

import numpy as np
import torch

from baselines.recbole import catalog
from baselines.recbole.adapter import DATASET, RecBoleRecommender
from baselines.recbole.compat import import_recbole, session
from baselines.sequences import SequentialRecommender, left_aligned

EVAL_ROWS_PER_BATCH = 256  # sequential eval_batch_size counts (history, target) rows
HEADER = "user_id:token\titem_id_list:token_seq\titem_id:token\n"


def _line(user: int, hist: np.ndarray, item: int) -> str:
    return f"{user}\t{' '.join(map(str, hist.tolist()))}\t{item}\n"


def sequence_rows(histories: dict, split, part: str, max_len: int) -> list[str]:
    """Rows (user, last `max_len` history items, target) of RecBole's sequential benchmark
    format. train: every prefix of each user's time-ordered train sequence -> the next train
    item (RecBole's own augmentation). valid/test: each held-out interaction with the history
    the harness scores from (train; train + valid), skipped when that history is empty."""
    rows = []
    if part == "train":
        for u, seq in enumerate(histories["valid"]):
            for t in range(1, len(seq)):
                rows.append(_line(u, seq[max(0, t - max_len):t], int(seq[t])))
        return rows
    inter = split.part(part)
    hist = histories[part]
    order = np.lexsort((np.arange(len(inter)),
                        inter.timestamp if inter.timestamp is not None else np.zeros(len(inter)),
                        inter.user))
    for r in order:
        u = int(inter.user[r])
        if len(hist[u]):
            rows.append(_line(u, hist[u][-max_len:], int(inter.item[r])))
    return rows


class RecBoleSequential(RecBoleRecommender, SequentialRecommender):
    """A RecBole sequential recommender (`recbole:SASRec`, `recbole:GRU4Rec`, ...).

    RecBole trains on every prefix of each user's time-ordered train sequence (the last
    `MAX_ITEM_LIST_LENGTH` items before each train item, predicting it), early-stops on rows
    (train history -> each valid item) with its own evaluator, and keeps the best state in
    memory, as for general models. `MAX_ITEM_LIST_LENGTH` is capped at the longest history in
    the split (`info["max_len"]`). Losses without negatives (CE) get
    `train_neg_sample_args = None` unless the suite sets it.

    score(u, i) = the model's `full_sort_predict` (or `predict`) on u's last
    MAX_ITEM_LIST_LENGTH items before the scoring target (train for valid, train + valid for
    test; `scoring_target()`). Users with an empty history score 0; items RecBole never saw
    score -inf. A history view (`set_history_view`, see `SequentialRecommender`) replaces the
    train part of the histories; items RecBole never saw are left out of them.
    """

    needs_timestamps = True

    def _data_config(self, n_items: int) -> dict:
        params = {**catalog.defaults(self.model_name), **self.params}
        loss = params.get("loss_type")
        pairwise = getattr(getattr(self.model_class, "input_type", None), "name", "") == "PAIRWISE"
        cfg = {"load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
               "alias_of_item_id": ["item_id_list"],
               "eval_args": {"split": {"RS": [0.8, 0.1, 0.1]}, "group_by": "user",
                             "order": "TO", "mode": "full"},
               "eval_batch_size": EVAL_ROWS_PER_BATCH,
               "MAX_ITEM_LIST_LENGTH": self.max_len}
        needs_negatives = loss == "BPR" or (loss is None and pairwise)
        if not needs_negatives and "train_neg_sample_args" not in self.params:
            cfg["train_neg_sample_args"] = None
        return cfg

    def _write(self, split, directory) -> None:
        self._set_histories(split)
        wanted = int(self.params.get("MAX_ITEM_LIST_LENGTH",
                                     catalog.defaults(self.model_name)["MAX_ITEM_LIST_LENGTH"]))
        longest = max((len(h) for h in self._histories["test"]), default=1)
        self.max_len = max(1, min(wanted, longest))
        d = directory / DATASET
        d.mkdir(parents=True, exist_ok=True)
        self.rows_written = {}
        for part in ("train", "valid", "test"):
            rows = sequence_rows(self._histories, split, part, self.max_len)
            self.rows_written[part] = len(rows)
            (d / f"{DATASET}.{part}.inter").write_text(HEADER + "".join(rows), encoding="utf-8")

    def _fit(self, rb, split, workdir) -> None:
        super()._fit(rb, split, workdir)
        self.info.update(max_len=self.max_len, rows=dict(self.rows_written),
                         scoring_target=self.scoring_target())

    # ---- scoring -------------------------------------------------------------------------
    def set_history_view(self, histories) -> None:
        if histories is not None and hasattr(self, "_histories"):
            known = self.item_map.numpy() >= 0
            histories = [h[known[h]] for h in map(np.asarray, histories)]
        super().set_history_view(histories)

    def _interaction(self, users: torch.Tensor, hist: list[np.ndarray]):
        items = self.item_map.numpy()
        seq, length = left_aligned([items[h] for h in hist], self.max_len)
        dev = torch.device(self.device)
        return self._rb.Interaction({
            self.net.USER_ID: self.user_map[users.long()].clamp(min=0).to(dev),
            self.net.ITEM_SEQ: seq.to(dev), self.net.ITEM_SEQ_LEN: length.to(dev)})

    def _seq_scores(self, inter, n_rows: int) -> torch.Tensor:
        """(n_rows, RecBole item_num) scores for prepared sequence rows."""
        dev, n = torch.device(self.device), self.n_items_rb
        try:
            s = self.net.full_sort_predict(inter)
        except NotImplementedError:  # pairwise predict, row by row over all items
            parts = []
            for r in range(n_rows):
                row = inter[torch.tensor([r]).repeat(n)]
                row.update(self._rb.Interaction({self.net.ITEM_ID: torch.arange(n, device=dev)}))
                parts.append(self.net.predict(row))
            s = torch.cat(parts)
        s = s.view(n_rows, -1).detach().cpu()
        return s if s.is_floating_point() else s.float()

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.net is None:
            raise RuntimeError("score() called before fit()")
        self._rb = import_recbole()
        hist = self.history(users)
        warm = torch.tensor([len(h) > 0 for h in hist], dtype=torch.bool)
        i = self.item_map[items.long()]
        full = None
        if warm.any():
            rows = torch.nonzero(warm).squeeze(1)
            stream = self._stream(None)
            try:
                with session(self._rb, stream), torch.no_grad():
                    inter = self._interaction(users[rows], [hist[int(r)] for r in rows])
                    full = self._seq_scores(inter, len(rows))
            finally:
                self._keep_log(stream)
                stream.close()
        out = torch.zeros((len(users), len(items)),
                          dtype=torch.float32 if full is None else full.dtype)
        if full is not None:
            out[warm] = full[:, i.clamp(min=0)]
        out[:, i < 0] = -torch.inf
        return out

    def score_candidates(self, users: torch.Tensor, lists: torch.Tensor) -> torch.Tensor:
        """(B, C) scores for per-user candidate lists: all-item scores gathered per row."""
        n = len(self.item_map)
        return self.score(users, torch.arange(n)).gather(1, lists.long())

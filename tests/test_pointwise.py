"""Pointwise metrics (per-user AUC, GAUC, global AUC, log loss) against scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from harness.pointwise import GlobalAUC, gauc, global_auc, midranks, pointwise_values


def _batch(seed: int, b: int = 40, c: int = 25, ties: bool = True):
    rng = np.random.default_rng(seed)
    probs = rng.uniform(0.02, 0.98, (b, c))
    if ties:  # coarse values: many tied scores inside a row
        probs = np.round(probs * 8) / 8 * 0.96 + 0.02
    rel = rng.random((b, c)) < 0.2
    valid = rng.random((b, c)) < 0.85
    rel[0] = False                     # a user without positives
    rel[1] = valid[1]                  # a user without negatives
    valid[2] = False                   # a user without candidates
    scores = np.where(valid, probs, -np.inf)
    return (torch.from_numpy(scores), torch.from_numpy(rel), torch.from_numpy(valid), probs)


@pytest.mark.parametrize("ties", [False, True])
def test_per_user_auc_and_log_loss_equal_sklearn(ties):
    scores, rel, valid, probs = _batch(0, ties=ties)
    out = pointwise_values(scores, rel, valid, calibrated=True)
    for u in range(len(scores)):
        v = valid[u].numpy()
        y, p = rel[u].numpy()[v], probs[u][v]
        if y.any() and not y.all():
            assert out["auc"][u] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        else:
            assert np.isnan(out["auc"][u])
        if v.any():
            assert out["logloss"][u] == pytest.approx(log_loss(y, p, labels=[False, True]),
                                                      abs=1e-12)
        else:
            assert np.isnan(out["logloss"][u])
    assert "logloss" not in pointwise_values(scores, rel, valid, calibrated=False)


def test_gauc_excludes_and_counts_undefined_users():
    scores, rel, valid, probs = _batch(1)
    auc = pointwise_values(scores, rel, valid, calibrated=False)["auc"]
    g = gauc(auc)
    defined = [u for u in range(len(scores))
               if rel[u][valid[u]].any() and not rel[u][valid[u]].all()]
    ref = np.mean([roc_auc_score(rel[u].numpy()[valid[u].numpy()],
                                 probs[u][valid[u].numpy()]) for u in defined])
    assert g["gauc"] == pytest.approx(ref, abs=1e-12)
    assert g["n_users"] == len(defined) and g["n_excluded"] == len(scores) - len(defined)
    assert g["n_excluded"] >= 3  # users 0, 1, 2 above
    w = valid.sum(1).numpy().astype(float)
    ok = ~np.isnan(auc)
    assert gauc(auc, w)["gauc"] == pytest.approx((w[ok] * auc[ok]).sum() / w[ok].sum())


def test_global_auc_equals_sklearn_over_all_pairs_and_batches():
    scores, rel, valid, probs = _batch(2)
    v = valid.numpy()
    ref = roc_auc_score(rel.numpy()[v], probs[v])
    assert global_auc(scores, rel, valid) == pytest.approx(ref, abs=1e-12)
    acc = GlobalAUC()
    for start in range(0, len(scores), 7):  # accumulated batch by batch
        sl = slice(start, start + 7)
        acc.add(scores[sl], rel[sl], valid[sl])
    assert acc.value() == pytest.approx(ref, abs=1e-12)


def test_hand_computed_ties_and_own_minus_inf():
    # positives 0.5 and -inf; negatives 0.5, 0.2, -inf: pairs (p > n, tie = 1/2):
    # 0.5 vs {0.5: 1/2, 0.2: 1, -inf: 1} ; -inf vs {0.5: 0, 0.2: 0, -inf: 1/2} -> 3 / 6
    scores = torch.tensor([[0.5, -torch.inf, 0.5, 0.2, -torch.inf, 9.0]])
    rel = torch.tensor([[True, True, False, False, False, True]])
    valid = torch.tensor([[True, True, True, True, True, False]])  # 9.0 is padding
    assert pointwise_values(scores, rel, valid, False)["auc"][0] == pytest.approx(0.5)
    r = midranks(scores, valid)[0].tolist()
    assert r == [4.5, 1.5, 4.5, 3.0, 1.5, 0.0]


def test_calibrated_scores_must_be_probabilities():
    scores = torch.tensor([[0.2, 1.5]])
    t = torch.tensor([[True, False]])
    with pytest.raises(ValueError, match="probabilities"):
        pointwise_values(scores, t, torch.ones_like(t), calibrated=True)

"""A recommender that reads user attributes, for the fairness pass's counterfactual tests
(referenced as 'tests.fairness_plugins:GenderBoost')."""

import torch

from harness.recommender import Recommender


class GenderBoost(Recommender):
    """Train popularity, plus `bonus` on even-numbered items for users whose `gender` is 'F' in
    the user table it reads: the dataset's, or the one of the text view it was handed
    (`set_text_view`). Every view it receives is logged in `views` (None = clean)."""

    uses_text = True
    instances: list = []

    def __init__(self, bonus: float = 1000.0, seed: int = 0):
        super().__init__(seed)
        self.bonus, self.view, self.views = bonus, None, []
        GenderBoost.instances.append(self)

    def fit(self, split, dataset):
        self.counts = torch.from_numpy(split.train.csr().sum(0).A1).float()
        self.table = dataset.users

    def set_text_view(self, view):
        self.view = view
        self.views.append(None if view is None else view.label)

    def score(self, users, items):
        table = self.view.users if self.view is not None and self.view.users is not None \
            else self.table
        female = torch.from_numpy((table["gender"].to_numpy()[users.numpy()] == "F")).float()
        boost = (items % 2 == 0).float() * self.bonus
        return self.counts[items].expand(len(users), -1) + female[:, None] * boost[None, :]

"""RecBole adapter: `recbole:<Model>` runs any RecBole general recommender on a harness split.

`adapter.py` holds the recommender, `catalog.py` the model names and hyperparameter checks,
`compat.py` every workaround for running RecBole 1.2.1 with numpy 2, pandas 3, scipy 1.17 and
torch >= 2.6 (all scoped to RecBole's calls and restored afterwards). recbole itself is imported
on first use, not when this package is imported.
"""

from baselines.recbole.adapter import RecBoleRecommender

__all__ = ["RecBoleRecommender"]

"""Classic baseline recommenders (popularity, random, item-KNN, EASE, implicit ALS, BPR-MF).

Each module holds one `harness.recommender.Recommender` subclass; the registry imports them by
string ('baselines.pop:Pop', ...), so importing this package does nothing on its own.
"""

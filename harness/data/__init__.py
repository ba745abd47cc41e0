"""Datasets: RecBole atomic files (ml-100k from the installed recbole), synthetic, preprocessing."""

from harness.data.registry import DATASETS, load_dataset

__all__ = ["DATASETS", "load_dataset"]

"""Fairness metrics (pure functions) and the parts of the fairness pass.

    config.py          the `[fairness]` suite table: parse, validate, preflight, JSON Schema
    items.py           exposure and popularity: coverage, Gini, entropy, ARP, APLT, lift, shares
    groups.py          user groupings (fields, buckets, activity) and item groupings
    stats.py           group gaps: permutation test, stratified bootstrap CI
    similarity.py      FaiRLLM list similarity (Jaccard, SERP*, PRAG*), SNSR, SNSV
    exposure.py        item-side rows from the accuracy pass's top-k lists
    usergroups.py      user-side rows from the accuracy pass's per-user values (Holm per table)
    counterfactual.py  counterfactual user texts for recommenders that read text
    leaderboard.py     the fairness section of leaderboard.md

The pass itself is harness/passes/fairness.py; definitions and citations: docs/fairness.md.
"""

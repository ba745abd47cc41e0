"""A tiny pass used by tests/test_passes.py: one module, registered by one registry line."""

import pandas as pd

from harness.passes.base import Pass, PassResult


class CandidateCountPass(Pass):
    """Counts, per cell, the evaluated users and the relevant items in their top-k lists."""

    name = "tiny"
    table = "tiny"
    order = 50
    requires = ("accuracy",)

    def parse(self, checker, raw, suite_info):
        checker.keys("tiny", raw, {"fail": bool})
        return bool(raw.get("fail", False))

    def run(self, ctx):
        if ctx.spec:
            raise RuntimeError("tiny pass failing on purpose")
        ev = ctx.earlier["accuracy"].artifacts["evaluation"]
        listed = int((ev.top_items >= 0).sum())
        rows = pd.DataFrame([{"metric": "users", "k": 0, "value": float(len(ev.users)),
                              "n_users": len(ev.users)},
                             {"metric": "listed_items", "k": 0, "value": float(listed),
                              "n_users": len(ev.users)}])
        return PassResult(rows, None, {"listed": listed})

    def higher_is_better(self, metric):
        return {"users": True, "listed_items": True}.get(metric)

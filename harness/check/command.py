"""`harness check NEW_RUN --against REFERENCE_RUN`: the command line (exit 0 / 1 / 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.check.config import TESTS, CheckSettings
from harness.argtypes import csv_list, seed_list
from harness.errors import UserError

DESCRIPTION = """Compare a finished run with a reference run, row by row (dataset, split
fingerprint, candidate protocol, model, metric, k, slice, perturbation). A quality metric
regresses when it is worse by more than --tolerance (absolute) and a one-sided paired test over
users rejects at --alpha; an efficiency metric (pass 'efficiency') when its median is worse by
more than --latency-tolerance (relative). Defaults come from the new run's suite ([check]
table), then built-in values; flags win. Exit 0: pass, 1: regression, 2: the runs cannot be
compared (unfinished run, split fingerprint mismatch, missing rows, bad input)."""


def add_parser(sub) -> None:
    c = sub.add_parser("check", help="compare a run with a reference run (CI gate)",
                       description=DESCRIPTION)
    c.add_argument("new_run", type=Path, metavar="NEW_RUN")
    c.add_argument("--against", type=Path, required=True, metavar="REFERENCE_RUN",
                   help="the reference run directory (e.g. results/reference/quick)")
    c.add_argument("--tolerance", type=float, help="largest allowed absolute drop of a quality "
                                                   "metric (default: suite, else 0.01)")
    c.add_argument("--alpha", type=float, help="level of the one-sided paired test "
                                               "(default: suite, else 0.05)")
    c.add_argument("--test", choices=TESTS, help="paired test over users (default: suite, "
                                                 "else t)")
    c.add_argument("--metrics", type=csv_list, help="rows that gate: ndcg@10,recall@10, or ndcg "
                                                "(every k), or latency_p90_ms (default: all)")
    c.add_argument("--latency-tolerance", type=float,
                   help="largest allowed relative worsening of an efficiency metric "
                        "(default: suite, else 0.25)")
    c.add_argument("--suite", type=Path, help="read the [check] table from this suite file "
                                              "(default: the new run's own suite)")
    c.add_argument("--models", type=csv_list, help="compare only these model labels")
    c.add_argument("--seeds", type=seed_list, help="compare only these seeds")
    c.add_argument("--json", type=Path, metavar="FILE", help="also write the result as JSON")
    c.add_argument("--changed-only", action="store_true",
                   help="print only rows whose value changed or whose verdict is not ok")
    c.add_argument("--update-reference", action="store_true",
                   help="replace REFERENCE_RUN with NEW_RUN (after an intended change) and "
                        "print what changed; never done otherwise")


def _flags(args) -> CheckSettings:
    for name in ("tolerance", "latency_tolerance"):
        v = getattr(args, name)
        if v is not None and v < 0:
            raise UserError(f"--{name.replace('_', '-')} must be >= 0, got {v}")
    if args.alpha is not None and not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be in (0, 1), got {args.alpha}")
    if args.metrics is not None:
        from harness.check.config import check_selector
        for sel in args.metrics:
            problem = check_selector(sel)
            if problem:
                raise UserError(f"--metrics: {problem}")
    return CheckSettings().with_flags(tolerance=args.tolerance, alpha=args.alpha,
                                      test=args.test, metrics=args.metrics,
                                      latency_tolerance=args.latency_tolerance)


def run(args) -> int:
    from harness.check.compare import compare_runs
    from harness.check.render import render_text
    from harness.check.update import update_reference
    from harness.io import write_json
    try:
        settings = _flags(args)
        if args.update_reference:
            if args.models or args.seeds:
                raise UserError("--update-reference replaces the whole reference: do not "
                                "combine it with --models/--seeds")
            text, _ = update_reference(args.new_run, args.against, settings, args.suite)
            print(text)
            return 0
        result = compare_runs(args.new_run, args.against, settings, args.suite, args.models,
                              args.seeds)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if args.json:
            write_json(args.json, {"status": "error", "exit_code": 2, "error": str(exc),
                                   "reference": str(args.against), "new": str(args.new_run)})
        return 2
    print(render_text(result, args.changed_only))
    if args.json:
        write_json(args.json, result.to_dict())
    return result.exit_code

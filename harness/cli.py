"""Command line: `harness run`, `harness report`, `harness check`, `harness list`,
`harness schema`, `harness datasets show`."""

from __future__ import annotations

import argparse
import sys
from functools import lru_cache
from pathlib import Path

from harness.argtypes import csv_list, seed_list
from harness.errors import UserError


@lru_cache(maxsize=1)  # built once per process (argparse setup costs ~20 ms)
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="harness", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run (or resume) a suite")
    r.add_argument("suite", type=Path)
    r.add_argument("--out", type=Path, default=Path("results"), help="results root")
    r.add_argument("--models", type=csv_list, help="comma-separated model labels to run")
    r.add_argument("--seeds", type=seed_list, help="comma-separated seeds (overrides the suite)")
    r.add_argument("--run-id", help="run directory name (default: hash of suite + version)")
    r.add_argument("--cache-dir", type=Path, help="split cache (default: OUT/.cache)")
    r.add_argument("--save-runs", action="store_true", help="also write TREC run/qrels files")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--no-cache", action="store_true",
                   help="bypass the embedding cache (splits are still cached and verified)")
    r.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run cells in N local worker processes (default 1: in this process); "
                        "with --executor ray: the CPUs of a locally started Ray")
    r.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="local (this process, or --workers processes) or ray (each cell a Ray "
                        "task; needs pip install 'recsys-harness[ray]'); see docs/scale.md")
    r.add_argument("--address", help="with --executor ray: join this cluster (auto, HOST:PORT "
                                     "or ray://HOST:PORT) instead of starting a local Ray")
    _report_parser(sub)
    from harness.check.command import add_parser as _check_parser
    _check_parser(sub)
    sub.add_parser("list", help="list recommenders (with parameters and defaults), datasets, "
                                "splits, metrics")
    sc = sub.add_parser("schema", help="the suite format as a JSON Schema (draft 2020-12)",
                        description="Print the JSON Schema of suite files, for editors (e.g. "
                                    "a '#:schema suite.schema.json' line in a suite, or "
                                    "VS Code / taplo settings).")
    sc.add_argument("--out", type=Path, help="write to this file instead of stdout")
    d = sub.add_parser("datasets", help="dataset commands")
    dsub = d.add_subparsers(dest="dcommand", required=True)
    show = dsub.add_parser("show", help="users, items, interactions, density, side fields")
    show.add_argument("name", help="registry name or path to a directory of atomic files")
    show.add_argument("--min-rating", type=float)
    show.add_argument("--kcore", type=int, default=0)
    return p


def _report_parser(sub) -> None:
    from harness.report import FORMATS
    from harness.report.stats import TESTS
    r = sub.add_parser("report", help="leaderboards with CIs and paired tests, plots",
                       description="Full report of finished run directories (merged when "
                                   "their split fingerprints agree): one table per dataset, "
                                   "split fingerprint, target and candidate protocol.")
    r.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    r.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/report for one "
                                            "run; required for several)")
    r.add_argument("--format", type=csv_list, default=["md"],
                   help=f"comma-separated, of {', '.join(FORMATS)} (default md)")
    r.add_argument("--reference", help="model every other is tested against (default: each "
                                       "table's top model by its first column)")
    r.add_argument("--metrics", type=csv_list, help="columns, e.g. ndcg@10,recall@10 or ndcg "
                                                "(every k); default all")
    r.add_argument("--test", default="t", choices=TESTS, help="paired test over users")
    r.add_argument("--alpha", type=float, default=0.05,
                   help="significance level (Holm) and 1-alpha CI level")
    r.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no CI)")
    r.add_argument("--permutations", type=int, default=10000,
                   help="sign flips of the randomization test")
    r.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and permutations")
    r.add_argument("--no-plots", action="store_true", help="tables only")


def cmd_report(args) -> int:
    from harness.report import FORMATS, ReportOptions, build_report, write_report
    from harness.report.render import to_markdown
    bad = [f for f in args.format if f not in FORMATS]
    if bad:
        raise UserError(f"--format: '{bad[0]}' is not one of {', '.join(FORMATS)}")
    if args.out is None and len(args.run_dirs) > 1:
        raise UserError("--out is required when reporting several run directories")
    out = args.out or args.run_dirs[0] / "report"
    opts = ReportOptions(args.reference, tuple(args.metrics) if args.metrics else None,
                         args.test, args.alpha, args.bootstrap, args.seed, args.permutations)
    report = build_report(args.run_dirs, opts)
    files = write_report(report, out, args.format, plots=not args.no_plots)
    print(to_markdown(report, out))
    print("wrote: " + ", ".join(str(f) for f in files if f.suffix != ".svg"), file=sys.stderr)
    return 0


def cmd_run(args) -> int:
    from harness.results import leaderboard_tables, to_markdown
    from harness.runner import run_suite
    from harness.suite import load_suite
    from harness.names import dir_name_problem
    from harness.suite import SEED
    from harness.validation import problems
    if args.run_id is not None and dir_name_problem(args.run_id):
        raise UserError(f"--run-id: {dir_name_problem(args.run_id)}")
    for seed in args.seeds or []:
        for _, msg in problems(seed, SEED):
            raise UserError(f"--seeds: {msg}")
    suite = load_suite(args.suite)
    res = run_suite(suite, args.out, args.models, args.seeds, args.save_runs, args.quiet,
                    args.run_id, args.cache_dir, use_cache=not args.no_cache,
                    executor=args.executor, workers=args.workers, address=args.address)
    k = 10 if 10 in suite.ks else max(suite.ks)
    for title, table in leaderboard_tables(res.metrics, [k], list(suite.metrics)):
        print(f"\n{title}\n{to_markdown(table)}")
    for f in res.failed:
        print(f"FAILED {f['cell']}: {f.get('error')}", file=sys.stderr)
    print(f"\nresults: {res.run_dir} ({res.manifest['n_cells']} cells, "
          f"{res.manifest['n_failed']} failed)")
    return 1 if res.failed else 0


def cmd_list(args) -> int:
    from harness.data.registry import DATASETS
    from harness.metrics import METRICS
    from harness.registry import available, clashes, describe, resolve
    from harness.splits import PROTOCOLS
    print("recommenders (parameter = default  range):")
    clash = clashes()
    for name, ref in sorted(available().items()):
        print(f"  {name:12s} {ref}")
        if name in clash:
            print(f"      error: {clash[name]}")
            continue
        try:
            params = describe(resolve(name))
        except UserError as exc:
            params = [f"(not available: {exc})"]
        for line in params:
            print(f"      {line}")
    print("  (or any 'module:Class' reference)")
    print("datasets:")
    for name, desc in DATASETS.items():
        print(f"  {name:12s} {desc}")
    print("  (or a path to a directory of RecBole atomic files)")
    print("splits:\n  " + "\n  ".join(PROTOCOLS))
    print("metrics:\n  " + "\n  ".join(METRICS))
    return 0


def cmd_schema(args) -> int:
    import json
    from harness.schema import suite_schema
    text = json.dumps(suite_schema(), indent=2, sort_keys=False) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def cmd_datasets_show(args) -> int:
    from harness.data import load_dataset
    opts = {"min_rating": args.min_rating, "kcore": args.kcore}
    ds = load_dataset(args.name, **opts)
    s = ds.summary()
    print(f"dataset       {s['name']}")
    for key in ("users", "items", "interactions"):
        print(f"{key:13s} {s[key]:,}")
    print(f"density       {s['density']:.4%}")
    print(f"item fields   {', '.join(s['item_fields']) or '-'}")
    print(f"user fields   {', '.join(s['user_fields']) or '-'}")
    print(f"rating        {'yes' if s['has_rating'] else 'no'}")
    print(f"timestamp     {'yes' if s['has_timestamp'] else 'no'}")
    print(f"fingerprint   {s['fingerprint']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "report":
            return cmd_report(args)
        if args.command == "check":
            from harness.check.command import run as cmd_check
            return cmd_check(args)
        if args.command == "list":
            return cmd_list(args)
        if args.command == "schema":
            return cmd_schema(args)
        return cmd_datasets_show(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`harness check NEW --against REF --update-reference`: replace a reference run, explicitly.

Never automatic: only this flag (or the pytest plugin's `--harness-update-reference`) writes a
reference. The new run must be finished and have no failed cell. What changed is reported
first (the rows whose value moved, rows added or removed, or why the runs could not be
compared, e.g. a new split), then the files are copied: `REFERENCE_FILES` that the new run
has, plus its suite file as `suite.toml` when it still hashes to the manifest's sha256.
manifest.json is removed first and written last, so an interrupted update leaves a reference
that `harness check` rejects as unfinished instead of a half-replaced one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from harness.check.compare import CheckError, CheckResult, compare_runs
from harness.check.config import CheckSettings
from harness.check.render import render_text
from harness.errors import UserError
from harness.io import _atomic
from harness.report.load import load_run

REFERENCE_FILES = ("metrics.parquet", "metrics.csv", "per_user.parquet", "leaderboard.md")


def _suite_copy(run_dir: Path, manifest: dict) -> Path | None:
    info = manifest.get("suite") or {}
    for path in (run_dir / "suite.toml", Path(info.get("file") or "")):
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == info.get("sha256"):
            return path
    return None


def _copy(src: Path, dst: Path) -> None:
    def write(tmp):
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)  # a committed file, not a private temp file
    _atomic(dst, write)


def update_reference(new_dir: Path, ref_dir: Path, settings: CheckSettings | None = None,
                     suite_file: Path | None = None) -> tuple[str, CheckResult | None]:
    """Describe what changes, then make `ref_dir` a copy of the finished run `new_dir`.
    Returns (the text printed by the CLI, the comparison when one was possible)."""
    new_dir, ref_dir = Path(new_dir), Path(ref_dir)
    try:
        new = load_run(new_dir)
    except UserError as exc:
        raise CheckError(f"new run: {exc}") from exc
    if new_dir.resolve() == ref_dir.resolve():
        raise CheckError(f"the new run and the reference are the same directory: {new_dir}")
    failed = [c["cell"] for c in new.manifest.get("cells", []) if c.get("status") != "ok"]
    if failed:
        raise CheckError(f"the new run {new_dir} has failed cells ({', '.join(failed)}); a "
                         "reference must be a complete run")
    lines, result = [], None
    if (ref_dir / "manifest.json").exists():
        try:
            result = compare_runs(new_dir, ref_dir, settings, suite_file)
            lines.append("what changes (the new run against the current reference; rows "
                         "whose value moved):")
            lines.append(render_text(result, changed_only=True))
            if result.rows["delta"].eq(0).all() and not result.added:
                lines.append("no metric value changed")
        except CheckError as exc:
            lines.append(f"the runs are not comparable row by row: {exc}")
    else:
        lines.append(f"no reference at {ref_dir} yet: creating it")
    opts = new.manifest.get("options") or {}
    if opts.get("models") or opts.get("seeds"):
        lines.append(f"note: the new run was restricted (models {opts.get('models')}, seeds "
                     f"{opts.get('seeds')}); the reference now holds only those")
    ref_dir.mkdir(parents=True, exist_ok=True)
    (ref_dir / "manifest.json").unlink(missing_ok=True)
    written = []
    for name in REFERENCE_FILES:
        if (new_dir / name).exists():
            _copy(new_dir / name, ref_dir / name)
            written.append(name)
        else:
            (ref_dir / name).unlink(missing_ok=True)
    suite = _suite_copy(new_dir, new.manifest)
    if suite is not None:
        _copy(suite, ref_dir / "suite.toml")
        written.append("suite.toml")
    _copy(new_dir / "manifest.json", ref_dir / "manifest.json")
    written.append("manifest.json")
    git = new.manifest.get("git") or {}
    lines.append(f"reference updated: {ref_dir} <- {new_dir} ({', '.join(written)}; commit "
                 f"{str(git.get('commit'))[:12]}{' dirty' if git.get('dirty') else ''})")
    return "\n".join(lines), result

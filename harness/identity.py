"""What code produced a cell: the harness (version, git commit, dirty state and a hash of the
uncommitted diff) and the recommender (its module's source hash, distribution and version).

A finished cell is resumed only when its recorded identity equals the current one; otherwise it
is recomputed and the run log says what changed.
"""

from __future__ import annotations

import hashlib
import inspect
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from harness import __version__, registry

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def harness_identity() -> dict:
    """{'version', 'commit', 'diff_sha256'} ('diff_sha256' hashes `git diff HEAD` of tracked
    files: None when the tree is clean or not a git checkout)."""
    out = {"version": __version__, "commit": None, "diff_sha256": None}
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return out
        out["commit"] = rev.stdout.strip()
        diff = subprocess.run(["git", "diff", "HEAD", "--no-color"], cwd=ROOT,
                              capture_output=True, timeout=30)
        if diff.stdout:
            out["diff_sha256"] = hashlib.sha256(diff.stdout).hexdigest()[:16]
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def distribution_of(module: str) -> tuple[str | None, str | None]:
    """(distribution name, version) that installed the top-level package of `module`."""
    top = module.split(".", 1)[0]
    dists = metadata.packages_distributions().get(top) or []
    for name in dists:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None, None


@lru_cache(maxsize=None)
def recommender_identity(name: str) -> dict:
    """{'class', 'distribution', 'version', 'source_sha256', 'packages'} of a registry name,
    'family:variant' or 'module:Class' reference. 'packages' are the versions of the libraries
    an adapter declares it wraps (`packages = ("recbole",)` on the class)."""
    cls = registry.resolve(name)
    module = cls.__module__
    dist, version = distribution_of(module)
    try:
        source = inspect.getsourcefile(cls)
        sha = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source else None
    except (TypeError, OSError):
        sha = None
    wrapped = {}
    for pkg in getattr(cls, "packages", ()) or ():
        try:
            wrapped[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            wrapped[pkg] = None
    return {"class": f"{module}:{cls.__qualname__}", "distribution": dist, "version": version,
            "source_sha256": sha, "packages": wrapped}


def clear() -> None:
    """Forget memoized identities (a run computes them afresh: code may have changed since)."""
    harness_identity.cache_clear()
    recommender_identity.cache_clear()


def cell_identity(model_name: str) -> dict:
    return {"harness": harness_identity(), "recommender": recommender_identity(model_name)}


def changes(old: dict | None, new: dict) -> list[str]:
    """Human-readable differences between two identities ('' list when equal)."""
    if not old:
        return ["no code identity recorded (cell from an older harness)"]
    out = []
    for part in ("harness", "recommender"):
        a, b = old.get(part, {}), new.get(part, {})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{part}.{key}: {a.get(key)} -> {b.get(key)}")
    return out

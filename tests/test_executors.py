"""Executors: the same results in-process, in worker processes and as Ray tasks; worker crashes,
time limits and user shards; bad input. Synthetic data, real baselines, a real local Ray."""

import json
import pickle
import subprocess
import sys
import time
from dataclasses import replace

import pandas as pd
import pytest

from harness.cli import main
from harness.executors.shards import shard_ranges
from harness.options import FitOptions
from harness.runner import run_suite, select
from harness.suite import load_suite, parse_suite

BASE = """
[suite]
name = "{name}"
seeds = [0]
[[datasets]]
name = "synthetic"
n_users = 120
n_items = 80
n_interactions = 2000
[[splits]]
protocol = "random_holdout"
[evaluation]
ks = [5, 10]
batch_size = 32
"""
CLASSIC = """
[[models]]
name = "pop"
[[models]]
name = "random"
[[models]]
name = "itemknn"
[[models]]
name = "ease"
[[models]]
name = "als"
[[models]]
name = "bpr"
params = {epochs = 3}
[[models]]
name = "tests.plugins:Crashing"
label = "crashing"
[execution.models.itemknn]
shards = 3
"""


def _tables(run_dir):
    m = pd.read_parquet(run_dir / "metrics.parquet").drop(columns=["run_id"])
    return m, pd.read_parquet(run_dir / "per_user.parquet")


def test_same_results_in_process_workers_and_ray(tmp_path, write_suite, monkeypatch):
    """Bit-identical metrics and per-user rows whichever executor ran the cells; a crashing
    model fails only its cell everywhere; the manifest says where each cell ran."""
    import ray  # noqa: F401  (installed by the test set-up: tested for real, never skipped)
    # code identity taken once: edits to a shared working tree must not defeat the resume
    from harness.identity import cell_identity
    frozen: dict = {}
    monkeypatch.setattr("harness.runner.cell_identity",
                        lambda name: frozen.setdefault(name, cell_identity(name)))
    # a model whose process dies on its first fit: retried in workers and under Ray (in-process
    # it would end the test's own process, so that run leaves it out)
    dies = (f'[[models]]\nname = "tests.scale_plugins:Die"\nlabel = "die-once"\n'
            f'params = {{marker = "{tmp_path / "died"}"}}\n')
    suite = load_suite(write_suite(BASE.format(name="ex") + CLASSIC + dies))
    out = tmp_path / "out"
    runs = {}
    for kind, run_id, kwargs in [
            ("in-process", "a", {"models": [m.label for m in suite.models][:-1]}),
            ("processes", "b", {"workers": 2}), ("ray", "c", {"executor": "ray", "workers": 2})]:
        (tmp_path / "died").unlink(missing_ok=True)
        t0 = time.monotonic()
        runs[kind] = run_suite(suite, out, quiet=True, run_id=run_id, **kwargs)
        print(f"{kind}: {time.monotonic() - t0:.1f} s")
    import ray
    assert not ray.is_initialized()  # the run shut down the Ray it started
    ref_m, ref_pu = _tables(runs["in-process"].run_dir)
    assert len(ref_m) == 6 * 2 * 6 and ref_pu["cell"].nunique() == 6
    for kind, res in runs.items():
        m, pu = _tables(res.run_dir)
        pd.testing.assert_frame_equal(m[m.model != "die-once"].reset_index(drop=True), ref_m,
                                      check_exact=True)
        pd.testing.assert_frame_equal(pu[~pu.cell.str.contains("die-once")]
                                      .reset_index(drop=True), ref_pu, check_exact=True)
        man = json.loads((res.run_dir / "manifest.json").read_text())
        assert man["execution"]["executor"] == kind and man["execution"]["nodes"]
        cells = {c["model"]: c for c in man["cells"]}
        if kind != "in-process":  # lost its worker once, retried, then ran like the others
            assert cells.pop("die-once")["attempts"] == 2
            pd.testing.assert_frame_equal(
                m[m.model == "die-once"].drop(columns=["cell", "model"]).reset_index(drop=True),
                m[m.model == "pop"].drop(columns=["cell", "model"]).reset_index(drop=True))
        assert cells["crashing"]["status"] == "failed"
        assert "boom on purpose" in cells["crashing"]["error"]
        assert all(c["status"] == "ok" for k, c in cells.items() if k != "crashing")
        for c in cells.values():
            assert c["placement"]["executor"] == kind and c["placement"]["host"]
        assert cells["bpr"]["device"] == "cpu"
        assert [s["job"] for s in cells["itemknn"]["shards"]] == ["fit", "shard", "shard",
                                                                   "shard"]
        if kind != "in-process":  # cells ran in other processes; the driver wrote the files
            import os
            assert {c["placement"]["pid"] for c in cells.values()}.isdisjoint({os.getpid()})
            assert "boom on purpose" in (res.run_dir / "run.log").read_text()
    # resume under another executor: nothing runs again, the manifest keeps the placements
    again = run_suite(suite, out, quiet=True, run_id="c", workers=2)
    assert all(c.get("resumed") for c in again.manifest["cells"] if c["status"] == "ok")
    assert {c["placement"]["executor"] for c in again.manifest["cells"]} == {"ray",
                                                                               "processes"}


def test_cell_task_pickled_runs_in_fresh_process(tmp_path, write_suite):
    """One cell task, pickled and run by a fresh interpreter, writes the rows in-process gives."""
    suite = load_suite(write_suite(BASE.format(name="one") + '[[models]]\nname = "itemknn"\n'))
    local = select(suite, None, None, "r", tmp_path / "local", tmp_path / "cache", FitOptions())
    from harness.cell import run_cell
    for d in ("local", "fresh"):
        (tmp_path / d).mkdir()
    assert run_cell(local[0])["status"] == "ok"
    task = replace(local[0], run_dir=str(tmp_path / "fresh"))
    blob = tmp_path / "task.pkl"
    blob.write_bytes(pickle.dumps(task))
    code = ("import pickle, sys; from harness.cell import run_cell; "
            "print(run_cell(pickle.load(open(sys.argv[1], 'rb')))['status'])")
    done = subprocess.run([sys.executable, "-c", code, str(blob)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    for name in ("metrics.parquet", "per_user.parquet"):
        a = pd.read_parquet(local[0].cell_dir / name)
        b = pd.read_parquet(task.cell_dir / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_lost_worker_fails_or_retries_only_its_cell(tmp_path, write_suite):
    marker = tmp_path / "died"
    text = BASE.format(name="crash") + f"""
[[models]]
name = "pop"
[[models]]
name = "tests.scale_plugins:Die"
label = "die"
[[models]]
name = "tests.scale_plugins:Die"
label = "die-once"
params = {{marker = "{marker}"}}
[execution]
retries = 1
[execution.models.die]
retries = 0
"""
    res = run_suite(load_suite(write_suite(text)), tmp_path / "out", quiet=True, workers=2)
    cells = {c["model"]: c for c in res.manifest["cells"]}
    assert cells["pop"]["status"] == "ok" and cells["pop"]["attempts"] == 1
    assert cells["die"]["status"] == "failed" and cells["die"]["attempts"] == 1
    assert "worker process died (exit code 3)" in cells["die"]["error"]
    assert cells["die-once"]["status"] == "ok" and cells["die-once"]["attempts"] == 2
    assert marker.read_text() == "died once"
    assert set(res.metrics["model"]) == {"pop", "die-once"}


def test_time_limits_fail_only_the_hung_cell(tmp_path, write_suite):
    """A model hanging in fit hits the cell limit, one hanging in scoring the accuracy pass
    limit; both fail with the reason, the others complete (default executor: the limits move
    the cells into one killable worker process)."""
    text = BASE.format(name="hang") + """
[[models]]
name = "pop"
[[models]]
name = "tests.scale_plugins:Hang"
label = "hang-fit"
params = {where = "fit"}
[[models]]
name = "tests.scale_plugins:Hang"
label = "hang-score"
[[models]]
name = "itemknn"
[execution]
timeout_s = 8
[execution.pass_timeout_s]
accuracy = 2
"""
    t0 = time.monotonic()
    res = run_suite(load_suite(write_suite(text)), tmp_path / "out", quiet=True)
    assert time.monotonic() - t0 < 300  # hangs of an hour each did not hold the run
    cells = {c["model"]: c for c in res.manifest["cells"]}
    assert cells["hang-fit"]["status"] == "failed"
    assert cells["hang-fit"]["error"] == "cell timed out after 8 s (execution.timeout_s = 8)"
    assert cells["hang-score"]["status"] == "failed"
    assert "pass 'accuracy' timed out after 2 s (execution.pass_timeout_s.accuracy = 2)" in \
        cells["hang-score"]["error"]
    assert cells["pop"]["status"] == "ok" and cells["itemknn"]["status"] == "ok"
    assert "killable" in res.manifest["execution"]["note"]
    assert set(res.metrics["model"]) == {"pop", "itemknn"}


@pytest.mark.parametrize("execution", ["shards = 3", "shard_users = 40"])
def test_sharded_cells_give_the_single_task_rows(tmp_path, write_suite, execution):
    protocols = """
[[candidates]]
protocol = "full"
[[candidates]]
protocol = "sampled"
n_negatives = 20
[[candidates]]
protocol = "rerank"
first_stage = "pop"
m = 20
[[models]]
name = "pop"
[[models]]
name = "itemknn"
"""
    text = BASE.format(name="sh") + protocols
    plain = run_suite(load_suite(write_suite(text)), tmp_path / "out", quiet=True,
                      run_id="plain")
    sharded = run_suite(load_suite(write_suite(text + f"[execution]\n{execution}\n",
                                               "sharded.toml")),
                        tmp_path / "out", quiet=True, run_id="sharded")
    a_m, a_pu = _tables(plain.run_dir)
    b_m, b_pu = _tables(sharded.run_dir)
    pd.testing.assert_frame_equal(a_pu, b_pu, check_exact=True)
    pd.testing.assert_frame_equal(a_m, b_m, check_exact=True)
    for c in sharded.manifest["cells"]:
        users = [s["users"] for s in c["shards"] if s["job"] == "shard"]
        assert len(users) == 3 and users[0][0] == 0
        assert all(u[0] % 32 == 0 for u in users)  # whole batches of 32
        assert all(a[1] == b[0] for a, b in zip(users, users[1:]))


def test_shard_ranges_cover_users_in_whole_batches():
    assert shard_ranges(100, 3, 32) == [(0, 32), (32, 64), (64, 100)]
    assert shard_ranges(100, 10, 32) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert shard_ranges(5, 4, 256) == [(0, 5)]
    for n, k, b in [(1000, 7, 16), (17, 2, 4), (256, 2, 256)]:
        r = shard_ranges(n, k, b)
        assert r[0][0] == 0 and r[-1][1] == n
        assert all(x[1] == y[0] and x[0] % b == 0 for x, y in zip(r, r[1:]))


def test_max_users_is_the_same_subset_for_every_protocol(tmp_path, write_suite):
    text = BASE.format(name="mu") + """
[[candidates]]
protocol = "full"
max_users = 50
[[candidates]]
protocol = "sampled"
n_negatives = 20
max_users = 50
[[candidates]]
protocol = "rerank"
first_stage = "pop"
m = 20
max_users = 50
[[models]]
name = "pop"
[[models]]
name = "itemknn"
"""
    res = run_suite(load_suite(write_suite(text)), tmp_path / "out", quiet=True)
    pu = pd.read_parquet(res.run_dir / "per_user.parquet")
    users = pu.groupby("cell")["user"].apply(lambda s: tuple(sorted(set(s))))
    assert len(users) == 6 and users.map(len).eq(50).all() and users.nunique() == 1


def _cli(tmp_path, suite, *extra):
    return main(["run", str(suite), "--out", str(tmp_path / "out"), "--quiet", *extra])


def test_bad_input_is_exit_2_and_writes_nothing(tmp_path, write_suite, capsys, monkeypatch):
    good = write_suite(BASE.format(name="bad") + '[[models]]\nname = "pop"\n')
    bad = write_suite(BASE.format(name="bad") + '[[models]]\nname = "pop"\n'
                      "[execution]\nshards = 0\n", "bad.toml")
    assert _cli(tmp_path, bad) == 2
    assert "[execution.shards] must be an integer > 0, got 0" in capsys.readouterr().err
    assert _cli(tmp_path, good, "--workers", "0") == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert _cli(tmp_path, good, "--address", "auto") == 2
    assert "only used with --executor ray" in capsys.readouterr().err
    t0 = time.monotonic()
    assert _cli(tmp_path, good, "--executor", "ray", "--address", "127.0.0.1:9") == 2
    assert time.monotonic() - t0 < 30
    assert "no Ray cluster reachable at 127.0.0.1:9" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert _cli(tmp_path, good, "--executor", "ray") == 2
    assert "pip install 'recsys-harness[ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_execution_table_is_checked_at_load():
    raw = {"suite": {"name": "x"}, "datasets": [{"name": "synthetic"}],
           "splits": [{"protocol": "random_holdout"}], "models": [{"name": "pop"}],
           "execution": {"timeout_s": float("nan"), "num_gpus": -1, "shard_users": 0,
                         "pass_timeout_s": {"acuracy": 5}, "models": {"popp": {}}}}
    with pytest.raises(Exception) as err:
        parse_suite(raw)
    msg = str(err.value)
    for key in ("execution.timeout_s", "execution.num_gpus", "execution.shard_users",
                "execution.pass_timeout_s.acuracy", "execution.models.popp"):
        assert key in msg
    assert "did you mean 'accuracy'" in msg and "did you mean 'pop'" in msg
    raw["execution"] = {"timeout_s": 60, "models": {"pop": {"num_gpus": 0.5}}}
    spec = parse_suite(raw).execution
    assert spec.for_model("pop").num_gpus == 0.5 and spec.for_model("pop").timeout_s == 60
    assert spec.has_timeouts


def test_models_that_cannot_scale_refuse_before_the_run(tmp_path, write_suite, capsys):
    text = """
[suite]
name = "big"
[[datasets]]
name = "synthetic"
n_users = 300
n_items = 2500
n_interactions = 40000
[[splits]]
protocol = "random_holdout"
[[models]]
name = "pop"
[[models]]
name = "ease"
params = {max_items = 2000}
"""
    assert _cli(tmp_path, write_suite(text)) == 2
    err = capsys.readouterr().err
    assert "[models[1]] 'ease' on dataset 'synthetic': EASE needs a dense 2,500 x 2,500" in err
    assert "max_items = 2,000" in err and "use itemknn or als" in err
    assert not (tmp_path / "out" / "big").exists()


def test_large_catalog_is_evaluated_in_bounded_memory():
    """~76k users x ~45k items (those that occur): a dense users x items float32 array would take
    over 10 GiB; loading, splitting, candidates and the full-ranking evaluation of a seeded
    1,024-user subset stay far below that (one 256 x 45k scoring batch is 44 MiB)."""
    from harness.candidates import full_candidates
    from harness.data import load_dataset
    from harness.efficiency.memory import PeakMemory
    from harness.evaluate import evaluate
    from harness.fitting import fit_model
    from harness.splits.make import make_split
    with PeakMemory() as mem:
        ds = load_dataset("synthetic", n_users=100_000, n_items=50_000,
                          n_interactions=300_000, seed=0)
        split = make_split(ds, "random_holdout", {"ratios": [0.8, 0.1, 0.1]}, 0)
        cand = full_candidates(split, "test", max_users=1024)
        model = fit_model("pop", {}, 0, split, FitOptions())
        ev = evaluate(model.score, cand, [10], ["ndcg", "recall"], 256, keep_top=True,
                      model=model)
    assert ds.n_users * ds.n_items * 4 > 10 * 2 ** 30
    assert len(ev.users) == 1024 and ev.top_items.shape == (1024, 10)
    assert mem.result()["peak_mb"] < 1024


def test_ray_refuses_a_cell_no_node_can_run(tmp_path, write_suite, capsys):
    """A cell asking for a GPU on a cluster without one is an error before the run (Ray would
    otherwise keep it pending forever); the Ray the run started is shut down."""
    import ray
    text = BASE.format(name="gpu") + """
[[models]]
name = "pop"
[execution.models.pop]
num_gpus = 0.5
"""
    assert _cli(tmp_path, write_suite(text), "--executor", "ray", "--workers", "2") == 2
    assert "asks for gpu = 0.5 per cell, but no node of the Ray cluster has more than 0" in \
        capsys.readouterr().err
    assert not ray.is_initialized()
    assert not (tmp_path / "out" / "gpu").exists()

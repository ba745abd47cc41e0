"""The efficiency pass (issue #7): rows, warm-up, percentile availability, server queueing,
failures isolated per scenario, accuracy unchanged, manifest facts. Synthetic data, fake models."""

import json
import time

import numpy as np
import pandas as pd
import pytest
import torch

from harness.efficiency.clock import RequestTimeout, deadline, torch_threads
from harness.efficiency.facts import model_state
from harness.efficiency.scenarios import poisson_schedule
from harness.efficiency.stats import latency_figures, min_samples, percentile
from harness.errors import SuiteError
from harness.runner import run_suite
from harness.suite import load_suite
from tests.conftest import SMALL
from tests.plugins import SlowStart

BASE = SMALL.replace('name = "small"', 'name = "eff"').replace(
    "[evaluation]\n", '[evaluation]\nmetrics = ["ndcg", "recall"]\n')


def _models(*specs: str) -> str:
    return "".join(f"\n[[models]]\n{s}\n" for s in specs)


def _run(write_suite, tmp_path, text: str, name: str = "s.toml"):
    return run_suite(load_suite(write_suite(text, name)), tmp_path / "out", quiet=True)


def _eff(res) -> pd.DataFrame:
    m = res.metrics
    return m[m["pass"] == "efficiency"]


def _value(eff: pd.DataFrame, model: str, metric: str) -> float:
    sel = eff[(eff.model == model) & (eff.metric == metric)]
    assert len(sel) == 1, (model, metric, sorted(eff[eff.model == model].metric))
    return float(sel.value.iloc[0])


def _record(res, model: str) -> dict:
    return [c for c in res.manifest["cells"] if c["model"] == model][0]["efficiency"]


def test_rows_manifest_and_leaderboard(tmp_path, write_suite):
    threads_before = torch.get_num_threads()
    text = BASE + _models('name = "pop"', 'name = "null"') + """
[efficiency]
scenarios = ["fit", "offline", "single_stream", "server"]
warmup = 4
requests = 64
threads = 1
min_duration_s = 0.05
batch_size = 32
server = { qps = 200, duration_s = 0.3, seed = 1 }
"""
    res = _run(write_suite, tmp_path, text)
    assert torch.get_num_threads() == threads_before  # the pass restores the thread count
    eff = _eff(res)
    assert set(eff.model) == {"pop", "null"}
    assert (eff.k == 0).all() and (eff.slice == "all").all()
    assert (eff.perturbation == "none").all() and np.isfinite(eff.value).all()
    assert set(eff.protocol) == {"full"} and (eff.value >= 0).all()
    for model in ("pop", "null"):
        for metric in ("fit_seconds", "peak_memory_mb", "throughput_users_per_s",
                       "throughput_candidates_per_s", "latency_p50_ms", "latency_p90_ms",
                       "server_achieved_qps", "server_latency_p50_ms", "params"):
            _value(eff, model, metric)
        assert _value(eff, model, "throughput_users_per_s") > 0
        assert _value(eff, model, "latency_p50_ms") <= _value(eff, model, "latency_p90_ms")
        n_items = 80
        assert _value(eff, model, "throughput_candidates_per_s") == pytest.approx(
            n_items * _value(eff, model, "throughput_users_per_s"))
    assert _value(eff, "pop", "params") == 80 and _value(eff, "null", "params") == 0
    # accuracy rows untouched by the extra rows
    assert set(res.metrics[res.metrics["pass"] == "accuracy"].metric) == {"ndcg", "recall"}
    rec = _record(res, "pop")
    assert rec["threads"] == 1 and rec["batch_size"] == 32 and rec["dtype"] == "float32"
    assert rec["device"]["device"] == "cpu" and rec["device"]["torch"] == torch.__version__
    assert rec["device"]["torch_threads"] == 1 and rec["top_k"] == 10
    assert rec["scenarios"]["offline"]["batch_size"] == 32
    assert rec["scenarios"]["fit"]["memory"]["kind"] in ("rss_sampled", "unavailable")
    assert all(s["status"] == "ok" for s in rec["scenarios"].values())
    man = json.loads((res.run_dir / "manifest.json").read_text())
    assert man["efficiency"]["config"]["requests"] == 64
    assert man["efficiency"]["min_samples"]["fixed"] == {"p90": 64, "p99": 662}
    board = (res.run_dir / "leaderboard.md").read_text()
    assert "## Efficiency" in board and "latency_p90_ms" in board
    assert "Harness overhead (latency_p50_ms): `null`" in board


def test_accuracy_identical_with_and_without_efficiency(tmp_path, write_suite):
    models = _models('name = "pop"', 'name = "itemknn"')
    plain = _run(write_suite, tmp_path, BASE + models, "plain.toml")
    timed = _run(write_suite, tmp_path, BASE + models + """
[efficiency]
scenarios = ["fit", "offline", "single_stream"]
warmup = 2
requests = 20
min_duration_s = 0.0
""", "timed.toml")
    cols = ["cell", "model", "metric", "k", "value", "n_users"]
    a = plain.metrics[cols].sort_values(cols[:4]).reset_index(drop=True)
    b = timed.metrics[timed.metrics["pass"] == "accuracy"][cols].sort_values(cols[:4])
    pd.testing.assert_frame_equal(a, b.reset_index(drop=True))
    pu_a = pd.read_parquet(plain.run_dir / "per_user.parquet")
    pu_b = pd.read_parquet(timed.run_dir / "per_user.parquet")
    pd.testing.assert_frame_equal(pu_a, pu_b)
    assert len(_eff(timed)) > 0 and len(_eff(plain)) == 0


def test_warmup_is_excluded_and_counted(tmp_path, write_suite):
    SlowStart.instances.clear()
    text = BASE + _models('name = "tests.plugins:SlowStart"\nlabel = "slow"\n'
                          'params = { slow_calls = 3, slow_s = 0.08 }') + """
[efficiency]
scenarios = ["fit", "single_stream"]
warmup = 3
requests = 64
"""
    res = _run(write_suite, tmp_path, text)
    timed = SlowStart.instances[-1]  # the fit scenario's fresh instance serves the requests
    assert timed.calls == [1] * (3 + 64)
    rec = _record(res, "slow")["scenarios"]["single_stream"]
    assert rec["warmup"]["requests"] == 3 and rec["warmup"]["first_ms"] >= 80
    assert rec["timed_requests"] == 64
    eff = _eff(res)
    # the three 80 ms warm-up requests are not in any timed figure
    assert _value(eff, "slow", "latency_p90_ms") < 40
    assert _value(eff, "slow", "latency_mean_ms") < 40


def test_percentile_rules():
    assert min_samples(90) == 64 and min_samples(99) == 662 and min_samples(50) == 14
    values, unavailable = latency_figures(np.full(661, 0.001), [50, 90, 99])
    assert "latency_p99_ms" not in values and "latency_p90_ms" in values
    assert unavailable == {"latency_p99_ms": "unavailable: needs 662 timed samples, had 661"}
    values, unavailable = latency_figures(np.full(662, 0.001), [99])
    assert values["latency_p99_ms"] == pytest.approx(1.0) and not unavailable
    x = np.arange(1, 101, dtype=float)
    assert percentile(x, 50) == 50 and percentile(x, 90) == 90 and percentile(x, 99) == 99
    assert percentile(x, 99.9) == 100  # a measured value, never beyond the largest
    assert percentile([3.0], 99) == 3.0


def test_unavailable_percentile_has_no_row(tmp_path, write_suite):
    text = BASE + _models('name = "pop"') + """
[efficiency]
scenarios = ["single_stream"]
warmup = 0
requests = 100
"""
    res = _run(write_suite, tmp_path, text)
    eff = _eff(res)
    assert set(eff.metric) == {"params", "latency_mean_ms", "latency_p50_ms", "latency_p90_ms"}
    rec = _record(res, "pop")
    assert rec["unavailable"] == {
        "latency_p99_ms": "unavailable: needs 662 timed samples, had 100"}
    assert rec["scenarios"]["single_stream"]["warmup"]["requests"] == 0
    assert "n/a (100/662)" in (res.run_dir / "leaderboard.md").read_text()


def test_server_latency_includes_queueing(tmp_path, write_suite):
    # capacity: fast = 1000 req/s, slow = 40 req/s; target 100 QPS for 0.6 s
    text = BASE + _models(
        'name = "tests.plugins:Sleepy"\nlabel = "fast"\nparams = { delay_s = 0.001 }',
        'name = "tests.plugins:Sleepy"\nlabel = "slow"\nparams = { delay_s = 0.025 }') + """
[efficiency]
scenarios = ["server"]
warmup = 2
timeout_s = 30
server = { qps = 100, duration_s = 0.6, seed = 3 }
"""
    res = _run(write_suite, tmp_path, text)
    eff = _eff(res)
    fast, slow = _record(res, "fast")["scenarios"]["server"], _record(res, "slow")["scenarios"][
        "server"]
    assert fast["scheduled"] == slow["scheduled"] == len(poisson_schedule(100, 0.6, 3))
    assert fast["completed"] == fast["scheduled"] and slow["completed"] == slow["scheduled"]
    # under capacity: latency ~ service time; over capacity: the queue grows, and so does latency
    assert _value(eff, "fast", "server_latency_p50_ms") < 20
    assert _value(eff, "slow", "server_latency_p50_ms") > 5 * 25
    assert slow["queue_ms_max"] > 10 * slow["service_ms_mean"]
    assert _value(eff, "slow", "server_achieved_qps") < 60 < _value(eff, "fast",
                                                                    "server_achieved_qps")
    assert slow["utilization"] > 0.8


def test_overloaded_server_fails_with_partial_record(tmp_path, write_suite):
    text = BASE + _models('name = "tests.plugins:Sleepy"\nlabel = "slow"\n'
                          'params = { delay_s = 0.05 }') + """
[efficiency]
scenarios = ["single_stream", "server"]
warmup = 1
requests = 5
timeout_s = 0.3
server = { qps = 200, duration_s = 1.0 }
"""
    t0 = time.perf_counter()
    res = _run(write_suite, tmp_path, text)
    assert time.perf_counter() - t0 < 10
    sc = _record(res, "slow")["scenarios"]
    assert sc["single_stream"]["status"] == "ok"  # 50 ms < 0.3 s: fine one at a time
    srv = sc["server"]
    assert srv["status"] == "failed" and "timeout_s=0.3" in srv["error"]
    assert 0 < srv["completed"] < srv["scheduled"] and srv["target_qps"] == 200
    assert not _eff(res).metric.str.startswith("server_").any()


def test_poisson_schedule_is_seeded():
    a, b = poisson_schedule(50, 20, 0), poisson_schedule(50, 20, 0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, poisson_schedule(50, 20, 1))
    assert (np.diff(a) > 0).all() and a[-1] < 20 and 850 < len(a) < 1150


def test_crash_or_timeout_fails_only_that_scenario(tmp_path, write_suite):
    text = BASE + _models(
        'name = "tests.plugins:FlakyServing"\nlabel = "crashy"\nparams = { mode = "crash" }',
        'name = "tests.plugins:FlakyServing"\nlabel = "hangs"\n'
        'params = { mode = "hang", hang_s = 20.0 }',
        'name = "pop"') + """
[efficiency]
scenarios = ["fit", "offline", "single_stream"]
warmup = 0
requests = 10
timeout_s = 0.5
min_duration_s = 0.0
"""
    t0 = time.perf_counter()
    res = _run(write_suite, tmp_path, text)
    assert time.perf_counter() - t0 < 15  # the 20 s hang was cut at the 0.5 s timeout
    assert all(c["status"] == "ok" for c in res.manifest["cells"])
    eff = _eff(res)
    for model, err in (("crashy", "single user, on purpose"), ("hangs", "timeout_s=0.5")):
        sc = _record(res, model)["scenarios"]
        assert sc["fit"]["status"] == "ok" and sc["offline"]["status"] == "ok"
        assert sc["single_stream"]["status"] == "failed" and err in sc["single_stream"]["error"]
        assert _value(eff, model, "throughput_users_per_s") > 0
        assert not (eff[eff.model == model].metric.str.startswith("latency")).any()
    assert "RequestTimeout" in _record(res, "hangs")["scenarios"]["single_stream"]["error"]
    _value(eff, "pop", "latency_mean_ms")  # the other cell is unaffected
    board = (res.run_dir / "leaderboard.md").read_text()
    assert "Failed efficiency scenarios" in board and "single_stream" in board


def test_token_counts_and_flops(tmp_path, write_suite):
    text = BASE + _models('name = "tests.plugins:TokenCounting"\nlabel = "tok"') + """
[efficiency]
scenarios = ["offline", "single_stream"]
warmup = 1
requests = 20
min_duration_s = 0.0
"""
    res = _run(write_suite, tmp_path, text)
    eff = _eff(res)
    assert _value(eff, "tok", "tokens_per_request") == 7
    assert _value(eff, "tok", "flops_per_request") == 2 * 110 * 7
    assert _value(eff, "tok", "throughput_tokens_per_s") == pytest.approx(
        7 * _value(eff, "tok", "throughput_users_per_s"))
    assert _value(eff, "tok", "params") == 80 + 110
    assert _record(res, "tok")["model_state"]["module_params"] == 110
    assert not (eff.metric == "mfu").any()  # CPU, no peak_tflops given: no MFU
    assert _record(res, "tok")["peak_flops"] is None


def test_mfu_from_a_configured_peak(tmp_path, write_suite):
    """mfu = flops_per_s / ([efficiency] peak_tflops x 1e12); a GPU name picks its data-sheet
    peak."""
    from harness.efficiency.facts import peak_flops
    text = BASE + _models('name = "tests.plugins:TokenCounting"\nlabel = "tok"') + """
[efficiency]
scenarios = ["offline"]
warmup = 1
min_duration_s = 0.0
peak_tflops = 0.001
"""
    res = _run(write_suite, tmp_path, text)
    eff = _eff(res)
    assert _value(eff, "tok", "mfu") == pytest.approx(_value(eff, "tok", "flops_per_s") / 1e9)
    assert _record(res, "tok")["peak_flops"] == {"value": 1e9,
                                                 "source": "[efficiency] peak_tflops"}
    h100 = {"device": "cuda", "gpu": "NVIDIA H100 80GB HBM3"}
    assert peak_flops(h100, None)["value"] == 989e12
    assert peak_flops({**h100, "gpu": "NVIDIA H100 PCIe"}, None)["value"] == 756e12
    assert peak_flops({"device": "cuda", "gpu": "Tesla T4"}, None) is None
    assert peak_flops({"device": "cpu", "gpu": "NVIDIA H100"}, None) is None
    assert peak_flops(h100, 5.0)["value"] == 5e12


def test_model_state_counts_floats_once():
    class M:
        pass
    import scipy.sparse as sp
    m = M()
    m.net = torch.nn.Linear(3, 2)            # 8 parameters
    m.alias = m.net.weight                   # same storage: not counted again
    m.emb = np.zeros((4, 5), np.float32)     # 20
    m.hist = [np.arange(10), np.arange(3)]   # integers: not parameters
    m.sim = sp.random(10, 10, density=0.3, format="csr", dtype=np.float32, random_state=0)
    m.info = {"x": torch.zeros(100)}         # skipped
    st = model_state(m)
    assert st["params"] == 8 + 20 + m.sim.nnz and st["module_params"] == 8
    assert st["dtype"] == "float32" and st["devices"] == ["cpu"]


def test_deadline_interrupts_and_restores():
    import signal
    before = signal.getsignal(signal.SIGALRM)
    t0 = time.perf_counter()
    with pytest.raises(RequestTimeout):
        with deadline(0.1, "sleep"):
            time.sleep(5)
    assert time.perf_counter() - t0 < 2
    assert signal.getsignal(signal.SIGALRM) is before
    # a timer armed by someone else (e.g. a test timeout) survives, with what was left of it
    signal.setitimer(signal.ITIMER_REAL, 30.0)
    try:
        with deadline(5.0, "quick"):
            pass
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 25.0 < left <= 30.0
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    with torch_threads(1) as n:
        assert n == 1
    assert torch.get_num_threads() >= 1


@pytest.mark.parametrize("table, key", [
    ('scenarios = ["fit", "latency"]', "efficiency.scenarios[1]"),
    ("reqests = 5", "efficiency.reqests"),
    ("percentiles = [50, 100]", "efficiency.percentiles"),
    ("server = { qps = 10 }\nscenarios = [\"fit\"]", "efficiency.server"),
    ('models = ["poop"]', "efficiency.models[0]"),
    ("warmup = -1", "efficiency.warmup"),
    ('scenarios = ["server"]\nserver = { qps = 0 }', "efficiency.server.qps"),
])
def test_bad_efficiency_table(write_suite, table, key):
    with pytest.raises(SuiteError) as err:
        load_suite(write_suite(BASE + _models('name = "pop"') + "\n[efficiency]\n" + table))
    assert f"[{key}]" in str(err.value)


def test_llm_embed_efficiency_on_tiny_data(tmp_path, write_suite):
    pytest.importorskip("transformers")
    text = """
[suite]
name = "tiny-llm"
[[datasets]]
name = "synthetic"
n_users = 40
n_items = 30
n_interactions = 500
[[splits]]
protocol = "random_holdout"
[evaluation]
metrics = ["ndcg"]
ks = [5]
[[models]]
name = "llm-embed"
params = { batch_size = 16 }
[efficiency]
scenarios = ["fit", "offline", "single_stream"]
warmup = 2
requests = 16
min_duration_s = 0.0
"""
    res = _run(write_suite, tmp_path, text)
    assert res.manifest["cells"][0]["status"] == "ok"
    eff = _eff(res)
    rec = _record(res, "llm-embed")
    fit = rec["scenarios"]["fit"]
    # the timed fit bypasses the embedding cache and encodes every item
    assert fit["use_cache"] is False and fit["work"]["items_embedded"] == 30
    assert _value(eff, "llm-embed", "fit_items_embedded_per_s") == pytest.approx(
        30 / fit["seconds"], rel=1e-3)
    assert _value(eff, "llm-embed", "params") >= (40 + 30) * 384  # user + item embeddings
    assert rec["dtype"] == "float32" and rec["model_batch_size"] == 16
    assert _value(eff, "llm-embed", "latency_p50_ms") > 0
    lens = rec["scenarios"]["single_stream"]["history_len"]  # declared: min(history, 50)
    assert 0 < lens["mean"] <= lens["max"] <= 50

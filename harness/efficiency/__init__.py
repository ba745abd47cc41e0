"""The efficiency pass's machinery (the pass itself: harness/passes/efficiency.py): throughput, latency, memory and cost of a cell's recommender, timed by the
harness after (never inside) the accuracy pass.

    config.py     the suite's `[efficiency]` table (EfficiencySpec)
    clock.py      the clock (perf_counter + CUDA synchronize), per-request deadlines, threads
    memory.py     peak memory: CUDA allocator on GPU, sampled RSS on CPU (what it means)
    stats.py      nearest-rank percentiles and when they are available
    facts.py      stored parameters, dtype, work counters (tokens, items embedded), device
    workload.py   requests from the cell's candidates; serving = score + mask + top-k
    scenarios.py  fit, offline, single_stream, server
    leaderboard.py  the efficiency section of leaderboard.md

Metrics rows (k = 0, slice 'all', perturbation 'none'; n_users = distinct users involved):
`params`; fit: `fit_seconds`, `peak_memory_mb` (+ `fit_items_embedded_per_s`,
`fit_tokens_per_s` when the model counts them); offline: `throughput_users_per_s`,
`throughput_candidates_per_s`, `offline_peak_memory_mb` (+ `throughput_tokens_per_s`,
`flops_per_s`, and `mfu` = flops_per_s / the device's peak FLOP/s where a peak is known:
`[efficiency] peak_tflops` or a listed GPU, see facts.py); single_stream: `latency_mean_ms`,
`latency_p<q>_ms` (+ `tokens_per_request`, `flops_per_request`); server: `server_achieved_qps`, `server_latency_mean_ms`,
`server_latency_p<q>_ms`. Details (warm-up, unavailable percentiles, failures, device,
threads, dtype, batch size, memory method) are in the cell's `efficiency` record of the
manifest.
"""

from harness.efficiency.config import EfficiencySpec, ServerSpec, parse_efficiency

__all__ = ["EfficiencySpec", "ServerSpec", "parse_efficiency"]

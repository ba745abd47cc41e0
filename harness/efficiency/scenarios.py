"""The four timed scenarios. Each returns an `Outcome`; any exception (a crash, a request past
`timeout_s`, an overloaded server) makes that scenario 'failed' with the error recorded, and the
caller goes on with the next one.

- fit: one `fit` of a fresh instance (same name, parameters, seed) on the cell's split, timed,
  with peak memory (see `memory`).
- offline: every candidate user in batches of `batch_size`, full passes repeated until
  `min_duration_s` (at most `max_duration_s`), after `warmup` users scored once untimed;
  throughput = users (and scored candidates, tokens) / elapsed time.
- single_stream: `warmup` untimed requests, then up to `requests` timed ones, one user each,
  back to back; latency = the request's own time. Users follow a seeded permutation of the
  candidate users (cycling when there are more requests than users; the count of distinct users
  is recorded, as repeated users may hit model-side caches). Models that score from a history
  and declare `history_len_used` get the mean and max history length of the timed requests
  (`history_len`, see `facts`), in this scenario's record and the server's.
- server: `warmup` untimed requests, then Poisson arrivals at `qps` for `duration_s` (seeded
  schedule) served by one server in arrival order: a request starts at max(its arrival, the
  previous completion), latency = completion - scheduled arrival (queueing included).
  Achieved QPS = completed requests / (last completion - schedule start). A request whose
  latency passes `timeout_s` fails the scenario as overloaded (which also bounds its run time).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from harness.efficiency.clock import RequestTimeout, deadline, now, sync, wait_until
from harness.efficiency.facts import counters, declared_device, delta, history_lengths
from harness.efficiency.memory import PeakMemory
from harness.efficiency.stats import latency_figures


@dataclass
class Outcome:
    status: str = "ok"
    values: dict = field(default_factory=dict)   # metric -> value (rows)
    n_users: int = 0
    record: dict = field(default_factory=dict)   # manifest details
    error: str | None = None
    model: object = None                          # fit: the freshly fitted model

    def fail(self, exc: BaseException) -> "Outcome":
        self.status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        self.values = {}
        return self


def _check(seconds: float, timeout: float, what: str) -> None:
    if seconds > timeout:
        raise RequestTimeout(f"{what} took {seconds:.3f}s, more than timeout_s={timeout:g}")


def _per_s(count, seconds: float):
    return None if count is None or seconds <= 0 else count / seconds


def fit(build, split, spec) -> Outcome:
    """Fit a fresh instance (`build()`: unfitted, fit options applied) under the clock and the
    memory monitor."""
    out = Outcome()
    try:
        model = build()
        dev = declared_device(model)
        c0 = counters(model)
        with PeakMemory(cuda=dev == "cuda", interval_ms=spec.memory_interval_ms) as mem:
            sync()
            t0 = now()
            model.fit(split, split.dataset)
            sync()
            secs = now() - t0
        work = delta(c0, counters(model))
        m = mem.result()
        out.values["fit_seconds"] = secs
        if m["peak_mb"] is not None:
            out.values["peak_memory_mb"] = m["peak_mb"]
        for name, key in (("fit_items_embedded_per_s", "items_embedded"),
                          ("fit_tokens_per_s", "tokens")):
            if _per_s(work[key], secs) is not None and work[key] > 0:
                out.values[name] = work[key] / secs
        out.record = {"seconds": round(secs, 6), "device": dev, "memory": m, "work": work,
                      "use_cache": spec.fit_use_cache}
        out.model = model
    except Exception as exc:  # noqa: BLE001 - a crashing fit fails this scenario only
        return out.fail(exc)
    return out


def offline(model, wl, spec, batch_size: int, device: str, module_params: int,
            progress=None, peak: dict | None = None) -> Outcome:
    """Batch scoring throughput over every candidate user; with the device's `peak` FLOP/s
    (`facts.peak_flops`), mfu = flops_per_s / peak."""
    out = Outcome(n_users=wl.n_users)
    try:
        n = wl.n_users
        n_warm = min(spec.warmup, n)
        warm_s = 0.0
        if n_warm:
            req = wl.prepare(np.arange(n_warm))
            with deadline(spec.timeout_s, "offline warm-up batch"), torch.no_grad():
                t = now()
                wl.serve(model, req)
                sync()
                warm_s = now() - t
            _check(warm_s, spec.timeout_s, "the offline warm-up batch")
        reqs = [wl.prepare(np.arange(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
        c0 = counters(model)
        users = cands = passes = 0
        partial = False
        with PeakMemory(cuda=device == "cuda", interval_ms=spec.memory_interval_ms) as mem, \
                torch.no_grad():
            sync()
            t0 = now()
            while True:
                for i, req in enumerate(reqs):
                    tb = now()
                    with deadline(spec.timeout_s, f"offline batch {i}"):
                        wl.serve(model, req)
                        sync()
                    t1 = now()
                    _check(t1 - tb, spec.timeout_s, f"offline batch {i}")
                    users += len(req.users)
                    cands += req.n_candidates
                    if progress is not None:
                        progress.update(len(req.users))
                    if t1 - t0 > spec.max_duration_s and i < len(reqs) - 1:
                        partial = True
                        break
                if partial:
                    break
                passes += 1
                if now() - t0 >= min(spec.min_duration_s, spec.max_duration_s):
                    break
            sync()
            secs = now() - t0
        work = delta(c0, counters(model))
        m = mem.result()
        out.values = {"throughput_users_per_s": users / secs,
                      "throughput_candidates_per_s": cands / secs}
        if m["peak_mb"] is not None:
            out.values["offline_peak_memory_mb"] = m["peak_mb"]
        if work["tokens"]:
            out.values["throughput_tokens_per_s"] = work["tokens"] / secs
            if module_params:
                out.values["flops_per_s"] = 2.0 * module_params * work["tokens"] / secs
                if peak:
                    out.values["mfu"] = out.values["flops_per_s"] / peak["value"]
        out.record = {"seconds": round(secs, 6), "users_scored": users,
                      "candidates_scored": cands, "full_passes": passes,
                      "stopped_early": partial, "batch_size": batch_size,
                      "warmup": {"users": n_warm, "seconds": round(warm_s, 6)},
                      "memory": m, "work": work}
    except Exception as exc:  # noqa: BLE001
        return out.fail(exc)
    return out


def _warmup(model, wl, order: np.ndarray, n: int, timeout: float, what: str) -> dict:
    """Serve n untimed requests (users order[:n]); their latencies are recorded, not used."""
    lat = []
    with torch.no_grad():
        for i in range(n):
            req = wl.prepare(order[i % len(order): i % len(order) + 1])
            with deadline(timeout, f"{what} warm-up request {i}"):
                sync()
                t = now()
                wl.serve(model, req)
                sync()
                lat.append(now() - t)
            _check(lat[-1], timeout, f"{what} warm-up request {i}")
    ms = [round(x * 1000, 4) for x in lat]
    return {"requests": n, "seconds": round(sum(lat), 6), "first_ms": ms[0] if ms else None,
            "max_ms": max(ms) if ms else None}


def single_stream(model, wl, spec, order: np.ndarray, module_params: int,
                  progress=None) -> Outcome:
    """One request at a time; latency percentiles after warm-up."""
    out = Outcome()
    try:
        warm = _warmup(model, wl, order, spec.warmup, spec.timeout_s, "single_stream")
        idx = [(spec.warmup + i) % len(order) for i in range(spec.requests)]
        reqs = [wl.prepare(order[j:j + 1]) for j in idx]
        c0 = counters(model)
        lat = []
        out.record = {"warmup": warm, "requested": spec.requests, "timed_requests": 0}
        start = now()
        with torch.no_grad():
            for i, req in enumerate(reqs):
                out.record["timed_requests"] = i  # completed so far (kept if the next fails)
                with deadline(spec.timeout_s, f"single_stream request {i}"):
                    sync()
                    t0 = now()
                    wl.serve(model, req)
                    sync()
                    t1 = now()
                lat.append(t1 - t0)
                _check(t1 - t0, spec.timeout_s, f"single_stream request {i}")
                if progress is not None:
                    progress.update(1)
                if now() - start > spec.max_duration_s:
                    break
        work = delta(c0, counters(model))
        values, unavailable = latency_figures(lat, spec.percentiles)
        if work["tokens"]:
            per_req = work["tokens"] / len(lat)
            values["tokens_per_request"] = per_req
            if module_params:
                values["flops_per_request"] = 2.0 * module_params * per_req
        served = order[np.asarray(idx[:len(lat)])]
        out.values, out.n_users = values, int(len(np.unique(served)))
        out.record = {"timed_requests": len(lat), "requested": spec.requests,
                      "stopped_early": len(lat) < spec.requests, "distinct_users": out.n_users,
                      "warmup": warm, "unavailable": unavailable, "work": work,
                      "total_seconds": round(float(np.sum(lat)), 6)}
        _history(out.record, model, wl, served)
    except Exception as exc:  # noqa: BLE001
        return out.fail(exc)
    return out


def _history(record: dict, model, wl, positions: np.ndarray) -> None:
    """record['history_len'] of the timed requests' users (untimed; models that declare it)."""
    lens = history_lengths(model, wl.cand.users[np.asarray(positions, np.int64)])
    if lens is not None:
        record["history_len"] = lens


def poisson_schedule(qps: float, duration_s: float, seed: int) -> np.ndarray:
    """Arrival offsets (s) in [0, duration_s) of a Poisson process with rate `qps`."""
    rng = np.random.default_rng([seed, 1013])
    arrivals = np.empty(0)
    size = int(qps * duration_s * 1.5) + 16
    while not len(arrivals) or arrivals[-1] < duration_s:
        gaps = rng.exponential(1.0 / qps, size)
        arrivals = np.concatenate([arrivals, (arrivals[-1] if len(arrivals) else 0.0)
                                   + np.cumsum(gaps)])
    return arrivals[arrivals < duration_s]


def server(model, wl, spec, order: np.ndarray, progress=None) -> Outcome:
    """Poisson arrivals, one server, latency including queueing."""
    out = Outcome()
    try:
        sv = spec.server
        warm = _warmup(model, wl, order, spec.warmup, spec.timeout_s, "server")
        arrivals = poisson_schedule(sv.qps, sv.duration_s, sv.seed)
        idx = [(spec.warmup + i) % len(order) for i in range(len(arrivals))]
        reqs = [wl.prepare(order[j:j + 1]) for j in idx]
        lat, queue, service = [], [], []
        out.record = {"target_qps": sv.qps, "duration_s": sv.duration_s, "seed": sv.seed,
                      "scheduled": len(arrivals), "completed": 0, "warmup": warm}
        end = base = now() + 1e-3
        with torch.no_grad():
            for i, (a, req) in enumerate(zip(arrivals, reqs)):
                out.record["completed"] = i  # kept if this request fails
                target = base + a
                wait_until(target)
                start = now()
                left = spec.timeout_s - (start - target)
                if left <= 0:
                    raise RequestTimeout(f"overloaded: request {i} waited {start - target:.3f}s"
                                         f" in the queue (> timeout_s={spec.timeout_s:g}) at "
                                         f"target qps={sv.qps:g}")
                with deadline(left, f"server request {i} (queueing included)", spec.timeout_s):
                    wl.serve(model, req)
                    sync()
                    end = now()
                lat.append(end - target)
                queue.append(start - target)
                service.append(end - start)
                _check(end - target, spec.timeout_s, f"server request {i} (queueing included)")
                if progress is not None:
                    progress.update(1)
        values, unavailable = latency_figures(lat, spec.percentiles, prefix="server_latency")
        elapsed = end - base
        if lat:
            values = {"server_achieved_qps": len(lat) / elapsed, **values}
        served = order[np.asarray(idx, dtype=np.int64)] if idx else np.zeros(0)
        out.values, out.n_users = values, int(len(np.unique(served)))
        out.record = {"target_qps": sv.qps, "duration_s": sv.duration_s, "seed": sv.seed,
                      "scheduled": len(arrivals), "completed": len(lat),
                      "elapsed_s": round(elapsed, 6),
                      "queue_ms_mean": round(float(np.mean(queue)) * 1000, 4) if queue else None,
                      "queue_ms_max": round(float(np.max(queue)) * 1000, 4) if queue else None,
                      "service_ms_mean": (round(float(np.mean(service)) * 1000, 4)
                                          if service else None),
                      "utilization": round(float(np.sum(service)) / elapsed, 4) if lat else None,
                      "warmup": warm, "unavailable": unavailable}
        _history(out.record, model, wl, served[:len(lat)])
    except Exception as exc:  # noqa: BLE001
        return out.fail(exc)
    return out


def seeded_order(n_users: int, seed: int) -> np.ndarray:
    """Positions 0..n_users-1 in a seeded order (the single_stream / server user sequence)."""
    return np.random.default_rng([seed, 2029]).permutation(n_users)


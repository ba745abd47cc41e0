"""Peak memory of a region: CUDA allocator peak on GPU, sampled resident set size (RSS) on CPU.

What the numbers mean (MB = 2^20 bytes):

- `cuda`: `torch.cuda.max_memory_allocated()` after `reset_peak_memory_stats()`, minus
  `memory_allocated()` at the start: the largest amount of *additional* tensor memory the region
  held at once. It excludes the caching allocator's reserve, the CUDA context and other
  processes.
- `rss`: the process's resident set size is sampled every `interval_ms` by a background thread
  (psutil when installed, else /proc/self/statm); the figure is the highest sample minus the RSS
  at the start, i.e. the additional resident memory of the whole process while the region ran
  (other threads' allocations count; memory freed to the allocator but not returned to the OS
  before the region makes the figure an underestimate; peaks shorter than the sampling period
  can be missed). When the kernel's high-water mark (`getrusage().ru_maxrss`) rose during the
  region, the process's all-time peak happened inside it and is used instead of the samples,
  which makes the peak exact in that case. The sampler reads one /proc value per period
  (a few microseconds), a negligible share of the measured region's time.
"""

from __future__ import annotations

import os
import sys
import threading

import torch

MB = float(2 ** 20)


def _rss_reader():
    try:
        import psutil
        proc = psutil.Process()
        return (lambda: proc.memory_info().rss), "psutil"
    except ImportError:
        pass
    if os.path.exists("/proc/self/statm"):
        page = os.sysconf("SC_PAGE_SIZE")

        def read() -> int:
            with open("/proc/self/statm", "rb") as fh:
                return int(fh.read().split()[1]) * page
        return read, "/proc/self/statm"
    return None, "unavailable"


def _maxrss_bytes() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class PeakMemory:
    """Context manager; after exit `result()` is {kind, peak_mb (additional), ...}. `cuda`:
    measure the CUDA allocator (the RSS is sampled as well and reported alongside)."""

    def __init__(self, cuda: bool = False, interval_ms: float = 5.0):
        self.cuda = bool(cuda) and torch.cuda.is_available()
        self.interval = max(interval_ms, 0.5) / 1000.0
        self.read, self.source = _rss_reader()
        self._stop = threading.Event()
        self._peak = 0
        self._samples = 0

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _take(self) -> None:
        v = self.read()
        self._samples += 1
        if v > self._peak:
            self._peak = v

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._cuda_base = torch.cuda.memory_allocated()
        self._maxrss0 = _maxrss_bytes()
        if self.read is not None:
            self._base = self.read()
            self._peak = self._base
            self._thread = threading.Thread(target=self._sample, daemon=True,
                                            name="harness-rss-sampler")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self._cuda_peak = torch.cuda.max_memory_allocated()
        if self.read is not None:
            self._stop.set()
            self._thread.join()
            self._take()
        self._maxrss1 = _maxrss_bytes()

    def result(self) -> dict:
        out: dict = {"rss_source": self.source, "rss_interval_ms": self.interval * 1000}
        if self.read is not None:
            peak, exact = self._peak, False
            if (self._maxrss0 is not None and self._maxrss1 is not None
                    and self._maxrss1 > self._maxrss0 and self._maxrss1 >= peak):
                peak, exact = self._maxrss1, True
            out.update(rss_base_mb=round(self._base / MB, 2), rss_peak_mb=round(peak / MB, 2),
                       rss_additional_mb=round(max(peak - self._base, 0) / MB, 2),
                       rss_samples=self._samples, rss_peak_from_ru_maxrss=exact)
        if self._maxrss1 is not None:
            out["process_ru_maxrss_mb"] = round(self._maxrss1 / MB, 2)
        if self.cuda:
            add = max(self._cuda_peak - self._cuda_base, 0) / MB
            out.update(kind="cuda_max_memory_allocated", peak_mb=round(add, 3),
                       cuda_base_mb=round(self._cuda_base / MB, 2),
                       cuda_peak_mb=round(self._cuda_peak / MB, 2))
        elif self.read is not None:
            out.update(kind="rss_sampled", peak_mb=out["rss_additional_mb"])
        else:
            out.update(kind="unavailable", peak_mb=None)
        return out

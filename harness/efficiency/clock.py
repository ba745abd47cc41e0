"""The harness's clock: monotonic wall time with device synchronization, per-request deadlines,
and the one place where the efficiency pass changes a process-wide setting (torch threads).

Every timed region is `sync(); t0 = now(); work; sync(); t1 = now()`: on CUDA,
`torch.cuda.synchronize()` makes queued kernels part of the region they were launched in
(otherwise asynchronous launches would be billed to whichever region next waits on the GPU).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import torch

now = time.perf_counter
CLOCK = "time.perf_counter (monotonic), torch.cuda.synchronize() at both ends of a timed region"


def cuda_active() -> bool:
    """True when CUDA is available and this process has initialized it (work may be queued)."""
    return torch.cuda.is_available() and torch.cuda.is_initialized()


def sync() -> None:
    """Wait for all queued GPU work (no-op on CPU-only processes)."""
    if cuda_active():
        torch.cuda.synchronize()


class RequestTimeout(Exception):
    """A timed call ran past the per-request timeout."""


@contextlib.contextmanager
def deadline(seconds: float, what: str, limit: float | None = None):
    """Raise RequestTimeout('<what> exceeded timeout_s=<limit>') inside the block once
    `seconds` have passed (`limit` defaults to `seconds`; the server scenario arms the part
    of the timeout its request has not already spent in the queue).

    Pre-emption uses SIGALRM (Unix, main thread only; the previous handler is restored on
    exit, and a timer that was already armed is re-armed with what was left of it). Python delivers the signal between bytecodes, so a call stuck inside one
    long native operation is interrupted when that operation returns. Elsewhere (other threads,
    Windows) nothing is pre-empted and callers check the measured time afterwards, which the
    scenarios always do as well."""
    usable = (hasattr(signal, "setitimer") and threading.current_thread()
              is threading.main_thread())
    if not usable:
        yield
        return

    def _raise(signum, frame):
        raise RequestTimeout(f"{what} exceeded timeout_s={seconds if limit is None else limit:g}")

    previous = signal.signal(signal.SIGALRM, _raise)
    armed = now()
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if old_delay > 0:  # someone else's timer (e.g. a test timeout): give it back
            signal.setitimer(signal.ITIMER_REAL, max(old_delay - (now() - armed), 1e-3),
                             old_interval)


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Set torch's intra-op thread count to `n` for the block, restored afterwards (no-op when
    `n` is None). Yields the count in effect."""
    before = torch.get_num_threads()
    if n is not None and n != before:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def wait_until(t: float) -> None:
    """Sleep until the clock reads `t` (the last millisecond is spun, for sub-ms accuracy)."""
    while True:
        left = t - now()
        if left <= 0:
            return
        if left > 2e-3:
            time.sleep(left - 1e-3)

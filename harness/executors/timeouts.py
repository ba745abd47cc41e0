"""Per-pass time limits (`[execution.pass_timeout_s]`), enforced inside the worker process.

A pass with a limit runs in a daemon thread that the cell waits for at most that long. Python
cannot kill a thread, so a timed-out pass is abandoned and the process is marked tainted; the
executor then replaces the worker process after the cell (the abandoned thread dies with it).
Cells with any time limit therefore never run in the driver's own process (see
`harness.executors.pick`). The per-cell limit (`timeout_s`) is enforced by the executor, which
kills the worker process at the deadline.
"""

from __future__ import annotations

import threading

_TAINTED = threading.Event()


class PassTimeout(Exception):
    """A pass ran past its `[execution.pass_timeout_s]` limit."""


def tainted() -> bool:
    """Whether a timed-out pass left a thread running in this process."""
    return _TAINTED.is_set()


def pass_limit(suite, name: str) -> float | None:
    spec = getattr(suite, "execution", None)
    return None if spec is None else spec.pass_timeout_s.get(name)


def run_pass(p, ctx):
    """`p.run(ctx)`, failed with PassTimeout after the suite's limit for pass `p.name`."""
    limit = pass_limit(ctx.suite, p.name)
    if limit is None:
        return p.run(ctx)
    return call_with_limit(lambda: p.run(ctx), limit,
                           f"pass '{p.name}' timed out after {limit:g} s "
                           f"(execution.pass_timeout_s.{p.name} = {limit:g})")


def call_with_limit(fn, seconds: float, message: str):
    """fn() in a daemon thread; its result, its exception, or PassTimeout(message)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="harness-pass", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _TAINTED.set()
        raise PassTimeout(message)
    if "error" in box:
        raise box["error"]
    return box["value"]

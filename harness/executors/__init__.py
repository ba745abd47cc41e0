"""Where cells run: in this process (default), in N local worker processes, or as Ray tasks.

Every executor runs the same jobs (`harness.executors.jobs`) and hands back the same outcomes;
the driver (`harness.executors.schedule`, called by `harness.runner`) writes every result file.
See docs/scale.md.
"""

from __future__ import annotations

from harness.errors import UserError

EXECUTORS = ("local", "ray")


def pick(kind: str, workers: int, address: str | None, suite, workspace):
    """(executor, note): `local` with 1 worker runs in this process, unless the suite sets time
    limits (they need a killable process: one worker process then); `local` with N > 1 workers
    runs N worker processes; `ray` submits Ray tasks (`workers`: CPUs of a locally started Ray).
    """
    if workers < 1:
        raise UserError(f"--workers must be >= 1, got {workers}")
    if address is not None and kind != "ray":
        raise UserError("--address is only used with --executor ray")
    limits = suite.execution is not None and suite.execution.has_timeouts
    if kind == "ray":
        from harness.executors.ray_executor import RayExecutor
        return RayExecutor(address, workers if workers > 1 else None, isolate=limits), ""
    if kind != "local":
        raise UserError(f"--executor: unknown executor '{kind}'; valid: {', '.join(EXECUTORS)}")
    from harness.executors.processes import ProcessExecutor
    if workers > 1:
        return ProcessExecutor(workers), ""
    if limits:
        import torch
        return (ProcessExecutor(1, threads=torch.get_num_threads()),
                "time limits in [execution] need a killable process: cells ran in one "
                "worker process")
    from harness.executors.inprocess import InProcessExecutor
    return InProcessExecutor(workspace), ""

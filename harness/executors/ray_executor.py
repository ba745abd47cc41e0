"""`--executor ray`: each job is a Ray task (Ray core tasks, not Ray Tune).

With `--address auto|HOST:PORT|ray://HOST:PORT` the driver joins an existing cluster; without
one it starts a local Ray (and always shuts down what it started). Each task asks for the
cell's `num_cpus`, `num_gpus` (fractional allowed) and `memory` from `[execution]`. A task that
dies with its worker or node is reported as lost (the scheduler retries it `retries` times). A
job with a time limit runs in a killable child process inside its Ray task. The fitted model of
a sharded cell is put into the object store once and fetched once per worker process.

Workers need the harness and any plugin modules importable; a locally started Ray gets the
driver's working directory and `sys.path` folders on `PYTHONPATH`. Results come back through
the object store: the driver writes every file (no shared storage needed).
"""

from __future__ import annotations

import os
import socket
import sys

from harness.errors import UserError

INSTALL = "pip install 'recsys-harness[ray]'  (or: pip install ray==2.60.0)"
PROBE_TIMEOUT_S = 5.0
_STATE = None  # the WorkerState of this Ray worker process


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from exc
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of 'HOST:PORT' or 'ray://HOST:PORT'; None for 'auto'."""
    if address == "auto":
        return None
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise UserError(f"--address '{address}': expected auto, HOST:PORT or ray://HOST:PORT")
    return host, int(port)


def probe(address: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast (UserError) when nothing listens at the address."""
    hp = _host_port(address)
    if hp is None:
        return
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as exc:
        raise UserError(f"--address '{address}': no Ray cluster reachable at {hp[0]}:{hp[1]} "
                        f"within {timeout:g} s ({exc}); start one with `ray start --head` or "
                        f"omit --address to start a local Ray") from exc


def _run_job(job, settings: dict):
    """The Ray task: run the job in this worker (or, with a time limit, in a child process)."""
    global _STATE
    import ray
    import torch

    from harness.executors.worker import WorkerState
    ctx = ray.get_runtime_context()
    where = {"executor": "ray", "node_id": ctx.get_node_id(),
             "gpu_ids": [str(g) for g in ray.get_gpu_ids()]}
    threads = max(1, int(getattr(job.resources, "num_cpus", 1) or 1))
    if settings.get("isolate"):
        import dataclasses

        from harness.executors.processes import ProcessExecutor
        if isinstance(job.model, list):  # the child is not a Ray worker: fetch here
            job = dataclasses.replace(job, model=ray.get(job.model[0]))
        pool = ProcessExecutor(1, threads, label="ray", placement=where)
        try:
            pool.submit(job)
            done = []
            while not done:
                done = pool.poll(5.0)
        finally:
            pool.close()
        return done[0][1]
    torch.set_num_threads(threads)
    if _STATE is None:
        import tempfile
        _STATE = WorkerState("ray", tempfile.mkdtemp(prefix="harness-ray-"), quiet=True)
    out = _STATE.execute(job)
    out.placement.update(where)
    return out


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 isolate: bool = False):
        self.ray = import_ray()
        self.address, self.num_cpus, self.isolate = address, num_cpus, isolate
        self.started = False
        self.refs: dict = {}
        self.models: dict = {}  # model_key -> ObjectRef (put once)
        self._remote = None

    def start(self) -> None:
        ray = self.ray
        if self.address:
            probe(self.address)
            self._init(address=self.address)
        else:
            paths = ([os.getcwd()] + [p for p in sys.path if p and os.path.isdir(p)
                                      and "site-packages" not in p and "lib/python" not in p]
                     + os.environ.get("PYTHONPATH", "").split(os.pathsep))
            env = {"PYTHONPATH": os.pathsep.join(p for p in dict.fromkeys(paths) if p)}
            self._init(num_cpus=self.num_cpus or os.cpu_count(), include_dashboard=False,
                       runtime_env={"env_vars": env})
            self.started = True
        self._remote = ray.remote(_run_job)

    def _init(self, **kwargs) -> None:
        """ray.init in the main thread (Ray installs signal handlers there); a named address
        was probed first, so an unreachable one never gets here."""
        try:
            self.ray.init(log_to_driver=False, configure_logging=False, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any connection failure is the user's to fix
            where = self.address or "a local Ray"
            raise UserError(f"could not connect to {where}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc

    def check(self, resources) -> None:
        """UserError when a cell asks for more than any node of the cluster has."""
        nodes = [n["Resources"] for n in self.ray.nodes() if n.get("Alive")]
        for label, r in resources:
            for key, want in (("CPU", r.num_cpus), ("GPU", r.num_gpus)):
                have = max((n.get(key, 0.0) for n in nodes), default=0.0)
                if want > have:
                    raise UserError(f"[execution] model '{label}' asks for {key.lower()} = "
                                    f"{want:g} per cell, but no node of the Ray cluster has "
                                    f"more than {have:g}")

    def submit(self, job) -> None:
        import dataclasses
        r = job.resources
        opts = {"num_cpus": r.num_cpus, "num_gpus": r.num_gpus, "max_retries": 0}
        if r.memory_gb:
            opts["memory"] = int(r.memory_gb * 2 ** 30)
        if isinstance(job.model, (bytes, bytearray)):
            if job.model_key not in self.models:
                self.models = {job.model_key: self.ray.put(job.model), **self.models}
            job = dataclasses.replace(job, model=[self.models[job.model_key]])
        ref = self._remote.options(**opts).remote(job, {"isolate": self.isolate})
        self.refs[ref] = job

    def busy(self) -> int:
        return len(self.refs)

    def forget(self, model_key: str) -> None:
        """Drop a sharded cell's model from the object store once the cell is done."""
        self.models.pop(model_key, None)

    def poll(self, timeout: float | None = 1.0) -> list:
        from harness.executors.jobs import Outcome
        if not self.refs:
            return []
        ready, _ = self.ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(list(self.refs), num_returns=len(self.refs), timeout=0)
        done = []
        for ref in ready:
            job = self.refs.pop(ref)
            try:
                out = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # worker or node lost, OOM-killed
                out = Outcome(False, None, f"Ray task lost ({type(exc).__name__}: "
                                           f"{str(exc).splitlines()[0][:300]})", lost=True,
                              placement={"executor": "ray"})
            done.append((job, out))
        return done

    def info(self) -> dict:
        nodes = [{"host": n.get("NodeManagerHostname"), "address": n.get("NodeManagerAddress"),
                  "alive": n.get("Alive"), "resources": {k: v for k, v in n["Resources"].items()
                                                         if k in ("CPU", "GPU", "memory")}}
                 for n in self.ray.nodes()]
        return {"executor": self.name, "address": self.address or "local (started by the run)",
                "ray_version": self.ray.__version__, "nodes": nodes}

    def close(self) -> None:
        for ref in list(self.refs):
            try:
                self.ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - best effort on shutdown
                pass
        self.refs.clear()
        self.models.clear()
        if self.started:
            self.ray.shutdown()
            self.started = False

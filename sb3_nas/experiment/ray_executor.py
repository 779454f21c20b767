"""Runs as tasks on a Ray cluster: the ``ray`` extra, imported here only, and only when asked for.

The cluster is started the standard way (``ray start --head`` on one machine, ``ray start --address
HEAD:PORT`` on each other); :func:`ray_session` connects to it, or without an address follows Ray's own rule
(``$RAY_ADDRESS``, else the cluster last started on this machine, else a new local instance). Each task
reserves ``cpus`` CPUs and ``gpus`` GPUs of Ray's resources: its torch threads are its CPUs, and device
``auto`` is the GPU Ray gave it (the CPU when it has none).

Tasks write their run folders themselves, where the command would: a folder must therefore lie on a
filesystem every node mounts at the same path, and :meth:`Cluster.check` refuses a cluster one node of which
does not see it, and a SQLite memo or study when the cluster spans several machines. Each task works in the
driver's working directory, so a relative path means on every node what it means to the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sb3_nas.errors import UsageError
from sb3_nas.estimation import AUTO, masked_url
from sb3_nas.estimation.retry import MEMO_RETRY_ENV
from sb3_nas.experiment.comparison import OnDone, PlannedRun, execute_run, on_device

INSTALL = "pip install 'sb3_nas[ray]'"
CONNECT_TIMEOUT_S = 10  # a head that does not answer fails the command quickly
CAPACITY_POLL_S = 5.0  # how often the driver looks for room on the cluster (nodes that joined) between ends
# the driver's settings a task takes with it to whatever node runs it
TASK_ENVIRONMENT = (MEMO_RETRY_ENV,)
CHECK_FILE = ".sb3-nas-ray-check-"  # the marker each node looks for in a folder that must be shared


@dataclass(frozen=True)
class Placement:
    """What each task reserves on its node: CPUs (its torch threads) and GPUs (a fraction shares one)."""

    cpus: int = 1
    gpus: float = 0.0


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--executor ray needs Ray: {INSTALL}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Cluster]:
    """Connected to the Ray cluster at ``address`` (``None``: Ray's own rule) for the block, then
    disconnected (a local instance started here stops). A program already connected keeps its connection."""
    ray = import_ray()
    if ray.is_initialized():
        yield Cluster(ray)
        return
    _check_reachable(address)
    try:
        ray.init(address=address, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as error:
        lines = str(error).strip().splitlines()
        where = f"at {address}" if address else "(no --ray-address)"
        raise UsageError(f"Ray cluster {where}: cannot connect ({lines[0] if lines else error})") from None
    try:
        yield Cluster(ray)
    finally:
        ray.shutdown()


def _check_reachable(address: str | None) -> None:
    """A head given as ``HOST:PORT`` answers on that port, checked in seconds (Ray itself waits minutes)."""
    host, _, port = (address or "").rpartition(":")
    if not host or not port.isdigit() or "/" in host:
        return  # Ray's own rule, "auto", "local" or a ray:// client address: left to Ray
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise UsageError(
            f"Ray cluster at {address}: cannot connect ({error.strerror or error}); start its head with "
            f"ray start --head --port={port}"
        ) from None


def task_device(device: str) -> str:
    """In a task, the device a run asked for as ``device`` trains on: for ``auto`` the first GPU Ray gave the
    task (Ray shows it only those, so ``cuda:0``), else the CPU; any other device as it is."""
    if device != AUTO:
        return device
    return "cuda:0" if import_ray().get_gpu_ids() else "cpu"


def _where() -> str:
    """In a task: the node it runs on and the GPUs Ray gave it, in words."""
    ray = import_ray()
    node = f"node {ray.util.get_node_ip_address()} ({ray.get_runtime_context().get_node_id()[:8]})"
    gpus = ray.get_gpu_ids()
    return f"{node}, GPU {','.join(map(str, gpus))}" if gpus else node


def _in_task(
    cwd: str, threads: int, function: Callable[..., Any], args: tuple, environment: dict[str, str]
) -> tuple[Any, str]:
    """A task's body: in the driver's working directory with its CPUs as torch threads and the driver's
    settings of ``environment`` (the memo's retry budget), ``function(*args)`` and where it ran. Its stdout
    (SB3's tables of runs without a progress bar) is dropped: the driver says how each task ended."""
    os.chdir(cwd)
    os.environ.update(environment)
    torch.set_num_threads(threads)  # the CPUs Ray reserved for it, not the node's: others run beside it
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
        result = function(*args)
    return result, _where()


def _problem_seeing(cwd: str, marker: str) -> str | None:
    """On one node: why the driver's working directory or the marker it wrote is out of sight, or None."""
    if not os.path.isdir(cwd):
        return f"has no folder {cwd}"
    if not os.path.isfile(os.path.join(cwd, marker)):
        return f"does not see {os.path.dirname(os.path.join(cwd, marker))}"
    return None


class Cluster:
    """A connected Ray cluster: its checks before any task, and tasks run with Ctrl-C cancelling them."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray

    def nodes(self) -> list[dict[str, Any]]:
        """The alive nodes, as ``ray.nodes()`` describes them."""
        return [node for node in self.ray.nodes() if node.get("Alive")]

    def check(
        self, placement: Placement, folders: Sequence[Path], databases: Mapping[str, str] | None = None
    ) -> None:
        """Refuse in one line, before any task: a placement no node holds, a SQLite file among ``databases``
        (option → URL) when the nodes are on several machines, and a folder some node does not see."""
        nodes = self.nodes()
        check_placement(nodes, placement)
        check_databases(nodes, databases or {})
        for folder in folders:
            self._check_folder(nodes, Path(folder))

    def _check_folder(self, nodes: Sequence[Mapping[str, Any]], folder: Path) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise UsageError(f"{folder}: cannot create the folder ({error.strerror or error})") from None
        marker = folder / f"{CHECK_FILE}{uuid.uuid4().hex}"
        marker.write_text("")
        look = self.ray.remote(num_cpus=0, max_retries=0)(_problem_seeing)
        try:
            refs = [
                look.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
                ).remote(os.getcwd(), str(marker))
                for node in nodes
            ]
            for node, ref in zip(nodes, refs, strict=True):
                try:
                    problem = self.ray.get(ref)
                except self.ray.exceptions.RayError as error:  # most often: sb3_nas not installed there
                    cause = getattr(error, "cause", None) or error
                    lines = [line for line in str(cause).strip().splitlines() if line.strip()]
                    raise UsageError(
                        f"node {node['NodeManagerAddress']} of the Ray cluster cannot run sb3_nas's tasks "
                        f"({type(cause).__name__}: {lines[-1] if lines else ''}): install sb3_nas there"
                    ) from None
                if problem is not None:
                    raise UsageError(
                        f"node {node['NodeManagerAddress']} of the Ray cluster {problem}: the tasks write "
                        f"{folder.resolve()} themselves, so it must be on a filesystem every node mounts at "
                        "the same path (and so must the working directory)"
                    )
        finally:
            marker.unlink(missing_ok=True)

    def run_tasks(
        self,
        function: Callable[..., Any],
        calls: Sequence[tuple],
        placement: Placement,
        on_result: Callable[[int, Any, str], None],
    ) -> None:
        """``function(*call)`` for every call, each a task with the placement's resources, as many at once as
        the cluster has room for; ``on_result(index, result, where)`` as each ends.

        A task that raises lets the running ones finish, starts no other and is raised (its own exception, so
        bad input stays one line); Ctrl-C (or SIGTERM) cancels the running tasks, each of which gets a
        ``KeyboardInterrupt`` and ends as a local run does (keeping its records), waits for them to end and is
        raised as ``KeyboardInterrupt``.
        """
        ray = self.ray
        remote = ray.remote(num_cpus=placement.cpus, num_gpus=placement.gpus, max_retries=0)(_in_task)
        waiting = list(enumerate(calls))[::-1]  # popped from the end: in order
        running: dict[Any, int] = {}
        errors: list[BaseException] = []
        cwd = os.getcwd()
        environment = {name: os.environ[name] for name in TASK_ENVIRONMENT if name in os.environ}
        try:
            while running or (waiting and not errors):
                while waiting and not errors and len(running) < self._room(placement):
                    index, call = waiting.pop()
                    running[remote.remote(cwd, placement.cpus, function, tuple(call), environment)] = index
                done, _ = ray.wait(list(running), num_returns=1, timeout=CAPACITY_POLL_S)
                for ref in done:
                    index = running.pop(ref)
                    try:
                        result, where = ray.get(ref)
                    except ray.exceptions.RayError as error:  # raised in the task, or its worker or node died
                        cause = getattr(error, "cause", None)
                        if isinstance(cause, KeyboardInterrupt):  # the task itself was sent Ctrl-C
                            raise KeyboardInterrupt("a task was interrupted") from None
                        errors.append(cause if isinstance(cause, Exception) else error)
                        continue
                    on_result(index, result, where)
            if errors:
                raise errors[0]
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref)  # not forced: KeyboardInterrupt in the task, whose run keeps its records
            for ref in running:
                with contextlib.suppress(ray.exceptions.RayError):
                    ray.get(ref)  # returns once the task has ended
            raise

    def _room(self, placement: Placement) -> int:
        """How many tasks of ``placement`` the cluster's nodes hold at once (at least 1)."""
        total = self.ray.cluster_resources()
        room = total.get("CPU", 0.0) // placement.cpus
        if placement.gpus:
            room = min(room, total.get("GPU", 0.0) // placement.gpus)
        return max(1, int(room))


def check_placement(nodes: Sequence[Mapping[str, Any]], placement: Placement) -> None:
    """Refuse a placement that no node of the cluster holds (a task would wait for ever)."""
    for node in nodes:
        resources = node.get("Resources", {})
        if resources.get("CPU", 0.0) >= placement.cpus and resources.get("GPU", 0.0) >= placement.gpus:
            return
    gpus = f" and {placement.gpus:g} GPUs" if placement.gpus else ""
    raise UsageError(
        f"no node of the Ray cluster has {placement.cpus} CPUs{gpus} for a task: lower --cpus-per-run"
        + (" or --gpus-per-run" if placement.gpus else "")
    )


def check_databases(nodes: Sequence[Mapping[str, Any]], databases: Mapping[str, str]) -> None:
    """Refuse a SQLite file among ``databases`` (option → URL) when the nodes are on several machines: it lies
    on one of them (and SQLite's locks do not hold over a network filesystem)."""
    from sb3_nas.tuning.study import is_server_url

    machines = {node.get("NodeManagerAddress") for node in nodes}
    if len(machines) < 2:
        return
    for option, url in databases.items():
        if not is_server_url(url):
            raise UsageError(
                f"the Ray cluster spans {len(machines)} machines, and {option} {masked_url(url)} is a SQLite "
                f"file on one: give {option} a database server every node reaches (postgresql://…)"
            )


def execute_plan_on_ray(
    plan: Sequence[PlannedRun],
    address: str | None,
    placement: Placement,
    folders: Sequence[Path],
    on_done: OnDone | None = None,
) -> None:
    """Every planned run not reused as a task on the Ray cluster at ``address``, after :meth:`Cluster.check`
    of ``folders`` (the comparison's, and its TensorBoard folder if any) and of the memo; failures and Ctrl-C
    as :meth:`Cluster.run_tasks` says. ``on_done`` gets each run, its seconds and where it ran."""
    todo = [planned for planned in plan if planned.action != "reuse"]
    if not todo:
        return

    def done(index: int, seconds: float, where: str) -> None:
        if on_done is not None:
            on_done(todo[index], seconds, where)

    with ray_session(address) as cluster:
        cluster.check(placement, folders, {"--memo": todo[0].config.memo})
        cluster.run_tasks(_run_planned, [(planned,) for planned in todo], placement, done)


def _run_planned(planned: PlannedRun) -> float:
    """A task: one run of a comparison, on the device Ray gave it."""
    return execute_run(on_device(planned, task_device(planned.config.device)), progress=False)

"""What ``run.json`` records of a run on Ray: the cluster, its nodes, the backend actors and the faults met."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeInfo:
    """One alive node of the cluster: its Ray id, address, and resources (logical CPUs, GPUs, memory bytes)."""

    node_id: str
    address: str
    cpus: float
    gpus: float
    memory_bytes: int


@dataclass(frozen=True)
class ActorInfo:
    """One backend actor: where it runs (node, process), on what (device, Ray GPU ids, CPUs it reserved,
    threads), its backend's tables (``cache`` or ``built``, seconds) where it has them, and the software that
    computed (the backend's ``framework``)."""

    index: int
    node_id: str
    node_address: str
    pid: int
    device: str
    gpu_ids: list[str]
    cpus: float
    threads: int | None
    tables_source: str | None = None
    tables_load_seconds: float | None = None
    framework: str | None = None


@dataclass
class ClusterInfo:
    """What ``run.json`` records of a run on Ray: the cluster (joined at ``address``, or ``local``), its nodes,
    the actors, the batches each may hold in flight, and what went wrong during the run (actors lost,
    batches resubmitted to another actor)."""

    address: str
    ray_version: str
    nodes: list[NodeInfo]
    actors: list[ActorInfo] = field(default_factory=list)
    in_flight_per_actor: int = 2
    actors_lost: int = 0
    #: actors that held a batch past its stall bound without dying, and were killed (:mod:`sut.stall`)
    actors_hung: int = 0
    batches_resubmitted: int = 0

    def summary(self, with_address: bool = True) -> str:
        """One line: actors, devices, nodes (and the cluster's address), for logs, reports and the system
        description."""
        devices = sorted({actor.device for actor in self.actors})
        nodes = len({actor.node_id for actor in self.actors})
        return (f"Ray {self.ray_version}: {len(self.actors)} backend actor(s) on {', '.join(devices) or 'no device'}, "
                f"over {nodes} of the cluster's {len(self.nodes)} node(s)" + (f" ({self.address})" if with_address else ""))

    def faults(self) -> str:
        """What went wrong during the run, to append to :meth:`summary`; empty if nothing did."""
        if not self.actors_lost and not self.actors_hung:
            return ""
        hung = f", {self.actors_hung} hung and killed" if self.actors_hung else ""
        return (f"; {self.actors_lost} actor(s) lost{hung}, {self.batches_resubmitted} batch(es) resubmitted to other "
                "actors")


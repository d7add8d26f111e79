"""Batches run on a pool of Ray backend actors (``run.py --ray``): the cluster and the pool behind the seam.

:meth:`RayExecutor.open` starts a local Ray instance on 127.0.0.1 (or joins
``--ray-address``) and the backend actors (:class:`sut.ray_pool.ActorPool`);
:meth:`RayExecutor.run` hands a batch to the pool and returns at once (or
waits while every actor is full, so that the Server batcher gathers the
queries that arrive meanwhile into its next batch). Results come back on the
pool's completion thread with their own sample ids. A batch that cannot
complete (every actor died or hung, a backend error inside an actor) fails,
and the run with it (exit 3), as a local backend error does; a hung actor
alone is dropped and its batches go to the others (:mod:`sut.ray_pool`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.backends import Backend
from readback.cluster import ClusterInfo
from sut.config import RunConfig
from sut.executor import Complete, Executor, ExecutorInfo, Fail
from sut.ray_cluster import RayCluster, check_reachable, import_ray, resolve_address
from sut.ray_pool import ActorPool, actor_spec, default_actor_count
from sut.stall import StallLimits

log = logging.getLogger(__name__)


class RayExecutor(Executor):
    """Backend actors on a Ray cluster: ``actors`` of them (default: as many as the cluster holds), each making
    ``backend`` from ``weights`` on ``device`` and reserving ``actor_cpus``; ``in_flight`` batches each."""

    def __init__(self, backend: str, weights: Path, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32", *, address: str | None = None, actors: int | None = None,
                 actor_cpus: float | None = None, in_flight: int = 2, stall_limits: StallLimits = StallLimits()):
        self.backend_name, self.weights, self.device = backend, Path(weights), device
        self.threads, self.precision = threads, precision
        self.actors, self.actor_cpus, self.in_flight = actors, actor_cpus, in_flight
        self.stall_limits = stall_limits
        self.ray_cluster = RayCluster(address)
        self.pool: ActorPool | None = None
        #: the cluster and its actors as last seen (kept after the pool closes)
        self.info: ClusterInfo | None = None

    @classmethod
    def from_config(cls, config: RunConfig, backend: Backend | None = None) -> RayExecutor:
        """The actors make their own backends (``--backend``): a ``backend`` object of this process is not used."""
        return cls(config.backend, config.model_path, config.device, config.threads, config.precision,
                   address=config.ray_address, actors=config.ray_actors, actor_cpus=config.ray_actor_cpus,
                   in_flight=config.ray_in_flight, stall_limits=config.stall_limits)

    @classmethod
    def check_available(cls, config: RunConfig) -> None:
        """Ray importable (else how to install it), and a cluster at ``--ray-address`` (for ``auto``: the one Ray's
        lookup names) that answers (Ray itself would retry for minutes)."""
        import_ray(config.ray_address)
        address, named_in = resolve_address(config.ray_address)
        if address not in (None, "auto"):
            check_reachable(address, named_in=named_in)

    def open(self) -> None:
        self.ray_cluster.start()
        spec = actor_spec(self.backend_name, self.device, self.precision, self.threads, self.actor_cpus,
                          self.weights)
        actors = self.actors or default_actor_count(self.ray_cluster, spec)
        log.info("starting %d %s backend actor(s) on Ray (%g CPUs%s each)", actors, self.backend_name, spec.cpus,
                 ", 1 GPU" if spec.gpus else "")
        self.pool = ActorPool(self.ray_cluster, spec, self.weights, actors, self.in_flight,
                              stall_limits=self.stall_limits)

    def run(self, sample_ids: Sequence[int], token_ids: Sequence[np.ndarray], complete: Complete, fail: Fail) -> None:
        assert self.pool is not None, "open() the executor first"
        self.pool.submit(sample_ids, token_ids, complete, fail)

    #: the pool declares a hung actor itself (:meth:`ActorPool._declare_hung`)
    watches_own_stalls = True

    @property
    def stall_location(self) -> str:
        return "the Ray actor pool, waiting for an actor with room"

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        assert self.pool is not None, "open() the executor first"
        return self.pool.labels(token_ids)

    @property
    def parallel_batches(self) -> int:
        """As many batches as the live actors hold."""
        assert self.pool is not None, "open() the executor first"
        return self.pool.live_actors * self.pool.in_flight_per_actor

    def describe(self) -> ExecutorInfo:
        """The actors' backend and the framework the first of them reports; each actor's own tables are in
        :meth:`cluster`."""
        cluster = self.cluster()
        actors = cluster.actors if cluster is not None else []
        return ExecutorInfo(self.backend_name, self.precision,
                            framework=next((actor.framework for actor in actors if actor.framework), None))

    def cluster(self) -> ClusterInfo | None:
        if self.pool is not None:
            self.info = self.pool.cluster_info()
        return self.info

    def close(self, drain: bool = True) -> None:
        """Stop the actors (after the batches in flight when ``drain``; else failing them, so that each sample is
        still answered) and disconnect from the cluster (a local instance ends with it)."""
        pool, self.pool = self.pool, None
        try:
            if pool is not None and drain:
                pool.shutdown()
            elif pool is not None:
                pool.abandon()
            if pool is not None:
                self.info = pool.cluster_info()
        finally:
            self.ray_cluster.stop()

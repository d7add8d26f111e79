"""The driver's pool of backend actors on Ray, and the asynchronous dispatch of the SUT's batches to them.

:class:`ActorPool` starts the actors (:class:`sut.ray_actor.BackendActor`, one backend each; refusing, before
anything waits, a request the cluster cannot hold), then runs batches on them. :meth:`ActorPool.submit` sends a
batch (one message of :mod:`sut.ray_wire`) to the live actor with the fewest batches in flight and returns; it
waits only while every actor holds ``in_flight_per_actor`` batches. Each result comes back with the sample ids of
its own batch (never matched by position) and is handed, on the pool's one completion thread, to the batch's
callback.

Faults: an actor that dies (its process killed, its node lost) is dropped, and its batches in flight are
resubmitted to a live actor, so each batch completes once. An actor that hangs without dying (stopped,
swapping, a hung node or device) is seen by the pool's watch thread: once a batch it holds is past its stall
bound (:mod:`sut.stall`), the actor is declared hung, killed, and its batches go to the live actors the same
way (counted as ``actors_hung``). With no actor left, every batch in flight and
every later one fails with :class:`NoActorsLeftError` through its ``on_error`` callback: the run stops, it
does not hang. A backend error inside an actor fails its batch the same way (the same batch would fail
again elsewhere). A run that stops without waiting for its batches (:meth:`ActorPool.abandon`) fails every
batch still in flight, and every later one, so that no sample is left unanswered.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common.errors import InferenceFailedError
from readback.cluster import ActorInfo, ClusterInfo
from sut.config import DEFAULT_ACTOR_CPUS, DEFAULT_IN_FLIGHT
from sut.ray_actor import ActorSpec, BackendActor
from sut.ray_cluster import ClusterError, RayCluster
from sut.ray_wire import decode_result, encode_batch
from sut.stall import BatchClock, Stall, StallLimits

log = logging.getLogger(__name__)

#: how long the actors may take to start (load weights, build or read tables, compile) before the run gives up (s)
ACTOR_START_TIMEOUT_S = 300.0

#: called with (sample ids uint64, labels int64) of a batch that completed
ResultCallback = Callable[[np.ndarray, np.ndarray], None]
#: called with (sample ids uint64, error) of a batch that cannot complete
ErrorCallback = Callable[[np.ndarray, BaseException], None]


class NoActorsLeftError(RuntimeError):
    """Every backend actor of the pool died: nothing is left to run batches on."""


class ActorStartError(ClusterError):
    """A backend actor could not start (bad weights, no such device, no room in the cluster)."""


def actor_spec(backend: str, device: str, precision: str, threads: int | None, actor_cpus: float | None,
               weights_path: Path) -> ActorSpec:
    """What each actor runs and reserves. A GPU actor asks Ray for one GPU (Ray then shows it only that one:
    it runs on ``cuda``) and ``actor_cpus`` CPUs (default 1); a CPU actor for ``actor_cpus`` CPUs (default
    ``threads``, else :data:`DEFAULT_ACTOR_CPUS`), and its backend uses that many threads unless ``threads``
    says otherwise. The weights are checked here against their recorded sha256 (:class:`WeightsError`)."""
    from model.weights import verified_sha256

    on_gpu = device.split(":")[0] == "cuda"
    if on_gpu and device != "cuda":
        log.warning("--device %s on Ray: each actor gets one GPU from Ray and uses it as 'cuda'", device)
    cpus = actor_cpus if actor_cpus is not None else (1 if on_gpu else threads or DEFAULT_ACTOR_CPUS)
    threads = threads or (None if on_gpu else max(1, int(cpus)))
    return ActorSpec(backend, "cuda" if on_gpu else device, precision, threads, Path(weights_path).name,
                     verified_sha256(Path(weights_path)), float(cpus), 1.0 if on_gpu else 0.0)


def default_actor_count(cluster: RayCluster, spec: ActorSpec) -> int:
    """One actor per GPU of the cluster for a GPU backend, else one per ``spec.cpus`` of its CPUs (at least 1)."""
    resources = cluster.resources()
    if spec.gpus:
        gpus = int(resources.get("GPU", 0) // spec.gpus)
        if gpus < 1:
            raise ActorStartError(f"--device {spec.device} on Ray needs GPUs, and the Ray cluster has none: start its "
                                  "nodes on machines with GPUs (Ray finds them), or use --device cpu")
        return gpus
    return max(1, sum(int(node.cpus // spec.cpus) for node in cluster.nodes()))  # an actor lives on one node


def actor_class(ray, spec: ActorSpec):
    """:class:`~sut.ray_actor.BackendActor` as a Ray actor class reserving ``spec``'s CPUs and GPUs. No restarts
    and no task retries by Ray: the pool resubmits a lost batch itself, to another actor, and counts it.

    The actors' OpenMP threads wait passively (``OMP_WAIT_POLICY``, unless set here): spinning between
    batches, they take the cores that Ray's own threads need to deliver the next one."""
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    return ray.remote(num_cpus=spec.cpus, num_gpus=spec.gpus, max_restarts=0, max_task_retries=0,
                      runtime_env={"env_vars": env})(BackendActor)


@dataclass
class _Batch:
    serial: int
    sample_ids: np.ndarray
    message: bytes
    on_result: ResultCallback
    on_error: ErrorCallback
    actor: int = -1


_STOP = object()
#: the error of a batch still in flight, or sent later, when the run stopped without waiting for it
ABANDONED_MESSAGE = "the run stopped before this batch was answered"


class ActorPool:
    """Backend actors on a Ray cluster, and the dispatch of batches to them (see the module docstring);
    :meth:`labels` waits for one batch (the Offline calibration)."""

    def __init__(self, cluster: RayCluster, spec: ActorSpec, weights_path: Path, actors: int,
                 in_flight_per_actor: int = DEFAULT_IN_FLIGHT, start_timeout_s: float = ACTOR_START_TIMEOUT_S,
                 stall_limits: StallLimits = StallLimits()):
        if actors < 1 or in_flight_per_actor < 1:
            raise ValueError("--ray-actors and --ray-in-flight must be at least 1")
        self.ray = cluster.ray
        self.spec = spec
        self.in_flight_per_actor = in_flight_per_actor
        self.info: ClusterInfo = cluster.info()
        self.info.in_flight_per_actor = in_flight_per_actor
        self._check_room(cluster, actors)
        self._handles = self._start_actors(weights_path, actors, start_timeout_s)
        self._alive = [True] * len(self._handles)
        self._in_flight = [0] * len(self._handles)
        self._served = [False] * len(self._handles)
        self._serials = itertools.count()
        #: batches sent and not yet settled (answered, failed or abandoned), by serial
        self._pending: dict[int, _Batch] = {}
        self._abandoned = False
        self._lock = threading.Condition()
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        #: the backend's own time for the last batch that completed, measured inside its actor (ns)
        self.last_compute_ns = 0
        self._completer = threading.Thread(target=self._complete, name="ray-completion", daemon=True)
        self._completer.start()
        #: every batch sent, until its answer is in; the watch thread declares an actor hung by it
        self._clock = BatchClock(stall_limits)
        self._stopping = threading.Event()
        self._watch_interval_s = min(1.0, stall_limits.floor_s / 4)
        self._watcher = threading.Thread(target=self._watch, name="ray-stall-watch", daemon=True)
        self._watcher.start()

    # Start-up ------------------------------------------------------------

    def _check_room(self, cluster: RayCluster, actors: int) -> None:
        """Refuse actors the cluster cannot hold, which Ray would otherwise leave pending for ever: each must
        fit on one node, and all of them in the cluster's free resources."""
        nodes = cluster.nodes()
        free = cluster.available()
        for resource, each in (("CPU", self.spec.cpus), ("GPU", self.spec.gpus)):
            if not each:
                continue
            option = "--ray-actor-cpus" if resource == "CPU" else "--device"
            largest = max((node.cpus if resource == "CPU" else node.gpus for node in nodes), default=0.0)
            if each > largest + 1e-9:
                raise ActorStartError(
                    f"a backend actor of {each:g} {resource}s fits on no node of the Ray cluster (the largest has "
                    f"{largest:g}): lower {option}")
            have = free.get(resource, 0.0)
            if actors * each > have + 1e-9:
                raise ActorStartError(
                    f"{actors} backend actor(s) of {each:g} {resource}(s) each need {actors * each:g} {resource}s, and "
                    f"the Ray cluster has {have:g} free: lower --ray-actors or {option}, or add nodes to the cluster")

    def _start_actors(self, weights_path: Path, actors: int, timeout_s: float) -> list:
        ray = self.ray
        started = time.perf_counter()
        weights_ref = ray.put(Path(weights_path).read_bytes())
        remote_class = actor_class(ray, self.spec)
        handles = [remote_class.remote(self.spec, weights_ref) for _ in range(actors)]
        pending = {handle.describe.remote(): index for index, handle in enumerate(handles)}
        described: dict[int, dict] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
                if not ready:
                    raise ActorStartError(
                        f"{len(pending)} of {actors} backend actor(s) did not start within {timeout_s:.0f} s: the "
                        f"cluster may be short of what each asks for ({self.spec.cpus:g} CPUs, {self.spec.gpus:g} "
                        "GPUs; 'ray status' shows what is free), or the nodes cannot import this project (install "
                        "it on every node)")
                index = pending.pop(ready[0])
                try:
                    described[index] = ray.get(ready[0])
                except Exception as error:  # noqa: BLE001 - the actor's constructor failed: say why
                    raise ActorStartError(f"backend actor {index} could not start: {_cause(error)}") from None
        except BaseException:
            for handle in handles:
                _kill(ray, handle)
            raise
        self.info.actors = [ActorInfo(index=index, **described[index]) for index in range(actors)]
        for actor in self.info.actors:
            log.info("Ray actor %d ready: pid %d on node %s, %s%s", actor.index, actor.pid, actor.node_address,
                     actor.device, f" (GPU {', '.join(actor.gpu_ids)})" if actor.gpu_ids else "")
        log.info("%d backend actor(s) started in %.1f s", actors, time.perf_counter() - started)
        return handles

    # Dispatch ------------------------------------------------------------

    @property
    def live_actors(self) -> int:
        with self._lock:
            return sum(self._alive)

    def submit(self, sample_ids: Sequence[int], token_ids: Sequence[np.ndarray], on_result: ResultCallback,
               on_error: ErrorCallback) -> None:
        """Send a batch to an actor and return; wait while every live actor is full. The batch's callback runs
        on the completion thread: ``on_result(sample ids, labels)`` or ``on_error(sample ids, error)``."""
        ids = np.asarray(sample_ids, dtype=np.uint64)
        batch = _Batch(next(self._serials), ids, encode_batch(ids, token_ids), on_result, on_error)
        with self._lock:
            while self._free_actor() is None and any(self._alive) and not self._abandoned:
                self._lock.wait()
            if not self._abandoned:
                self._send(batch, self._free_actor())
                return
        on_error(ids, InferenceFailedError(ABANDONED_MESSAGE))

    def _free_actor(self) -> int | None:
        """The live actor with the fewest batches in flight, if it has room (lock held)."""
        index = self._least_busy()
        return index if index is not None and self._in_flight[index] < self.in_flight_per_actor else None

    def _least_busy(self) -> int | None:
        """The live actor with the fewest batches in flight, full or not (lock held); None when none is left."""
        live = [index for index, alive in enumerate(self._alive) if alive]
        return min(live, key=self._in_flight.__getitem__) if live else None

    def _send(self, batch: _Batch, actor: int | None) -> None:
        """Send ``batch`` to ``actor`` (lock held); with no actor left, fail it on the completion thread."""
        if actor is None:
            self._done.put((batch, None))
            return
        batch.actor = actor
        self._in_flight[actor] += 1
        self._pending[batch.serial] = batch
        self._clock.start(batch.serial, len(batch.sample_ids), f"batch {batch.serial}", self._actor_name(actor))
        reference = self._handles[actor].labels.remote(batch.message)
        if not self._served[actor]:
            self._served[actor] = True
            log.info("Ray actor %d took its first batch (%d samples)", actor, len(batch.sample_ids))
        reference.future().add_done_callback(lambda future, batch=batch: self._done.put((batch, future)))

    def _complete(self) -> None:
        """The completion thread: each finished batch's callback, in the order they finish."""
        while True:
            item = self._done.get()
            if item is _STOP:
                return
            batch, future = item
            if future is None:
                batch.on_error(batch.sample_ids, NoActorsLeftError(self._no_actors_message()))
                continue
            with self._lock:
                if self._pending.pop(batch.serial, None) is None:
                    continue  # abandoned: its callback has been called already
                self._in_flight[batch.actor] -= 1
                self._lock.notify_all()
            try:
                sample_ids, labels, self.last_compute_ns = decode_result(future.result())
            except self.ray.exceptions.RayActorError as error:
                self._clock.forget(batch.serial)
                self._resubmit(batch, error)
                continue
            except BaseException as error:  # noqa: BLE001 - the backend failed inside the actor
                self._clock.forget(batch.serial)
                batch.on_error(batch.sample_ids, InferenceFailedError(f"backend actor {batch.actor}: {_cause(error)}"))
                continue
            self._clock.stop(batch.serial)
            if not np.array_equal(sample_ids, batch.sample_ids):
                batch.on_error(batch.sample_ids, InferenceFailedError(
                    f"backend actor {batch.actor} answered batch {batch.serial} with the results of other samples"))
                continue
            try:
                batch.on_result(batch.sample_ids, labels)
            except BaseException as error:  # noqa: BLE001 - a callback's error must not end this thread
                batch.on_error(batch.sample_ids, error)

    def _resubmit(self, batch: _Batch, error: BaseException) -> None:
        """``batch``'s actor died: drop the actor and send the batch to a live one (even a full one: this thread
        must never wait on itself)."""
        with self._lock:
            abandoned = self._abandoned
            if self._alive[batch.actor]:
                self._alive[batch.actor] = False
                self.info.actors_lost += 1
                actor = self.info.actors[batch.actor]
                log.warning("Ray actor %d (pid %d on %s) died: %s; %d actor(s) left", batch.actor, actor.pid,
                            actor.node_address, _cause(error), sum(self._alive))
                _kill(self.ray, self._handles[batch.actor])
            self._lock.notify_all()
            if not abandoned:
                target = self._least_busy()
                if target is not None:
                    self.info.batches_resubmitted += 1
                    log.info("batch %d (%d samples) resubmitted to actor %d", batch.serial, len(batch.sample_ids),
                             target)
                self._send(batch, target)
                return
        batch.on_error(batch.sample_ids, InferenceFailedError(ABANDONED_MESSAGE))

    def _no_actors_message(self) -> str:
        hung = f", {self.info.actors_hung} hung and killed" if self.info.actors_hung else ""
        return (f"all {len(self._handles)} Ray backend actors died ({self.info.actors_lost} lost{hung} during the "
                "run); nothing is left to run the batches: see the actors' logs (Ray's session folder) and run again")

    # Stalls --------------------------------------------------------------

    def _actor_name(self, index: int) -> str:
        actor = self.info.actors[index] if index < len(self.info.actors) else None
        return f"Ray actor {index}" + (f" (pid {actor.pid} on {actor.node_address})" if actor is not None else "")

    def _watch(self) -> None:
        """The watch thread: an actor holding a batch past its stall bound is declared hung."""
        while not self._stopping.wait(self._watch_interval_s):
            found = self._clock.stalled()
            if found is not None:
                self._declare_hung(*found)

    def _declare_hung(self, serial: int, stall: Stall) -> None:
        """Batch ``serial`` is past its bound: its actor is hung. Kill the actor and send every batch it held
        to the live actors under new serials (an answer of the old one, if any ever comes, is then ignored)."""
        with self._lock:
            batch = self._pending.get(serial)
            if batch is None or self._abandoned or not self._alive[batch.actor]:
                self._clock.forget(serial)
                return
            index = batch.actor
            self._alive[index] = False
            self.info.actors_hung += 1
            held = sorted((held for held in self._pending.values() if held.actor == index), key=lambda b: b.serial)
            for stranded in held:
                del self._pending[stranded.serial]
                self._clock.forget(stranded.serial)
            self._in_flight[index] = 0
            log.warning("%s hung: %s of %d sample(s) unanswered for %.1f s, past the stall bound of %.1f s (%s); "
                        "the actor is killed and its %d batch(es) go to the live actors; %d actor(s) left",
                        stall.where, stall.batch, stall.reviews, stall.waited_s, stall.bound_s, stall.basis, len(held),
                        sum(self._alive))
            _kill(self.ray, self._handles[index])
            self._lock.notify_all()
            for stranded in held:
                target = self._least_busy()
                moved = replace(stranded, serial=next(self._serials))
                if target is not None:
                    self.info.batches_resubmitted += 1
                    log.info("batch %d (%d samples) of hung actor %d resubmitted to actor %d", stranded.serial,
                             len(stranded.sample_ids), index, target)
                self._send(moved, target)

    # One batch, waiting for it (the calibration) ------------------------------

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """Labels of a batch, computed on an actor (waits for them)."""
        finished = threading.Event()
        outcome: list = []

        def on_result(_ids: np.ndarray, labels: np.ndarray) -> None:
            outcome.append(labels)
            finished.set()

        def on_error(_ids: np.ndarray, error: BaseException) -> None:
            outcome.append(error)
            finished.set()

        self.submit(np.arange(len(token_ids), dtype=np.uint64), token_ids, on_result, on_error)
        finished.wait()
        if isinstance(outcome[0], BaseException):
            raise outcome[0]
        return outcome[0]

    # Shutdown ------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the completion thread (after the batches in flight) and the actors."""
        with self._lock:
            while any(self._in_flight) and any(self._alive):
                self._lock.wait(timeout=1.0)
        self._stopping.set()
        self._done.put(_STOP)
        self._completer.join()
        for handle in self._handles:
            _kill(self.ray, handle)
        self._handles = []

    def abandon(self) -> None:
        """Stop without waiting (the run failed): fail every batch in flight, and every later one, through its
        ``on_error`` callback (so each sample is answered once), and stop the actors.

        The completion and watch threads are left parked (daemons, idle) rather than ended: each may have
        answered LoadGen, whose test is still running after a failure, and a thread that answered LoadGen must
        not end while its test runs (LoadGen's log thread then reads the ended thread's buffers: a segfault,
        seen once in CI in place of the run's exit code 3). The process ends with them (``run.py``)."""
        with self._lock:
            self._abandoned = True
            abandoned = sorted(self._pending.values(), key=lambda batch: batch.serial)
            self._pending.clear()
            self._in_flight = [0] * len(self._in_flight)
            self._lock.notify_all()
        for batch in abandoned:
            try:
                batch.on_error(batch.sample_ids, InferenceFailedError(ABANDONED_MESSAGE))
            except Exception as error:  # noqa: BLE001 - the other batches must still be answered
                log.debug("a callback of an abandoned batch failed: %s", error)
        for handle in self._handles:
            _kill(self.ray, handle)
        self._handles = []

    def cluster_info(self) -> ClusterInfo:
        """The cluster, the actors, and the faults so far (a copy)."""
        with self._lock:
            return replace(self.info, actors=list(self.info.actors), nodes=list(self.info.nodes))


def _cause(error: BaseException) -> str:
    """The message of the error an actor raised, without Ray's wrapping."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    text = lines[-1] if lines else ""
    if type(error).__module__.startswith("ray"):
        text = text.split(". ")[0]  # Ray's own errors: the first sentence says what happened; the rest is advice
    return f"{type(error).__name__}: {text}"


def _kill(ray, handle) -> None:
    """End an actor's process (one already dead too)."""
    try:
        ray.kill(handle, no_restart=True)
    except Exception as error:  # noqa: BLE001 - nothing more to do for an actor that cannot be reached
        log.debug("could not kill a Ray actor: %s", error)

"""What Ray costs the SUT: the overhead of one batch on a backend actor, and how the token ids should travel.

    python -m tools.bench_ray [--ray-address HOST:PORT] [--output ray-bench.json]

One backend actor (the run's default: the folded backend, ``--ray-actor-cpus`` CPUs) on a local Ray
instance bound to 127.0.0.1, or on the cluster at ``--ray-address``. For each batch size, batches of real
test reviews go one at a time (nothing else in flight) through the SUT's :class:`sut.ray_pool.ActorPool`:

- ``round trip``: from the submit to the result on the completion thread (what a SingleStream query pays);
- ``in actor``: the backend's own time for the batch, measured inside the actor;
- ``overhead``: their difference (median), per batch and per review: serialisation, Ray's scheduling,
  the object store, the hand-off to the completion thread.

It then compares the two ways the token ids can travel, on the same actor: with each batch (what the SUT
does: one message of ids, lengths and token ids), or put once per loaded sample set in the object store,
each batch naming its reviews by position (round trips without the completion thread). The table goes to stdout, the figures to ``--output`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common.errors import run_command
from common.text import plain
from model.paths import DEFAULT_WEIGHTS
from qsl.locations import DATASET_LOOKUP_HELP, resolve_dataset_path
from qsl.token_cache import load_test_split
from qsl.vocabulary import DEFAULT_VOCABULARY
from sut.ray_actor import BackendActor
from sut.ray_cluster import RayCluster
from sut.ray_pool import ActorPool, actor_spec
from sut.ray_wire import decode_batch, encode_batch, encode_result

log = logging.getLogger("bench_ray")

BATCH_SIZES = (1, 8, 64, 1024, 4096)
#: reviews put in the object store once for the by-position transport (a loaded sample set's size)
SET_REVIEWS = 8192


class IndexedBackendActor(BackendActor):
    """The SUT's actor, plus the other transport: a sample set held once, batches named by position."""

    def hold(self, message: bytes) -> int:
        self.held_message = message  # the reviews below are views of it
        self.held = decode_batch(message)[1]
        return len(self.held)

    def labels_at(self, message: bytes) -> bytes:
        """Like :meth:`labels`, for a message of n sample ids then n positions in the held set (int64)."""
        started = time.perf_counter_ns()
        count = len(message) // 16
        sample_ids = np.frombuffer(message, "<u8", count=count)
        positions = np.frombuffer(message, "<i8", offset=8 * count)
        labels = np.asarray(self.backend.labels([self.held[position] for position in positions]))
        return encode_result(sample_ids, labels, time.perf_counter_ns() - started)


def median_us(values_ns: list[int]) -> float:
    return statistics.median(values_ns) / 1e3


def measure_overhead(pool: ActorPool, reviews: list[np.ndarray], size: int, repeats: int) -> dict:
    """Round trip, in-actor time and overhead (µs, medians) of batches of ``size`` reviews, one at a time."""
    rng = np.random.default_rng(size)
    round_trips, inside = [], []
    for _ in range(repeats):
        batch = [reviews[index] for index in rng.choice(len(reviews), size=size, replace=False)]
        done: list = []

        def on_result(_ids: np.ndarray, labels: np.ndarray) -> None:
            done.append(time.perf_counter_ns())

        def on_error(_ids: np.ndarray, error: BaseException) -> None:
            raise error

        started = time.perf_counter_ns()
        pool.submit(np.arange(size, dtype=np.uint64), batch, on_result, on_error)
        while not done:
            time.sleep(0)
        round_trips.append(done[0] - started)
        inside.append(pool.last_compute_ns)
    overhead = [trip - compute for trip, compute in zip(round_trips, inside)]
    return {"batch": size, "round_trip_us": median_us(round_trips), "in_actor_us": median_us(inside),
            "overhead_us": median_us(overhead), "overhead_us_per_review": median_us(overhead) / size}


def measure_transport(ray, actor, reviews: list[np.ndarray], size: int, repeats: int) -> dict:
    """Round trips (µs, medians) of one batch with its token ids, and of the same batch named by position."""
    rng = np.random.default_rng(size)
    with_ids, by_position = [], []
    for _ in range(repeats):
        positions = rng.choice(len(reviews), size=size, replace=False)
        ids = np.arange(size, dtype=np.uint64)
        started = time.perf_counter_ns()
        ray.get(actor.labels.remote(encode_batch(ids, [reviews[position] for position in positions])))
        with_ids.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        ray.get(actor.labels_at.remote(ids.tobytes() + positions.astype("<i8").tobytes()))
        by_position.append(time.perf_counter_ns() - started)
    return {"batch": size, "with_token_ids_us": median_us(with_ids), "by_position_us": median_us(by_position),
            "message_bytes": len(encode_batch(ids, [reviews[position] for position in positions]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.bench_ray", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--unofficial-dataset", action="store_true",
                        help="accept a test split that is not the IMDB v1.0 test split (its speed is measured all the same)")
    parser.add_argument("--ray-address", help="join this cluster instead of starting a local instance")
    parser.add_argument("--ray-actor-cpus", type=float, default=2, help="CPUs (threads) of the actor (default: 2)")
    parser.add_argument("--repeats", type=int, default=50, help="batches per size (fewer for the large ones)")
    parser.add_argument("--output", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: bench(args), log)


def bench(args: argparse.Namespace) -> int:
    """Measure what the command line asks for, print the tables, write the JSON."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as a latency run's actors have it
    split = load_test_split(resolve_dataset_path(args.dataset_path), DEFAULT_VOCABULARY,
                            unofficial_dataset=args.unofficial_dataset)
    reviews = [ids[:1000] for ids in split.token_ids[:SET_REVIEWS]]
    cluster = RayCluster(args.ray_address).start()
    try:
        spec = actor_spec("folded", "cpu", "fp32", None, args.ray_actor_cpus, DEFAULT_WEIGHTS)
        pool = ActorPool(cluster, spec, DEFAULT_WEIGHTS, actors=1, in_flight_per_actor=1)
        overheads = [measure_overhead(pool, reviews, size, max(5, args.repeats * 64 // max(size, 64)))
                     for size in BATCH_SIZES]
        pool.shutdown()
        ray = cluster.ray
        actor = ray.remote(num_cpus=spec.cpus)(IndexedBackendActor).remote(spec, ray.put(DEFAULT_WEIGHTS.read_bytes()))
        ray.get(actor.hold.remote(encode_batch(np.arange(len(reviews), dtype=np.uint64), reviews)))
        transports = [measure_transport(ray, actor, reviews, size, max(5, args.repeats * 64 // max(size, 64)))
                      for size in BATCH_SIZES]
        info = pool.cluster_info()
    finally:
        cluster.stop()
    print(f"\nRay {info.ray_version}, one folded actor ({args.ray_actor_cpus:g} CPUs) on {info.address}\n")
    print("| batch (reviews) | round trip (µs) | in actor (µs) | Ray overhead (µs/batch) | (µs/review) |")
    print("|---|---|---|---|---|")
    for row in overheads:
        print(f"| {row['batch']} | {row['round_trip_us']:,.0f} | {row['in_actor_us']:,.0f} | {row['overhead_us']:,.0f} "
              f"| {row['overhead_us_per_review']:,.2f} |")
    print("\n| batch (reviews) | token ids with the batch (µs) | by position in a set put once (µs) | message bytes |")
    print("|---|---|---|---|")
    for row in transports:
        print(f"| {row['batch']} | {row['with_token_ids_us']:,.0f} | {row['by_position_us']:,.0f} "
              f"| {row['message_bytes']:,} |")
    if args.output:
        args.output.write_text(json.dumps({"ray_version": info.ray_version, "address": info.address,
                                           "actor_cpus": args.ray_actor_cpus, "overhead": overheads,
                                           "transport": transports}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks that run things: the backends against each other (:mod:`tools.bench.backends`,
``python -m tools.bench``) and what Ray costs the SUT (:mod:`tools.bench.ray`, ``python -m tools.bench_ray``)."""

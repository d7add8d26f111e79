"""``python -m tools.bench_ray``: what Ray costs the SUT (:mod:`tools.bench.ray`)."""

import sys

from tools.bench.ray import main

if __name__ == "__main__":
    sys.exit(main())

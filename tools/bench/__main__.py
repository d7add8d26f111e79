"""``python -m tools.bench``: the backends against each other (:mod:`tools.bench.backends`)."""

import sys

from tools.bench.backends import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m tools.bench"))

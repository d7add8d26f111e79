"""``python -m tools.submission``: pack a submission tree from finished run folders (:mod:`tools.submission.pack`)."""

import sys

from tools.submission.pack import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m tools.submission"))

"""``python -m tools.report``: the report of a run folder or a submission tree (:mod:`tools.report.page`)."""

import sys

from tools.report.page import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m tools.report"))

"""``python -m tools.campaign``: a whole submission in one command (:mod:`tools.campaign.command`)."""

import sys

from tools.campaign.command import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m tools.campaign"))

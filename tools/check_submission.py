"""``python -m tools.check_submission``: check a submission tree (:mod:`tools.submission.checker`)."""

import sys

from tools.submission.checker import main

if __name__ == "__main__":
    sys.exit(main())

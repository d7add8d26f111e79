"""``python -m tools.system_description``: print this machine's MLPerf system description
(:mod:`tools.submission.system_description`)."""

import sys

from tools.submission.system_description import main

if __name__ == "__main__":
    sys.exit(main())

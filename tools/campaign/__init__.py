"""A whole submission in one command (``python -m tools.campaign``), resumable after a stop.

- :mod:`tools.campaign.plan`: which runs a system type's submission needs, in which order, how long and how
  much disk each is expected to take;
- :mod:`tools.campaign.manifest`: the campaign's fingerprint and every try of every run (``campaign.json``);
- :mod:`tools.campaign.outcome`: what came of a run, read from its folder;
- :mod:`tools.campaign.preflight`: the checks before the first run: the system YAML, the folder, the disk;
- :mod:`tools.campaign.launcher`: ``run.py`` in a process of its own (its command line, stopping it), the
  folder's lock, SIGINT and SIGTERM; the soak (:mod:`tools.soak`) launches its runs with it too;
- :mod:`tools.campaign.quick`: a ``--quick`` campaign's rules and its calibration of this machine;
- :mod:`tools.campaign.command`: the command line: plan, runs, the tree, its check, the report, the table.
"""

"""A whole submission in one command (``python -m tools.campaign``), resumable after a stop.

- :mod:`tools.campaign.plan`: which runs a system type's submission needs, in which order, how long and how
  much disk each is expected to take;
- :mod:`tools.campaign.manifest`: the campaign's fingerprint and every try of every run (``campaign.json``);
- :mod:`tools.campaign.outcome`: what came of a run, read from its folder;
- :mod:`tools.campaign.command`: the command line: checks, plan, runs, the tree, its check, the report, the table.
"""

"""An MLPerf Inference submission of this benchmark: packing the tree from finished run folders, its layout,
and the checker that holds it against the rules.

- :mod:`tools.submission.pack`: ``python -m tools.submission``, the tree from run folders, with
  :mod:`~tools.submission.runs` (which runs fill which slot), :mod:`~tools.submission.documents` (READMEs,
  ``measurements.json``, ``calibration.md``), :mod:`~tools.submission.source` (the code, ``src/``) and
  :mod:`~tools.submission.truncation` (the accuracy logs, truncated);
- :mod:`tools.submission.layout`: where each file of the tree lives, shared by the packer and the checker;
- :mod:`tools.submission.system_description`: ``systems/<system>.json`` (``python -m tools.system_description``),
  from a system YAML and what the machine tells (:mod:`~tools.submission.machine`);
- :mod:`tools.submission.checker`: ``python -m tools.check_submission``, with the checks of each scenario in
  :mod:`~tools.submission.scenario_checks`.
"""

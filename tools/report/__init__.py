"""The run report: a run folder or a submission tree as one self-contained HTML page with PNG figures.

:mod:`tools.report.page` is ``python -m tools.report`` and builds the page from what
:mod:`~tools.report.folders` reads, with one section per run (:mod:`~tools.report.run_section`), the HTML
pieces of :mod:`~tools.report.markup` and the figures of :mod:`~tools.report.figures`.
"""

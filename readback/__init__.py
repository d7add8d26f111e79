"""Reading a run folder back: LoadGen's logs, run.json and its part types, accuracy, TEST01 verdicts.

Nothing here loads LoadGen, torch, numba or Ray: the report, the submission packer and checker read runs
with these modules alone.
"""

"""Names of the files this project writes into a run folder, beside LoadGen's own logs (see :mod:`readback.loadgen_log`)."""

#: the run's record: command, settings, backend, versions, machine, result (:mod:`readback.run_record`)
RUN_RECORD_FILE = "run.json"
#: per-sample issue and completion times in ns, as the SUT saw them (``SampleLedger.save_timings``)
SUT_TIMINGS_FILE = "sut_timings.npz"
#: an accuracy run's verdict against the labels and the quality targets (:mod:`readback.accuracy`)
ACCURACY_REPORT_FILE = "accuracy.txt"
#: a TEST01 run's verdicts (:mod:`readback.test01`): one text per check, then both with their figures
VERIFY_ACCURACY_FILE = "verify_accuracy.txt"
VERIFY_PERFORMANCE_FILE = "verify_performance.txt"
VERIFICATION_FILE = "verification.json"
#: a find-peak run's probes, one LoadGen run folder each (:mod:`sut.peak_search`)
PROBES_DIR = "probes"
#: a hidden file that holds disk space in a run folder while the run lasts, freed to write the final run.json
#: (:mod:`sut.run_folder`); a folder whose run was killed keeps it
RESERVE_FILE = ".space-reserve"

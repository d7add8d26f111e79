"""Post-processing command lines that read what LoadGen and ``run.py`` wrote, grouped by product.

- :mod:`tools.submission`: pack a submission tree, its layout, the checker (``python -m tools.check_submission``)
  and the system description (``python -m tools.system_description``);
- :mod:`tools.report`: the run report of a run folder or a submission tree;
- :mod:`tools.bench`: benchmarks that run the backends (``python -m tools.bench``) and Ray
  (``python -m tools.bench_ray``);
- :mod:`tools.accuracy_imdb` and :mod:`tools.verify_test01`: one run's accuracy and TEST01 checked again.
"""

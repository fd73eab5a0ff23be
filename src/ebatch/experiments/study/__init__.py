"""The study layer: a study is a list of run configurations and a typed, frozen result built from the runs
(``compare``, ``tune``, ``calibrate``, ``reproduce`` with its sensitivity and auto-T studies). Nothing here
writes files or formats prose; :mod:`ebatch.experiments.report` does."""

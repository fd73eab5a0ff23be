"""Experiments in two layers: :mod:`~ebatch.experiments.study` runs configurations and returns typed results;
:mod:`~ebatch.experiments.report` renders them (tables, prose, figures, files). report imports study, never the
reverse."""

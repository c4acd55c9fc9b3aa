"""Figures and Markdown reports.

* :mod:`aedenoise.report.figures`: comparison grids and training curves (matplotlib,
  imported lazily: ``pip install aedenoise[report]``);
* :mod:`aedenoise.report.run`: ``report.md`` of a training run folder;
* :mod:`aedenoise.report.benchmark`: tables and figures of a benchmark run.

This package imports nothing heavy; import the submodules directly. May import:
benchmark, data, config, io, models and the top-level shared modules (never training or cli).
"""

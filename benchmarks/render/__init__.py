"""The renderer of the readout grid, split by concern.

* :mod:`render.load`: cell files -> :class:`~render.load.Cell` objects,
  names and order, learning-rate selection, per-dataset overrides;
* :mod:`render.stats`: ranks, paired sign-flip tests, collapsed folds
  (``scipy.stats``);
* :mod:`render.tables`: the markdown sections and the CSV (``pandas``);
* :mod:`render.plots`: the two figures (``matplotlib``, optional);
* :mod:`render.speed_page`: the page and plot of ``benchmarks/speed.py``.

``benchmarks/render_accuracy.py`` is the command line over these.
"""

"""The renderer of the readout grid, split by concern.

* :mod:`.load`: cell files -> :class:`~.load.Cell` objects, names and
  order (those of ``benchmarks/variants.py``), learning-rate selection,
  per-dataset overrides;
* :mod:`.stats`: ranks, paired sign-flip tests, collapsed folds
  (``scipy.stats``);
* :mod:`.tables`: the markdown sections and the CSV (``pandas``);
* :mod:`.plots`: the two figures (``matplotlib``, optional);
* :mod:`.speed_page`: the page and plot of ``benchmarks/speed.py``.

``benchmarks/render_accuracy.py`` is the command line over these.
"""

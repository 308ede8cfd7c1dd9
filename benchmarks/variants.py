"""The readout variants of the repository benchmarks: one table.

:data:`VARIANTS` maps each name to a
:class:`~sap_graph.experiments.compare.variants.Variant`: the registered
readout, the :class:`~sap_graph.experiments.train.TrainConfig` fields it
sets and its display label. ``accuracy.py`` trains a cell with these
options, the renderer (``render/``) shows the labels in table order (the
order of :data:`VARIANTS`, also the plot colours), ``choose_default.py``,
``collapse.py`` and ``epoch.py`` pick their variants here.

A name is also the folder of its cells in the caches
(``<cache>/<dataset>/<name>/<unit>.json``), so an entry keeps the options
its cells ran with, whatever the layer's defaults are now:

* the cells before version 0.2 (the grid readouts and the ablations) ran
  the layer as it was then: normally initialised queries, no residual
  (:data:`PRE_0_2`), heads concatenated unless stated;
* the candidates for the 0.2 default (issue 14) run four averaged heads
  with zero-initialised queries (an untrained layer is mean pooling of the
  values) and a residual to a classic pooling or a size scaler;
* ``<name>_lr1e-3`` is ``<name>`` at learning rate 0.001 (the other rate
  of the validation-selected table), ``sap_max_lr1e-2`` the default at
  0.01 (the grid rate of ogbg-molhiv is 0.001);
* ``sap_h1`` and ``sap_h4`` follow the layer's current default (only
  ``epoch.py`` times them; no cells).

The grid's names are its own: ``sap_rezero`` here is the issue-14
candidate (residual max, ReZero gate), not the ``sap_rezero`` of
:data:`sap_graph.experiments.compare.variants.VARIANTS`.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from sap_graph.experiments.compare.variants import Variant

#: The layer's defaults before version 0.2, with which the grid readouts
#: and ablations ran.
PRE_0_2: Dict[str, Any] = {'query_init': 'normal', 'residual': None,
                           'size_scaler': None}

#: Suffix of the learning-rate twins (``sum_lr1e-3``: ``sum`` at lr
#: 0.001), among which the renderer selects on validation.
LR_SUFFIX = '_lr1e-3'


def _v(name: str, readout: str, label: str, **options: Any) -> Variant:
    return Variant(name, readout, options, label)


def _pre(name: str, label: str, heads: int, concat: bool = True,
         **kwargs: Any) -> Variant:
    """SAP as it was before 0.2."""
    return _v(name, 'sap', label, heads=heads, concat=concat,
              readout_kwargs={**PRE_0_2, **kwargs})


def _cand(name: str, label: str, concat: bool = False,
          **kwargs: Any) -> Variant:
    """An issue-14 candidate: 4 heads, zero-initialised queries, no
    residual or size scaler unless given (spelled out: the layer's
    defaults have changed since)."""
    return _v(name, 'sap', label, heads=4, concat=concat,
              readout_kwargs={'residual': None, 'size_scaler': None,
                              **kwargs, 'query_init': 'zeros'})


def _at(variant: Variant, lr: float, suffix: str, label: str) -> Variant:
    return Variant(variant.name + suffix, variant.readout,
                   {**variant.options, 'lr': lr}, label)


_GRID = (
    _v('sum', 'sum', 'sum'),
    _v('mean', 'mean', 'mean'),
    _v('max', 'max', 'max'),
    _v('attention', 'attention', 'attention (PyG AttentionalAggregation)'),
    _v('set2set', 'set2set', 'set2set'),
    _v('set_transformer', 'set_transformer', 'set_transformer', heads=4),
    _v('gmt', 'gmt', 'gmt', heads=4),
    _pre('sap1', 'sap (1 head)', heads=1),
    _pre('sap4', 'sap (4 heads, concat)', heads=4),
    _pre('sap4_mean', 'sap (4 heads, mean)', heads=4, concat=False),
)
_CANDIDATES = (
    _cand('sap_sum', 'sap (4 heads avg, residual sum)', residual='sum'),
    _cand('sap_max', 'sap (4 heads avg, residual max)', residual='max'),
    _cand('sap_log', 'sap (4 heads avg, log size scaler)',
          residual='mean', size_scaler='log'),
    # The attention term scaled by a learned per-channel gamma, zero at
    # first (ReZero): an untrained readout is max pooling.
    _cand('sap_rezero', 'sap (4 heads avg, residual max, rezero)',
          residual='max', rezero=True),
    _cand('sap4_zero', 'sap (4 heads concat, zero queries)', concat=True),
)
#: SAP's attention controls (run into their own cache).
_CONTROLS = (
    _pre('sap4_div', 'sap4 + diversity penalty 0.01', heads=4,
         diversity=0.01),
    _pre('sap4_gated', 'sap4 + value gate', heads=4, gated=True),
    _pre('sap4_tau', 'sap4 + learnable temperature', heads=4,
         learn_temperature=True),
    _pre('sap4_drop', 'sap4 + attention dropout 0.1', heads=4, dropout=0.1),
    _pre('sap4_mean_res', 'sap (4 heads, mean) + residual to mean pooling',
         heads=4, concat=False, residual='mean'),
)
_BY_NAME = {v.name: v for v in (*_GRID, *_CANDIDATES, *_CONTROLS)}

#: Every variant, in table order: the base variants, then the
#: learning-rate twins.
VARIANTS: Dict[str, Variant] = {v.name: v for v in (
    *_GRID, *_CANDIDATES, *_CONTROLS,
    # Learning rate: is the grid's lr 0.01 why some folds never train?
    _at(_BY_NAME['sap4'], 0.001, LR_SUFFIX,
        'sap4 with lr 0.001 (grid: 0.01)'),
    _at(_BY_NAME['sap_max'], 0.01, '_lr1e-2',
        'sap (4 heads avg, residual max) with lr 0.01'),
    *(_at(v, 0.001, LR_SUFFIX, f'{v.label} with lr 0.001')
      for v in (*_GRID, *_CANDIDATES) if v.name != 'sap4'),
    # The layer's current default, timed by epoch.py only.
    _v('sap_h1', 'sap', 'sap h=1', heads=1),
    _v('sap_h4', 'sap', 'sap h=4', heads=4),
)}

#: What ``accuracy.py`` runs without ``--readouts``.
GRID: Tuple[str, ...] = tuple(v.name for v in _GRID)
#: The SAP variant of the paired tests: the layer's default since 0.2.
DEFAULT_SAP = 'sap_max'
#: The SAP configurations ``choose_default.py`` chooses among by default.
DEFAULT_CANDIDATES: Tuple[str, ...] = (
    'sap_sum', 'sap_max', 'sap_log', 'sap_rezero', 'sap4_zero', 'sap4',
    'sap4_mean', 'sap1')
#: The readouts of ``collapse.py``'s diagnostics by default.
COLLAPSE: Tuple[str, ...] = ('sap4', 'sap4_zero', 'mean', 'sap_sum')
#: The readouts ``epoch.py`` times, in its table order.
EPOCH: Tuple[str, ...] = ('mean', 'sum', 'sap_h1', 'sap_h4', 'attention',
                          'set2set')


def label(name: str) -> str:
    """The display label of :obj:`name` (the name itself when it is not
    in the table)."""
    variant = VARIANTS.get(name)
    return name if variant is None else variant.label


def is_sap(name: str) -> bool:
    """Whether :obj:`name` is a SAP variant (by its readout; a name not
    in the table by its ``sap`` prefix)."""
    variant = VARIANTS.get(name)
    return name.startswith('sap') if variant is None else variant.is_sap


__all__ = ['COLLAPSE', 'DEFAULT_CANDIDATES', 'DEFAULT_SAP', 'EPOCH', 'GRID',
           'LR_SUFFIX', 'PRE_0_2', 'VARIANTS', 'Variant', 'is_sap', 'label']

"""Reading the cell cache, naming and ordering, learning-rate selection.

A cell file is ``<cache>/<dataset>/<readout>/<unit>.json`` with ``unit``
``fold_<k>`` or ``seed_<s>``, written by ``accuracy.run_grid``; this module
only reads them.
"""
from __future__ import annotations

import json
import math
import os
import os.path as osp
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from sap_graph.experiments.data import TU_CLASS_COUNTS, TU_DATASETS

from ..variants import LR_SUFFIX, VARIANTS

#: Readout names -> display labels, in table order (the labels and order
#: of :data:`benchmarks.variants.VARIANTS`).
READOUT_NAMES: Dict[str, str] = {name: v.label
                                 for name, v in VARIANTS.items()}

#: Column order (``accuracy.TU_DATASETS + OGB_DATASETS``); datasets not
#: listed here follow in alphabetical order.
DATASET_ORDER: List[str] = [
    'MUTAG', 'PROTEINS', 'ENZYMES', 'IMDB-BINARY', 'IMDB-MULTI', 'NCI1',
    'DD', 'REDDIT-BINARY', 'ogbg-molhiv',
]

METRIC_NAMES = {'acc': 'accuracy', 'rocauc': 'ROC-AUC'}


def _score(record: Dict[str, Any], key: str) -> float:
    if key in record:
        return float(record[key])
    return float(record[f"{key}_{record.get('metric', 'acc')}"])


def unit_key(unit: str) -> Tuple[str, int, str]:
    """Sorts ``fold_2`` before ``fold_10``."""
    prefix, _, num = unit.rpartition('_')
    return (prefix, int(num), '') if num.isdigit() else (unit, -1, unit)


@dataclass
class Cell:
    """The finished folds/seeds of one (dataset, readout)."""

    dataset: str
    readout: str
    records: Dict[str, Dict[str, Any]]
    frame: pd.DataFrame = field(init=False, repr=False)

    def __post_init__(self) -> None:
        units = sorted(self.records, key=unit_key)
        rows = [{'unit': u,
                 'test': 100.0 * _score(self.records[u], 'test'),
                 'val': 100.0 * _score(self.records[u], 'val'),
                 'epoch_time': self.records[u].get('epoch_time_mean'),
                 'wall_time': self.records[u].get('wall_time', 0.0)}
                for u in units]
        self.frame = pd.DataFrame(
            rows, columns=['unit', 'test', 'val', 'epoch_time',
                           'wall_time']).set_index('unit')

    @property
    def units(self) -> List[str]:
        return list(self.frame.index)

    @property
    def n(self) -> int:
        return len(self.records)

    def scores(self, key: str = 'test') -> List[float]:
        """The metric per unit in percent, in unit order."""
        return self.frame[key].tolist()

    @property
    def mean(self) -> float:
        return float(self.frame['test'].mean())

    @property
    def std(self) -> float:
        """Sample standard deviation (NaN for a single unit)."""
        return float(self.frame['test'].std(ddof=1))

    @property
    def val_mean(self) -> float:
        return float(self.frame['val'].mean())

    @property
    def epoch_time(self) -> float:
        """Mean seconds per training epoch over the units."""
        return float(self.frame['epoch_time'].astype(float).mean())

    @property
    def wall_time(self) -> float:
        return float(self.frame['wall_time'].sum())

    @property
    def metric(self) -> str:
        return next(iter(self.records.values())).get('metric', 'acc')


Cells = Dict[Tuple[str, str], Cell]


def load_cache(cache: str) -> Cells:
    """Reads every cell file under :obj:`cache` (a missing folder gives no
    cells; unreadable files are skipped with a warning)."""
    cells: Cells = {}
    if not osp.isdir(cache):
        return cells
    for dataset in sorted(os.listdir(cache)):
        d_dir = osp.join(cache, dataset)
        if not osp.isdir(d_dir):
            continue
        for readout in sorted(os.listdir(d_dir)):
            r_dir = osp.join(d_dir, readout)
            if not osp.isdir(r_dir):
                continue
            records = {}
            for name in sorted(os.listdir(r_dir)):
                if not name.endswith('.json'):
                    continue  # Also skips half-written '*.json.tmp<pid>'.
                path = osp.join(r_dir, name)
                try:
                    with open(path) as f:
                        records[name[:-len('.json')]] = json.load(f)
                except (OSError, ValueError) as e:
                    warnings.warn(f"Skipping unreadable cell file '{path}' "
                                  f'({e})', stacklevel=2)
            if records:
                cells[dataset, readout] = Cell(dataset, readout, records)
    return cells


def order_datasets(names: Sequence[str]) -> List[str]:
    known = [d for d in DATASET_ORDER if d in names]
    return known + sorted(set(names) - set(known))


def order_readouts(names: Sequence[str]) -> List[str]:
    known = [r for r in READOUT_NAMES if r in names]
    return known + sorted(set(names) - set(known))


def display(readout: str) -> str:
    return READOUT_NAMES.get(readout, readout)


def base_readout(readout: str) -> str:
    """``'sap_max_lr1e-2'`` -> ``'sap_max'``: the readout without its
    learning-rate suffix (the rate itself is in each record's config)."""
    return re.sub(r'_lr\d+e-\d+$', '', readout)


def select_learning_rate(cells: Cells, suffix: str = LR_SUFFIX) -> Cells:
    """Model selection of the learning rate on validation, per fold.

    For every readout ``r`` with a variant ``r + suffix`` on a dataset, and
    every fold/seed both finished, keeps the record of the variant with the
    higher *validation* score (a tie keeps ``r``), marked with
    ``'selected'``, its ``wall_time`` that of both runs. The test fold
    never takes part in the choice, as in the inner model selection of
    Errica et al. Readouts without the variant on a dataset are left out,
    so every returned cell had the same choice."""
    out: Cells = {}
    for (dataset, readout), base in cells.items():
        other = cells.get((dataset, readout + suffix))
        if readout.endswith(suffix) or other is None:
            continue
        records = {}
        for unit in base.units:
            if unit not in other.records:
                continue
            a, b = base.records[unit], other.records[unit]
            pick, name = ((b, readout + suffix)
                          if _score(b, 'val') > _score(a, 'val')
                          else (a, readout))
            # The fold's result cost both trainings.
            records[unit] = {**pick, 'selected': name,
                             'wall_time': a.get('wall_time', 0.0)
                             + b.get('wall_time', 0.0)}
        if records:
            out[dataset, readout] = Cell(dataset, readout, records)
    return out


def parse_override(text: str) -> Tuple[str, str]:
    """``'ENZYMES=path/to/cache'`` -> ``('ENZYMES', 'path/to/cache')``."""
    dataset, sep, cache = text.partition('=')
    if not sep or not dataset or not cache:
        raise ValueError(f"Invalid override '{text}' (expected "
                         "'DATASET=CACHE')")
    return dataset, cache


def apply_overrides(cells: Cells, overrides: Sequence[Tuple[str, str]],
                    ) -> Cells:
    """Replaces every cell of each overridden dataset (all readouts, both
    learning rates) by the cells of that dataset in the other cache."""
    out = dict(cells)
    for dataset, cache in overrides:
        out = {k: c for k, c in out.items() if k[0] != dataset}
        out.update({k: c for k, c in load_cache(cache).items()
                    if k[0] == dataset})
    return out


def override_label(dataset: str, cache: str) -> str:
    """The column label of a dataset taken from another cache: ``'ENZYMES
    (node attr.)'`` when its cells ran with ``--use_node_attr``."""
    cells = [c for (d, _), c in load_cache(cache).items() if d == dataset]
    configs = [r.get('config', {}) for c in cells
               for r in c.records.values()]
    if configs and all(c.get('use_node_attr') for c in configs):
        return f'{dataset} (node attr.)'
    return f'{dataset} ({osp.basename(osp.normpath(cache))})'


def expected_units(cells: Sequence[Cell]) -> int:
    """The number of folds (from ``config['folds']``) or seeds (from
    ``config['seeds']``) a complete cell of a dataset has."""
    expected = max((c.n for c in cells), default=0)
    for cell in cells:
        for unit, record in cell.records.items():
            config = record.get('config', {})
            if unit.startswith('fold_') and config.get('folds'):
                expected = max(expected, int(config['folds']))
            elif unit.startswith('seed_') and config.get('seeds'):
                expected = max(expected, len(config['seeds']))
    return expected


def comparable(cells: Sequence[Cell]) -> List[Cell]:
    """The cells of one dataset that have the most finished units (the
    complete ones, once any is complete)."""
    n_max = max((c.n for c in cells), default=0)
    return [c for c in cells if c.n == n_max]


#: Class counts of the official training split of the OGB sets (counted
#: from ``split/scaffold/train.csv.gz`` and ``raw/graph-label.csv.gz``):
#: 32,901 molecules, 1,232 of them active.
OGB_TRAIN_COUNTS: Dict[str, Tuple[int, ...]] = {
    'ogbg-molhiv': (31669, 1232),
}


def constant_loss(dataset: str) -> Optional[float]:
    """The cross-entropy of the best constant prediction: the entropy of
    the class frequencies (``TU_CLASS_COUNTS``; on an OGB set those of its
    training split, :data:`OGB_TRAIN_COUNTS`), ``ln C`` for a TU dataset
    known only by its number of classes ``C`` (exact when balanced),
    ``None`` for other datasets."""
    counts = TU_CLASS_COUNTS.get(dataset, OGB_TRAIN_COUNTS.get(dataset))
    if counts is None:
        classes = TU_DATASETS.get(dataset, (0, 0))[1]
        return math.log(classes) if classes else None
    total = sum(counts)
    return -sum(n / total * math.log(n / total) for n in counts if n)

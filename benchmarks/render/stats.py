"""Ranks, paired sign-flip tests and collapsed folds (``scipy.stats``).

The paired test is the one of ``sap-graph compare``
(:func:`sap_graph.experiments.compare.report.paired_test`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sap_graph.experiments.compare.report import PairedTest, paired_test

from ..variants import DEFAULT_SAP, is_sap
from .load import (
    Cell,
    Cells,
    _score,
    base_readout,
    comparable,
    constant_loss,
    expected_units,
    order_readouts,
    unit_key,
)

#: A fold whose final training loss is at least this fraction of the loss
#: of a constant prediction never trained (collapsed).
CHANCE_LOSS = 0.98


def rank_descending(values: Dict[str, float],
                    decimals: int = 9) -> Dict[str, float]:
    """Rank 1 = highest value; tied values (equal to :obj:`decimals`
    decimals) share their mean rank (``scipy.stats.rankdata``)."""
    keys = list(values)
    ranks = rankdata(-np.round([values[k] for k in keys], decimals))
    return {k: float(r) for k, r in zip(keys, ranks, strict=True)}


@dataclass
class RankResult:
    average: Dict[str, float]
    per_dataset: Dict[str, Dict[str, float]]
    used: List[str]
    excluded: Dict[str, str]


def _mean_ranks(cells: Cells, datasets: Sequence[str],
                readouts: Sequence[str]) -> Dict[str, Dict[str, float]]:
    return {d: rank_descending({r: cells[d, r].mean for r in readouts})
            for d in datasets}


def average_ranks(cells: Cells, datasets: Sequence[str],
                  readouts: Sequence[str]) -> RankResult:
    """Ranks the readouts by mean test score per dataset and averages the
    ranks over the datasets on which every one of :obj:`readouts` has
    finished the same folds/seeds (the others are reported as excluded)."""
    used, excluded = [], {}
    for d in datasets:
        missing = [r for r in readouts if (d, r) not in cells]
        if missing:
            excluded[d] = 'no result for ' + ', '.join(missing)
        elif len({tuple(cells[d, r].units) for r in readouts}) > 1:
            counts = sorted({cells[d, r].n for r in readouts})
            excluded[d] = ('readouts finished different folds/seeds: '
                           + ' vs '.join(map(str, counts)))
        else:
            used.append(d)
    per_dataset = _mean_ranks(cells, used, readouts)
    average = (pd.DataFrame(per_dataset).mean(axis=1).to_dict()
               if used else {})
    return RankResult(average, per_dataset, used, excluded)


def average_ranks_complete(cells: Cells, datasets: Sequence[str],
                           readouts: Sequence[str]) -> RankResult:
    """The other way round: keeps every dataset and leaves out the
    readouts that lack, on some dataset, a cell with the folds/seeds of
    all its folds/seeds (:func:`~benchmarks.render.load.expected_units`) on some
    dataset; ``excluded`` maps each left-out readout to those datasets."""
    expected = {d: expected_units([c for (dd, rr), c in cells.items()
                                   if dd == d and rr in readouts])
                for d in datasets}
    keep, excluded = [], {}
    for r in readouts:
        short = [d for d in datasets if (d, r) not in cells
                 or cells[d, r].n < expected[d]]
        if short:
            excluded[r] = ', '.join(short)
        else:
            keep.append(r)
    if len(keep) < 2:
        return RankResult({}, {}, [], excluded)
    per_dataset = _mean_ranks(cells, datasets, keep)
    average = pd.DataFrame(per_dataset).mean(axis=1).to_dict()
    return RankResult(average, per_dataset, list(datasets), excluded)


@dataclass
class PairedResult(PairedTest):
    """A SAP cell against a baseline cell of the grid (the
    :class:`~sap_graph.experiments.compare.report.PairedTest` of
    ``sap-graph compare``, in percentage points, with its dataset and the
    rule that chose the SAP cell)."""
    dataset: str = ''
    choice: str = ''


def paired_result(a: Cell, b: Cell, choice: str) -> PairedResult:
    """Pairs cell :obj:`a` (SAP) with cell :obj:`b` (baseline) on the
    folds/seeds both finished; differences in percentage points."""
    units = sorted(set(a.records) & set(b.records), key=unit_key)
    scores = {(c.readout, u): {'test': 100.0 * _score(c.records[u], 'test')}
              for c in (a, b) for u in units}
    test = paired_test(scores, a.readout, b.readout, units, higher=True)
    return PairedResult(**vars(test), dataset=a.dataset, choice=choice)


def by_validation(cells: Sequence[Cell]) -> Optional[Cell]:
    """The cell with the highest mean validation score (ties: table
    order)."""
    if not cells:
        return None
    order = order_readouts([c.readout for c in cells])
    cells = sorted(cells, key=lambda c: order.index(c.readout))
    return max(cells, key=lambda c: c.val_mean)


def paired_tests(cells: Cells, datasets: Sequence[str],
                 default_sap: str = DEFAULT_SAP) -> List[PairedResult]:
    """Per dataset: :obj:`default_sap` and the SAP variant with the best
    mean validation score, each against the non-SAP readout with the best
    mean validation score (selection among :func:`comparable` cells;
    never by test score)."""
    results = []
    for d in datasets:
        pool = comparable([c for (dd, _), c in cells.items() if dd == d])
        baseline = by_validation([c for c in pool if not is_sap(c.readout)])
        if baseline is None:
            continue
        best_sap = by_validation([c for c in pool if is_sap(c.readout)])
        if (d, default_sap) in cells:
            choice = 'default'
            if best_sap is not None and best_sap.readout == default_sap:
                choice = 'default; also best SAP by val'
            results.append(paired_result(cells[d, default_sap], baseline,
                                         choice))
        if best_sap is not None and best_sap.readout != default_sap:
            results.append(paired_result(best_sap, baseline,
                                         'best SAP by val'))
    return results


def collapsed_folds(cells: Cells) -> pd.DataFrame:
    """One row per cell with a final training loss: ``dataset``,
    ``readout`` (without the learning-rate suffix), ``lr`` (from the
    config), ``n`` folds/seeds with a loss and ``collapsed``: those whose
    final training loss is at least :data:`CHANCE_LOSS` x the loss of
    the best constant prediction
    (:func:`~benchmarks.render.load.constant_loss`)."""
    rows = []
    for (d, r), cell in cells.items():
        chance = constant_loss(d)
        if chance is None:
            continue
        for rec in cell.records.values():
            loss = rec.get('final_train_loss')
            if loss is None:
                continue
            rows.append({'dataset': d, 'readout': base_readout(r),
                         'lr': float(rec.get('config', {}).get('lr', 0.01)),
                         'collapsed': loss >= CHANCE_LOSS * chance})
    frame = pd.DataFrame(rows, columns=['dataset', 'readout', 'lr',
                                        'collapsed'])
    return (frame.groupby(['lr', 'dataset', 'readout'])['collapsed']
            .agg(n='size', collapsed='sum').reset_index())

"""Renders the readout grid of ``accuracy.py``: tables, tests and plots.

Reads every finished cell ``<cache>/<dataset>/<readout>/<unit>.json``
(``unit`` is ``fold_<k>`` or ``seed_<s>``) and writes into ``out_dir``:

* ``accuracy.md``: the results table (readouts x datasets, mean ± std in
  percent, published reference numbers in their own rows), average ranks,
  paired sign-flip tests of SAP against the best other readout, the
  protocol as read from the cached configs, and the compute time;
* ``accuracy.csv``: one row per (dataset, readout): ``n`` finished
  folds/seeds, ``mean``/``std``/``val_mean`` of the test/validation metric
  in percent, ``epoch_time`` in seconds per training epoch, and more;
* ``accuracy.png`` and ``accuracy_vs_time.png`` (skipped without
  matplotlib).

Only the standard library is needed for the tables (no torch, no scipy).

Usage::

    python benchmarks/render_accuracy.py            # default cache/out
    python benchmarks/render_accuracy.py --cache /tmp/grid --out /tmp/out
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import os.path as osp
import random
import statistics
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

HERE = osp.dirname(osp.realpath(__file__))
REPO = osp.dirname(HERE)
#: The default folders of ``accuracy.py`` (``--out`` and ``--cache``).
RESULTS = osp.join(HERE, 'results')
CACHE = osp.join(RESULTS, 'accuracy_cache')
sys.path.insert(0, REPO)
from sap_graph.experiments.data import TU_CLASS_COUNTS, TU_DATASETS  # noqa: E402

#: Readout keys of ``accuracy.READOUTS`` -> display names, in table order.
READOUT_NAMES: Dict[str, str] = {
    'sum': 'sum',
    'mean': 'mean',
    'max': 'max',
    'attention': 'attention (PyG AttentionalAggregation)',
    'set2set': 'set2set',
    'set_transformer': 'set_transformer',
    'gmt': 'gmt',
    'sap1': 'sap (1 head)',
    'sap4': 'sap (4 heads, concat)',
    'sap4_mean': 'sap (4 heads, mean)',
    'sap4_div': 'sap4 + diversity penalty 0.01',
    'sap4_gated': 'sap4 + value gate',
    'sap4_tau': 'sap4 + learnable temperature',
    'sap4_drop': 'sap4 + attention dropout 0.1',
    'sap4_mean_res': 'sap (4 heads, mean) + residual to mean pooling',
    'sap4_lr1e-3': 'sap4 with lr 0.001 (grid: 0.01)',
    'sum_lr1e-3': 'sum with lr 0.001',
    'mean_lr1e-3': 'mean with lr 0.001',
    'max_lr1e-3': 'max with lr 0.001',
    'attention_lr1e-3': 'attention with lr 0.001',
    'set2set_lr1e-3': 'set2set with lr 0.001',
    'sap1_lr1e-3': 'sap (1 head) with lr 0.001',
    'sap4_mean_lr1e-3': 'sap (4 heads, mean) with lr 0.001',
    'set_transformer_lr1e-3': 'set_transformer with lr 0.001',
    'gmt_lr1e-3': 'gmt with lr 0.001',
}
#: The SAP variant tested against the best other readout on every dataset.
PRIMARY_SAP = 'sap4'

#: Column order (``accuracy.TU_DATASETS + OGB_DATASETS``); datasets not
#: listed here follow in alphabetical order.
DATASET_ORDER: List[str] = [
    'MUTAG', 'PROTEINS', 'ENZYMES', 'IMDB-BINARY', 'IMDB-MULTI', 'NCI1',
    'DD', 'REDDIT-BINARY', 'ogbg-molhiv',
]

METRIC_NAMES = {'acc': 'accuracy', 'rocauc': 'ROC-AUC'}

#: Largest number of paired folds/seeds for which the sign-flip test
#: enumerates all 2^n sign patterns; above it, random sign patterns.
EXACT_MAX = 16


@dataclass(frozen=True)
class Reference:
    """A published result row: values as printed in the paper/leaderboard."""
    label: str
    protocol: str
    values: Dict[str, str]


# Published numbers, typed in from /work/shared/ANCHORS.md (which cites the
# papers' tables and the OGB leaderboard). They are references on their
# own protocols, not results of this grid. Keys are our dataset names:
# IMDB-B = IMDB-BINARY, IMDB-M = IMDB-MULTI, RDT-B = REDDIT-BINARY,
# RDT-M5K / RDT-5K = REDDIT-MULTI-5K, D&D = DD, PTC = PTC_MR.
REFERENCES: Tuple[Reference, ...] = (
    Reference(
        label='GIN-0, Xu et al. 2019',
        protocol=('"How Powerful are Graph Neural Networks?", Table 1: '
                  '10-fold CV, one epoch chosen by the best mean accuracy '
                  'over the held-out folds ("best mean validation accuracy '
                  'across folds"), so the same folds select and score the '
                  'model: an optimistic protocol; sum readout on bio, mean '
                  'on social datasets'),
        values={
            'MUTAG': '89.4 ± 5.6', 'PTC_MR': '64.6 ± 7.0',
            'NCI1': '82.7 ± 1.7', 'PROTEINS': '76.2 ± 2.8',
            'COLLAB': '80.2 ± 1.9', 'IMDB-BINARY': '75.1 ± 5.1',
            'IMDB-MULTI': '52.3 ± 2.8', 'REDDIT-BINARY': '92.4 ± 2.5',
            'REDDIT-MULTI-5K': '57.5 ± 1.5',
        }),
    Reference(
        label='GIN, Errica et al. 2020',
        protocol=('"A Fair Comparison of Graph Neural Networks for Graph '
                  'Classification": stratified 10-fold outer CV, model '
                  'selection on an inner validation split, never on the '
                  'test fold (the protocol of this grid); degree features '
                  'on social datasets'),
        values={
            'DD': '75.3 ± 2.9', 'NCI1': '80.0 ± 1.4',
            'PROTEINS': '73.3 ± 4.0', 'ENZYMES': '59.6 ± 4.5',
            'IMDB-BINARY': '71.2 ± 3.9', 'IMDB-MULTI': '48.5 ± 3.3',
            'REDDIT-BINARY': '89.9 ± 1.9', 'REDDIT-MULTI-5K': '56.1 ± 1.7',
            'COLLAB': '75.6 ± 2.3',
        }),
    Reference(
        label='structure-agnostic baseline, Errica et al. 2020',
        protocol=('same fair protocol; a model that ignores the graph '
                  'structure'),
        values={
            'DD': '78.4', 'NCI1': '69.8 ± 2.2', 'PROTEINS': '75.8',
            'ENZYMES': '65.2 ± 6.4', 'IMDB-MULTI': '49.1',
            'REDDIT-MULTI-5K': '52.2 ± 1.5', 'COLLAB': '70.2 ± 1.5',
        }),
    Reference(
        label='GMT, Baek et al. 2021',
        protocol=('"Accurate Learning of Graph Representations with Graph '
                  'Multiset Pooling", their own protocol and runs (TU: '
                  'means only; ogbg-molhiv: official split)'),
        values={
            'MUTAG': '83.44', 'PROTEINS': '75.09',
            'ogbg-molhiv': '77.56 ± 1.25',
        }),
    Reference(
        label='GIN, OGB leaderboard',
        protocol=('OGB reference GNN on the official scaffold split: 10 '
                  'seeds, 5 layers, 300 hidden, mean readout, 100 epochs, '
                  'batch 32, Adam 1e-3, no virtual node'),
        values={'ogbg-molhiv': '75.58 ± 1.40'}),
)


# Loading ##################################################################


@dataclass
class Cell:
    """The finished folds/seeds of one (dataset, readout)."""
    dataset: str
    readout: str
    records: Dict[str, Dict[str, Any]]

    @property
    def units(self) -> List[str]:
        return sorted(self.records, key=unit_key)

    @property
    def n(self) -> int:
        return len(self.records)

    def scores(self, key: str = 'test') -> List[float]:
        """The metric per unit in percent, in unit order."""
        return [100.0 * _score(self.records[u], key) for u in self.units]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.scores('test'))

    @property
    def std(self) -> float:
        """Sample standard deviation (NaN for a single unit)."""
        scores = self.scores('test')
        return statistics.stdev(scores) if len(scores) > 1 else math.nan

    @property
    def val_mean(self) -> float:
        return statistics.fmean(self.scores('val'))

    @property
    def epoch_time(self) -> float:
        """Mean seconds per training epoch over the units."""
        times = [r['epoch_time_mean'] for r in self.records.values()
                 if r.get('epoch_time_mean') is not None]
        return statistics.fmean(times) if times else math.nan

    @property
    def wall_time(self) -> float:
        return sum(r.get('wall_time', 0.0) for r in self.records.values())

    @property
    def metric(self) -> str:
        return next(iter(self.records.values())).get('metric', 'acc')


Cells = Dict[Tuple[str, str], Cell]


def _score(record: Dict[str, Any], key: str) -> float:
    if key in record:
        return float(record[key])
    metric = record.get('metric', 'acc')
    return float(record[f'{key}_{metric}'])


def unit_key(unit: str) -> Tuple[str, int, str]:
    """Sorts ``fold_2`` before ``fold_10``."""
    prefix, _, num = unit.rpartition('_')
    return (prefix, int(num), '') if num.isdigit() else (unit, -1, unit)


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
                try:
                    with open(osp.join(r_dir, name)) as f:
                        records[name[:-len('.json')]] = json.load(f)
                except (OSError, ValueError) as e:
                    warnings.warn(f"Skipping unreadable cell file "
                                  f"'{osp.join(r_dir, name)}' ({e})",
                                  stacklevel=2)
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


#: Suffix of the learning-rate variants (``sum_lr1e-3``: ``sum`` at lr
#: 0.001) among which :func:`select_learning_rate` chooses.
LR_SUFFIX = '_lr1e-3'


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
                             'wall_time': a.get('wall_time', 0.0) +
                             b.get('wall_time', 0.0)}
        if records:
            out[dataset, readout] = Cell(dataset, readout, records)
    return out


def is_sap(readout: str) -> bool:
    return readout.startswith('sap')


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


# Statistics ###############################################################


def format_cell(cell: Cell, expected: int) -> str:
    """``'mean ± std'`` in percent, ``' (k/n)'`` when incomplete."""
    text = f'{cell.mean:.1f}'
    if cell.n > 1:
        text += f' ± {cell.std:.1f}'
    if cell.n < expected:
        text += f' ({cell.n}/{expected})'
    return text


def best_readouts(cells: Sequence[Cell]) -> Set[str]:
    """Readouts to bold on one dataset: the highest mean (at the shown
    precision) among :func:`comparable` cells, if at least two compete."""
    pool = comparable(cells)
    if len(pool) < 2:
        return set()
    best = max(round(c.mean, 1) for c in pool)
    return {c.readout for c in pool if round(c.mean, 1) == best}


def rank_descending(values: Dict[str, float],
                    tol: float = 1e-9) -> Dict[str, float]:
    """Rank 1 = highest value; tied values share their mean rank."""
    order = sorted(values, key=lambda k: -values[k])
    ranks: Dict[str, float] = {}
    i = 0
    while i < len(order):
        j = i
        while (j + 1 < len(order)
               and abs(values[order[j + 1]] - values[order[i]]) <= tol):
            j += 1
        for k in order[i:j + 1]:
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass
class RankResult:
    average: Dict[str, float]
    per_dataset: Dict[str, Dict[str, float]]
    used: List[str]
    excluded: Dict[str, str]


def average_ranks(cells: Cells, datasets: Sequence[str],
                  readouts: Sequence[str]) -> RankResult:
    """Ranks the readouts by mean test score per dataset and averages the
    ranks over the datasets on which every one of :obj:`readouts` has
    finished the same folds/seeds (the others are reported as excluded)."""
    per_dataset: Dict[str, Dict[str, float]] = {}
    excluded: Dict[str, str] = {}
    for d in datasets:
        missing = [r for r in readouts if (d, r) not in cells]
        if missing:
            excluded[d] = 'no result for ' + ', '.join(missing)
            continue
        unit_sets = {tuple(cells[d, r].units) for r in readouts}
        if len(unit_sets) > 1:
            counts = sorted({cells[d, r].n for r in readouts})
            excluded[d] = ('readouts finished different folds/seeds: '
                           + ' vs '.join(map(str, counts)))
            continue
        per_dataset[d] = rank_descending({r: cells[d, r].mean
                                          for r in readouts})
    average = {r: statistics.fmean(per_dataset[d][r] for d in per_dataset)
               for r in readouts} if per_dataset else {}
    return RankResult(average, per_dataset, list(per_dataset), excluded)


def sign_flip_test(diffs: Sequence[float], exact_max: int = EXACT_MAX,
                   samples: int = 20000, seed: int = 0,
                   ) -> Tuple[float, str]:
    """Two-sided paired sign-flip permutation test of a zero mean.

    Under the null, each paired difference is as likely to have either
    sign; the p-value is the share of the :math:`2^n` sign patterns whose
    :math:`|\\sum_i s_i d_i|` reaches the observed :math:`|\\sum_i d_i|`
    (the observed pattern included). Exact enumeration up to
    :obj:`exact_max` differences, else :obj:`samples` random patterns.

    Returns:
        The p-value and ``'exact'`` or ``'Monte Carlo'``.
    """
    diffs = [float(d) for d in diffs]
    if not diffs:
        return math.nan, 'exact'
    observed = abs(sum(diffs))
    tol = 1e-9 * max(1.0, sum(abs(d) for d in diffs))
    if len(diffs) <= exact_max:
        patterns = itertools.product((1.0, -1.0), repeat=len(diffs))
        hits = sum(
            abs(sum(s * d for s, d in zip(signs, diffs, strict=True)))
            >= observed - tol for signs in patterns)
        return hits / 2 ** len(diffs), 'exact'
    rng = random.Random(seed)
    hits = sum(
        abs(sum(d if rng.random() < 0.5 else -d for d in diffs))
        >= observed - tol for _ in range(samples))
    return (hits + 1) / (samples + 1), 'Monte Carlo'


@dataclass
class PairedResult:
    dataset: str
    sap: str
    choice: str
    baseline: str
    units: List[str]
    diffs: List[float]
    wins: int
    ties: int
    losses: int
    p_value: float
    p_method: str

    @property
    def mean_diff(self) -> float:
        return statistics.fmean(self.diffs) if self.diffs else math.nan


def paired_result(a: Cell, b: Cell, choice: str,
                  tie_tol: float = 1e-6) -> PairedResult:
    """Pairs cell :obj:`a` (SAP) with cell :obj:`b` (baseline) on the
    folds/seeds both finished; differences in percentage points."""
    units = sorted(set(a.records) & set(b.records), key=unit_key)
    diffs = [100.0 * (_score(a.records[u], 'test')
                      - _score(b.records[u], 'test')) for u in units]
    wins = sum(d > 100 * tie_tol for d in diffs)
    losses = sum(d < -100 * tie_tol for d in diffs)
    p, method = sign_flip_test(diffs)
    return PairedResult(a.dataset, a.readout, choice, b.readout, units,
                        diffs, wins, len(diffs) - wins - losses, losses, p,
                        method)


def by_validation(cells: Sequence[Cell]) -> Optional[Cell]:
    """The cell with the highest mean validation score (ties: table
    order)."""
    if not cells:
        return None
    order = order_readouts([c.readout for c in cells])
    cells = sorted(cells, key=lambda c: order.index(c.readout))
    return max(cells, key=lambda c: c.val_mean)


def paired_tests(cells: Cells, datasets: Sequence[str]) -> List[PairedResult]:
    """Per dataset: :data:`PRIMARY_SAP` and the SAP variant with the best
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
        if (d, PRIMARY_SAP) in cells:
            choice = 'fixed'
            if best_sap is not None and best_sap.readout == PRIMARY_SAP:
                choice = 'fixed; also best SAP by val'
            results.append(paired_result(cells[d, PRIMARY_SAP], baseline,
                                         choice))
        if best_sap is not None and best_sap.readout != PRIMARY_SAP:
            results.append(paired_result(best_sap, baseline,
                                         'best SAP by val'))
    return results


# Markdown #################################################################


def _table(header: Sequence[str], rows: Sequence[Sequence[str]],
           align: Optional[str] = None) -> List[str]:
    align = align or 'l' + 'r' * (len(header) - 1)
    marks = {'l': '---', 'r': '--:', 'c': ':-:'}
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(marks[a] for a in align) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return lines


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f'{seconds:.1f} s'
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f'{minutes} min {sec:02d} s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours} h {minutes:02d} min'


def _column_name(dataset: str, cells: Cells) -> str:
    metrics = {c.metric for (d, _), c in cells.items() if d == dataset}
    names = '/'.join(METRIC_NAMES.get(m, m) for m in sorted(metrics))
    return f'{dataset} ({names})'


def _distinct(values: Sequence[Any]) -> str:
    seen: List[str] = []
    for v in values:
        text = v if isinstance(v, str) else json.dumps(v)
        if text not in seen:
            seen.append(text)
    return ' / '.join(seen) if seen else '?'


def _lr_text(config: Dict[str, Any]) -> str:
    text = f"Adam {config.get('lr', '?'):g}" if isinstance(
        config.get('lr'), (int, float)) else 'Adam ?'
    step = config.get('lr_step')
    if step:
        text += f", x{config.get('lr_gamma', 0.5):g} every {step} epochs"
    else:
        text += ', constant'
    if config.get('weight_decay'):
        text += f", wd {config['weight_decay']:g}"
    return text


def _units_text(record: Dict[str, Any]) -> str:
    config = record.get('config', {})
    if record.get('unit', '').startswith('seed_') or \
            record.get('protocol') == 'ogb_official_split':
        seeds = config.get('seeds') or []
        return f'{len(seeds)} seeds ({_distinct([seeds])})'
    return (f"{config.get('folds', '?')}-fold CV, val "
            f"{config.get('val_ratio', 0.1):.0%} of train fold, split "
            f"seed {config.get('seed', '?')}")


def _model_text(config: Dict[str, Any]) -> str:
    return (f"{str(config.get('conv', '?')).upper()} "
            f"{config.get('num_layers', '?')} x "
            f"{config.get('hidden_channels', '?')}, JK "
            f"{config.get('jk', 'last')}")


def _dropout_text(config: Dict[str, Any]) -> str:
    return (f"{config.get('dropout', '?')} head / "
            f"{config.get('layer_dropout', '?')} layers")


def _versions_text(versions: Dict[str, Any]) -> str:
    first = ['python', 'torch', 'torch_geometric', 'ogb', 'numpy',
             'sap_graph']
    keys = [k for k in first if k in versions]
    keys += sorted(set(versions) - set(keys))
    return ', '.join(f'{k} {versions[k]}' for k in keys
                     if versions[k] is not None)


def _readout_text(config: Dict[str, Any]) -> str:
    name = config.get('readout', '?')
    text = f'`{name}`'
    if name in ('sap', 'gmt', 'set_transformer'):
        text += f", heads={config.get('heads')}"
    if name == 'sap':
        text += f", concat={config.get('concat')}"
    if config.get('readout_kwargs'):
        text += f", {json.dumps(config['readout_kwargs'], sort_keys=True)}"
    return text


def protocol_lines(cells: Cells, datasets: Sequence[str],
                   readouts: Sequence[str]) -> List[str]:
    """The protocol, generated from the configs stored with the cells."""
    records = {d: [r for (dd, _), c in cells.items() if dd == d
                   for r in c.records.values()] for d in datasets}
    lines = ['## Protocol', '']
    protocols = {r.get('protocol') for rs in records.values() for r in rs}
    if 'stratified_kfold_cv' in protocols:
        lines += [
            '**Cross-validated datasets** (`stratified_kfold_cv`): '
            'stratified k-fold cross-validation as in Errica et al. 2020. '
            'In every fold a fresh model (seeded with seed + fold) is '
            'trained on the training part, the epoch is selected on a '
            'stratified validation split carved from the training fold, '
            'and only the selected weights are scored once on the test '
            'fold. All readouts share the folds, so their per-fold scores '
            'are paired. The table reports test accuracy.', '']
    if 'ogb_official_split' in protocols:
        lines += [
            '**OGB datasets** (`ogb_official_split`): the official split '
            'and the OGB `Evaluator`; the test ROC-AUC is read at the epoch '
            'with the best validation ROC-AUC; one cell per seed.', '']
    if 'ogbg-molhiv' in datasets:
        cfgs = [r.get('config', {}) for r in records['ogbg-molhiv']]
        hidden = _distinct([c.get('hidden_channels') for c in cfgs])
        epochs = _distinct([c.get('epochs') for c in cfgs])
        seeds = _distinct([len(c.get('seeds') or []) for c in cfgs])
        lines += [
            '**ogbg-molhiv caveats.** (1) The local copy was rebuilt from '
            "the MoleculeNet SMILES with ogb's own `smiles2graph` under a "
            'newer RDKit (2022.09.5; see `shared/data/README.md`): graph '
            'structure, labels and the scaffold split are byte-identical '
            'to the official release, but a few atom/bond feature values '
            'differ (about 300 atom-feature values in 241 of 41,127 '
            'molecules, mostly radical electrons / hybridisation of metal '
            f'atoms). (2) The model budget is reduced: hidden width {hidden}'
            f' and {epochs} epochs over {seeds} seeds here, against 300 '
            'hidden, 100 epochs and 10 seeds for the OGB leaderboard GIN, '
            'so the leaderboard rows are context, not a like-for-like '
            'comparison.', '']
    rows = []
    for d in datasets:
        rs = records[d]
        cfgs = [r.get('config', {}) for r in rs]
        rows.append([
            d, _distinct([r.get('protocol', '?') for r in rs]),
            _distinct([METRIC_NAMES.get(r.get('metric', 'acc'), '?')
                       for r in rs]),
            _distinct([_model_text(c) for c in cfgs]),
            _distinct([c.get('epochs') for c in cfgs]),
            _distinct([_lr_text(c) for c in cfgs]),
            _distinct([c.get('batch_size') for c in cfgs]),
            _distinct([_dropout_text(c) for c in cfgs]),
            _distinct([_units_text(r) for r in rs]),
            _distinct([r.get('threads', '?') for r in rs]),
            _distinct([c.get('device', '?') for c in cfgs]),
        ])
    lines += ['Per dataset, as stored in the cell configs (`a / b`: the '
              'cells differ):', '']
    lines += _table(['dataset', 'protocol', 'metric', 'encoder', 'epochs',
                     'optimiser, lr schedule', 'batch', 'dropout',
                     'folds / seeds', 'CPU threads', 'device'], rows,
                    'l' * 11)
    lines += ['', 'Readout variants (every other setting is shared):', '']
    for r in readouts:
        cfgs = [rec.get('config', {}) for (_, rr), c in cells.items()
                if rr == r for rec in c.records.values()]
        lines.append(f'- {display(r)} (`{r}`): '
                     + _distinct([_readout_text(c) for c in cfgs]))
    versions: Dict[str, int] = {}
    for rs in records.values():
        for r in rs:
            text = _versions_text(r.get('versions', {}))
            versions[text] = versions.get(text, 0) + 1
    lines += ['', 'Versions: ' + '; '.join(
        f'{v} ({n} cells)' if len(versions) > 1 else v
        for v, n in versions.items()) + '.', '']
    return lines


def _shown(path: str) -> str:
    if osp.abspath(path).startswith(REPO + os.sep):
        return osp.relpath(osp.abspath(path), REPO)
    return path


def render_command(cache: str, out_dir: Optional[str] = None,
                   select_from: Optional[str] = None) -> str:
    """The command that rerenders a folder, naming every non-default
    path."""
    words = ['python', 'benchmarks/accuracy.py', '--render']
    if osp.abspath(cache) != osp.abspath(CACHE):
        words += ['--cache', _shown(cache)]
    if select_from is not None:
        words += ['--select_lr_from', _shown(select_from)]
    if out_dir is None:
        words += [] if select_from is None else ['--out', '<folder>']
    elif osp.abspath(out_dir) != osp.abspath(RESULTS):
        words += ['--out', _shown(out_dir)]
    return ' '.join(words)


def render_markdown(cells: Cells, cache: str,
                    plots: Sequence[str] = (),
                    select_from: Optional[str] = None,
                    out_dir: Optional[str] = None) -> str:
    """The text of ``accuracy.md`` (with :obj:`select_from`: of the table
    with the learning rate selected on validation, see
    :func:`select_learning_rate`), rendered into :obj:`out_dir`."""
    command = render_command(cache, out_dir, select_from)
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    n_files = sum(c.n for c in cells.values())
    if select_from is None:
        lines = [
            '# Readout comparison: accuracy', '',
            f'Generated by `benchmarks/render_accuracy.py` from {n_files} '
            f'cell files in `{_shown(cache)}` (`{command}` refreshes it); '
            'do not edit by hand.', '']
    else:
        picked = [r['selected'] for c in cells.values()
                  for r in c.records.values()]
        low = sum(p.endswith(LR_SUFFIX) for p in picked)
        lines = [
            '# Readout comparison: learning rate selected on validation',
            '', f'Generated by `benchmarks/render_accuracy.py` from the cells '
            f'in `{_shown(cache)}` (lr 0.01) and the `*{LR_SUFFIX}` cells '
            f'in `{_shown(select_from)}` (lr 0.001): `{command}`; do not '
            'edit by hand.',
            '', 'Model selection as in Errica et al. 2020: in every fold, '
            'each readout is trained with both learning rates (0.01 and '
            '0.001, everything else equal) and the run with the higher '
            '*validation* accuracy is scored on the test fold; a tie keeps '
            '0.01. The test fold never takes part in the choice. Only '
            'readouts run at both learning rates are shown. The lower '
            f'rate was chosen in {low} of {len(picked)} folds; per '
            'readout and dataset in "Chosen learning rates" below.', '']
    if not cells:
        lines += ['No finished cells yet.', '']
        return '\n'.join(lines)

    by_dataset = {d: [cells[d, r] for r in readouts if (d, r) in cells]
                  for d in datasets}
    expected = {d: expected_units(by_dataset[d]) for d in datasets}
    bold = {d: best_readouts(by_dataset[d]) for d in datasets}
    ranks = average_ranks(cells, datasets, readouts)

    lines += [
        '## Results', '',
        'Test accuracy (%) on the TU datasets, test ROC-AUC (%) on '
        'ogbg-molhiv: mean ± sample standard deviation over the finished '
        'folds (TU) or seeds (OGB); `(k/n)` marks a cell with only k of '
        'its n folds/seeds finished; `–` means no result. **Bold** is the '
        'best mean of our readouts on a dataset, compared only among the '
        'cells with the most finished folds/seeds on that dataset (the '
        'complete ones once any is complete; cells with fewer are never '
        'bold) and only when at least two such cells exist; ties at the '
        'shown precision are all bold. The published rows beneath are '
        'not our runs: each has its own protocol (notes below), which '
        'for Xu et al. is optimistic.', '']
    header = (['readout'] + [_column_name(d, cells) for d in datasets]
              + ['avg. rank'])
    rows = []
    for r in readouts:
        row = [display(r)]
        for d in datasets:
            if (d, r) not in cells:
                row.append('–')
                continue
            text = format_cell(cells[d, r], expected[d])
            row.append(f'**{text}**' if r in bold[d] else text)
        rank = ranks.average.get(r)
        row.append(f'{rank:.2f}' if rank is not None else '–')
        rows.append(row)
    refs = [ref for ref in REFERENCES
            if any(d in ref.values for d in datasets)]
    if refs:
        rows.append(['*published references (not our runs):*']
                    + [''] * (len(datasets) + 1))
    for i, ref in enumerate(refs):
        rows.append([f'*{ref.label}* [{i + 1}]']
                    + [ref.values.get(d, '–') for d in datasets] + [''])
    lines += _table(header, rows)
    lines.append('')
    for i, ref in enumerate(refs):
        lines.append(f'[{i + 1}] {ref.label}: {ref.protocol}. Values as '
                     'published, typed in from the shared `ANCHORS.md`.  ')
    if refs:
        lines.append('')

    if ranks.used:
        lines += [
            f'**Average rank** (1 = best mean test score on a dataset, '
            f'ties share their mean rank) over the {len(ranks.used)} '
            'dataset(s) on which all ' + str(len(readouts)) + ' readouts '
            'of the table finished the same folds/seeds: '
            + ', '.join(ranks.used) + '.']
    else:
        lines += ['**Average rank**: no dataset has results of all '
                  f'{len(readouts)} readouts on the same folds/seeds yet.']
    if ranks.excluded:
        lines[-1] += ' Not ranked: ' + '; '.join(
            f'{d} ({why})' for d, why in ranks.excluded.items()) + '.'
    lines.append('')
    if 'accuracy.png' in plots:
        lines += ['![Test score per dataset and readout](accuracy.png)', '',
                  '`accuracy.png`: mean test score per dataset, one colour '
                  'per readout, error bars = std over folds/seeds, hollow '
                  'markers = incomplete cells.', '']
    if 'accuracy_vs_time.png' in plots:
        lines += ['![Test score vs time per epoch](accuracy_vs_time.png)',
                  '', '`accuracy_vs_time.png`: mean test score against '
                  'mean seconds per training epoch, one point per '
                  '(dataset, readout), one panel per dataset.', '']

    lines += paired_lines(paired_tests(cells, datasets))
    if select_from is not None:
        lines += ['## Chosen learning rates', '',
                  'Folds/seeds in which lr 0.001 had the higher validation '
                  'score, of the folds/seeds run at both rates:', '']
        rows = []
        for r in readouts:
            row = [display(r)]
            for d in datasets:
                cell = cells.get((d, r))
                row.append('–' if cell is None else '{}/{}'.format(
                    sum(rec['selected'].endswith(LR_SUFFIX)
                        for rec in cell.records.values()), cell.n))
            rows.append(row)
        lines += _table(['readout'] + datasets, rows)
        lines.append('')
    lines += protocol_lines(cells, datasets, readouts)
    lines += time_lines(cells, datasets, readouts)
    lines += training_lines(cells, datasets, readouts)
    lines += ['## Files', '',
              '`accuracy.csv`: one row per (dataset, readout) with `n` '
              'finished folds/seeds, `n_expected`, `mean`, `std` and '
              '`val_mean` of the metric in percent, `epoch_time` in '
              'seconds per training epoch, `wall_time` in seconds.', '']
    return '\n'.join(lines)


def paired_lines(results: Sequence[PairedResult]) -> List[str]:
    lines = [
        '## Paired tests: SAP against the best other readout', '',
        f'Per dataset, `{PRIMARY_SAP}` ({display(PRIMARY_SAP)}, fixed in '
        'advance) and the SAP variant with the best mean *validation* '
        'score are each paired with the non-SAP readout with the best mean '
        '*validation* score. Both choices use validation scores only, so '
        'no test score selects what is tested, and are made among the '
        'cells with the most finished folds/seeds (as for bold). Only '
        'folds/seeds finished by both readouts are paired. Δ = SAP − '
        'baseline test score in percentage points per fold/seed; W/T/L = '
        'folds SAP wins/ties/loses. p: two-sided exact sign-flip '
        'permutation test of mean Δ = 0 (all 2^n sign patterns of the n '
        'paired differences; Monte Carlo above '
        f'{EXACT_MAX}). The smallest attainable p is 2/2^n (0.0020 for 10 '
        'folds, 0.25 for 3); p-values are not corrected for the several '
        'tests, and cross-validation folds share training data, so they '
        'are indicative only.', '']
    if not results:
        return lines + ['No dataset has both a SAP and a non-SAP result '
                        'yet.', '']
    rows = []
    for res in results:
        p = (f'{res.p_value:.3g}' if not math.isnan(res.p_value) else '–')
        if res.p_method != 'exact':
            p += ' (MC)'
        rows.append([
            res.dataset, f'{display(res.sap)} (`{res.sap}`)', res.choice,
            f'{display(res.baseline)} (`{res.baseline}`)',
            str(len(res.units)),
            ', '.join(f'{d:+.1f}' for d in res.diffs) or '–',
            f'{res.mean_diff:+.1f}' if res.diffs else '–',
            f'{res.wins}/{res.ties}/{res.losses}', p])
    lines += _table(['dataset', 'SAP variant', 'chosen', 'baseline (best '
                     'non-SAP by val)', 'pairs', 'Δ per fold/seed (pp)',
                     'mean Δ (pp)', 'W/T/L', 'p (sign-flip)'], rows,
                    'lllllrrcr')
    return lines + ['']


def time_lines(cells: Cells, datasets: Sequence[str],
               readouts: Sequence[str]) -> List[str]:
    lines = ['## Compute time', '',
             'Sum of the `wall_time` of the cells (training and scoring of '
             'one fold/seed, without loading the data). Shards run in '
             'parallel add up, so this is job time, not elapsed time. '
             '"on GPU": the part of it from cells run on a CUDA device.', '']
    rows = []
    total, gpu_total, count = 0.0, 0.0, 0
    for d in datasets:
        ds = [c for (dd, _), c in cells.items() if dd == d]
        t, n = sum(c.wall_time for c in ds), sum(c.n for c in ds)
        gpu = sum(r.get('wall_time', 0.0) for c in ds
                  for r in c.records.values()
                  if str(r.get('config', {}).get('device', '')).startswith(
                      'cuda'))
        total, gpu_total, count = total + t, gpu_total + gpu, count + n
        rows.append([d, str(n), fmt_duration(t),
                     fmt_duration(gpu) if gpu else '–'])
    rows.append(['**total**', str(count), f'**{fmt_duration(total)}**',
                 fmt_duration(gpu_total) if gpu_total else '–'])
    lines += _table(['dataset', 'cells', 'wall time', 'on GPU'], rows)
    lines += ['', 'Mean seconds per training epoch:', '']
    rows = []
    for r in readouts:
        rows.append([display(r)] + [
            f'{cells[d, r].epoch_time:.3f}' if (d, r) in cells else '–'
            for d in datasets])
    lines += _table(['readout'] + list(datasets), rows)
    return lines + ['']


# CSV and plots ############################################################


#: A fold whose final training loss is at least this fraction of the loss
#: of a constant prediction never trained.
CHANCE_LOSS = 0.98


def constant_loss(dataset: str) -> Optional[float]:
    """The cross-entropy of the best constant prediction on a TU dataset:
    the entropy of its class frequencies (``TU_CLASS_COUNTS``), ``ln C``
    for a dataset known only by its number of classes ``C`` (exact when
    balanced), ``None`` for other datasets."""
    counts = TU_CLASS_COUNTS.get(dataset)
    if counts is None:
        classes = TU_DATASETS.get(dataset, (0, 0))[1]
        return math.log(classes) if classes else None
    total = sum(counts)
    return -sum(n / total * math.log(n / total) for n in counts if n)


def training_lines(cells: Cells, datasets: Sequence[str],
                   readouts: Sequence[str]) -> List[str]:
    """Did the models train? Final training loss and selected epoch."""
    rows = []
    for d in datasets:
        for r in readouts:
            cell = cells.get((d, r))
            if cell is None:
                continue
            recs = [cell.records[u] for u in cell.units]
            losses = [rec['final_train_loss'] for rec in recs
                      if rec.get('final_train_loss') is not None]
            epochs = [rec['best_epoch'] for rec in recs
                      if rec.get('best_epoch') is not None]
            if not losses or not epochs:
                continue
            chance = constant_loss(d)
            stuck = ('–' if chance is None else str(sum(
                loss >= CHANCE_LOSS * chance for loss in losses)))
            rows.append([d, display(r), str(cell.n), stuck,
                         f'{statistics.fmean(losses):.3f}',
                         f'{min(losses):.3f}-{max(losses):.3f}',
                         f'{min(epochs)}-{max(epochs)}',
                         _distinct([rec.get('config', {}).get('epochs')
                                    for rec in recs])])
    if not rows:
        return []
    shown = {row[0] for row in rows}
    chance_text = ', '.join(f'{d} {constant_loss(d):.3f}' for d in datasets
                            if d in shown and constant_loss(d) is not None)
    lines = ['## Training diagnostics', '',
             'Per cell: mean and range over the folds/seeds of the final '
             'training loss, the folds that never trained (final loss at '
             f'least {CHANCE_LOSS:g} x the loss of the best constant '
             'prediction, the entropy of the class frequencies: '
             f'{chance_text}), and the range of the selected epoch '
             '(near the last epoch: still improving when the budget '
             'ended).', '']
    lines += _table(['dataset', 'readout', 'n', 'never trained',
                     'final train loss',
                     'range', 'selected epoch', 'epochs'], rows)
    lines.append('')
    return lines


def write_csv(cells: Cells, path: str) -> None:
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['dataset', 'readout', 'metric', 'n', 'n_expected',
                         'mean', 'std', 'val_mean', 'epoch_time',
                         'wall_time'])
        for d in datasets:
            expected = expected_units([c for (dd, _), c in cells.items()
                                       if dd == d])
            for r in readouts:
                if (d, r) not in cells:
                    continue
                c = cells[d, r]
                writer.writerow([
                    d, r, c.metric, c.n, expected, f'{c.mean:.4f}',
                    '' if math.isnan(c.std) else f'{c.std:.4f}',
                    f'{c.val_mean:.4f}', f'{c.epoch_time:.6f}',
                    f'{c.wall_time:.3f}'])


def _colours(readouts: Sequence[str]) -> Dict[str, Any]:
    from matplotlib import colormaps
    names = list(READOUT_NAMES) + [r for r in readouts
                                   if r not in READOUT_NAMES]
    cmap = colormaps['tab10' if len(names) <= 10 else 'tab20']
    return {r: cmap(names.index(r) % cmap.N) for r in readouts}


def write_plots(cells: Cells, out_dir: str) -> List[str]:
    """Writes the two figures; returns the file names written (none when
    matplotlib is missing or there is nothing to plot)."""
    if not cells:
        return []
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn('matplotlib is not installed: no plots', stacklevel=2)
        return []
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    colours = _colours(readouts)
    expected = {d: expected_units([c for (dd, _), c in cells.items()
                                   if dd == d]) for d in datasets}

    # Mean test score per dataset, one dodged point per readout.
    fig = Figure(figsize=(max(6.0, 1.3 * len(datasets) + 4.0), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / len(readouts)
    for j, r in enumerate(readouts):
        xs, ys, es, full = [], [], [], []
        for i, d in enumerate(datasets):
            if (d, r) in cells:
                c = cells[d, r]
                xs.append(i + (j - (len(readouts) - 1) / 2) * width)
                ys.append(c.mean)
                es.append(0.0 if math.isnan(c.std) else c.std)
                full.append(c.n >= expected[d])
        if not xs:
            continue
        ax.errorbar(xs, ys, yerr=es, fmt='none', ecolor=colours[r],
                    capsize=2, lw=1)
        for x, y, f in zip(xs, ys, full, strict=True):
            ax.plot([x], [y], 'o', color=colours[r], ms=5,
                    mfc=colours[r] if f else 'white')
        ax.plot([], [], 'o', color=colours[r], label=display(r))
    for i in range(len(datasets) - 1):
        ax.axvline(i + 0.5, color='0.85', lw=0.8)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels([_column_name(d, cells) for d in datasets],
                       rotation=20, ha='right', fontsize=8)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel('test score (%), mean ± std')
    ax.set_title('Readouts: test accuracy (TU) / ROC-AUC (OGB)')
    ax.grid(axis='y', color='0.9')
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'accuracy.png'), dpi=130)

    # Score against seconds per epoch, one panel per dataset.
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    spare = nrows * ncols > len(datasets)  # An empty slot holds the legend.
    fig = Figure(figsize=(4.0 * ncols + (0.0 if spare else 2.5),
                          3.3 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, d in enumerate(datasets):
        ax = axes[k // ncols][k % ncols]
        times = []
        for r in readouts:
            if (d, r) not in cells:
                continue
            c = cells[d, r]
            if math.isnan(c.epoch_time):
                continue
            times.append(c.epoch_time)
            ax.errorbar([c.epoch_time], [c.mean],
                        yerr=[0.0 if math.isnan(c.std) else c.std],
                        fmt='o', color=colours[r], capsize=2, ms=5,
                        mfc=colours[r] if c.n >= expected[d] else 'white')
        if times and min(times) > 0 and max(times) / min(times) > 4:
            ax.set_xscale('log')
        ax.set_title(_column_name(d, cells), fontsize=9)
        ax.set_xlabel('s / training epoch', fontsize=8)
        ax.set_ylabel('test score (%)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(color='0.9')
    for k in range(len(datasets), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles = [axes[0][0].plot([], [], 'o', color=colours[r],
                               label=display(r))[0] for r in readouts]
    if spare:
        axes[-1][-1].set_visible(True)
        axes[-1][-1].axis('off')
        axes[-1][-1].legend(handles=handles, fontsize=8, loc='center')
        fig.tight_layout()
    else:
        fig.legend(handles=handles, fontsize=7, loc='center right')
        fig.tight_layout(rect=(0, 0, 1 - 2.3 / fig.get_figwidth(), 1))
    fig.savefig(osp.join(out_dir, 'accuracy_vs_time.png'), dpi=130)
    return ['accuracy.png', 'accuracy_vs_time.png']


def render(cache: str, out_dir: str,
           select_from: Optional[str] = None) -> str:
    """Renders the cache into :obj:`out_dir` (``accuracy.md``,
    ``accuracy.csv`` and the plots) and returns the markdown text. With
    :obj:`select_from` (a cache holding the ``*_lr1e-3`` cells), renders
    the table with the learning rate selected on validation instead."""
    os.makedirs(out_dir, exist_ok=True)
    cells = load_cache(cache)
    if select_from is not None:
        merged = {**load_cache(select_from), **cells}
        cells = select_learning_rate(merged)
    write_csv(cells, osp.join(out_dir, 'accuracy.csv'))
    plots = write_plots(cells, out_dir)
    text = render_markdown(cells, cache, plots, select_from, out_dir)
    with open(osp.join(out_dir, 'accuracy.md'), 'w') as f:
        f.write(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--cache', default=osp.join(HERE, 'results', 'accuracy_cache'),
        help='cell cache (default: benchmarks/results/accuracy_cache)')
    parser.add_argument('--out', default=osp.join(HERE, 'results'),
                        help='output folder (default: benchmarks/results)')
    parser.add_argument('--select_lr_from', default=None,
                        help='cache with the *_lr1e-3 cells: render the '
                        'table with the learning rate selected on '
                        'validation')
    args = parser.parse_args()
    render(args.cache, args.out, args.select_lr_from)
    print(f"Wrote {osp.join(args.out, 'accuracy.md')}")


if __name__ == '__main__':
    main()

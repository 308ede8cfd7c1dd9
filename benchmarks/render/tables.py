"""The result sections of a rendering and the CSV (``pandas``)."""
from __future__ import annotations

import math
from typing import List, Mapping, Optional, Sequence, Set

import pandas as pd

from sap_graph.experiments.compare.stats import EXACT_MAX

from ..variants import LR_SUFFIX
from .load import (
    Cell,
    Cells,
    comparable,
    display,
    expected_units,
    order_datasets,
    order_readouts,
)
from .markdown import column_name, label, md_table, rows_table
from .references import REFERENCES
from .stats import (
    CHANCE_LOSS,
    PairedResult,
    RankResult,
    collapsed_folds,
)

#: Columns of ``accuracy.csv``.
CSV_COLUMNS = ['dataset', 'readout', 'metric', 'n', 'n_expected', 'mean',
               'std', 'val_mean', 'epoch_time', 'wall_time']


def summary_frame(cells: Cells,
                  labels: Optional[Mapping[str, str]] = None,
                  ) -> pd.DataFrame:
    """One row per (dataset, readout) in table order: ``n`` finished
    folds/seeds, ``n_expected``, ``mean``/``std``/``val_mean`` of the
    metric in percent, ``epoch_time`` (s per epoch), ``wall_time`` (s);
    ``dataset`` is the shown label, ``key`` the cache's name."""
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    rows = []
    for d in datasets:
        expected = expected_units([c for (dd, _), c in cells.items()
                                   if dd == d])
        for r in readouts:
            if (d, r) in cells:
                c = cells[d, r]
                rows.append([label(d, labels), r, c.metric, c.n, expected,
                             c.mean, c.std, c.val_mean, c.epoch_time,
                             c.wall_time, d])
    return pd.DataFrame(rows, columns=CSV_COLUMNS + ['key'])


def write_csv(cells: Cells, path: str,
              labels: Optional[Mapping[str, str]] = None) -> None:
    frame = summary_frame(cells, labels)[CSV_COLUMNS]
    digits = {'mean': 4, 'std': 4, 'val_mean': 4, 'epoch_time': 6,
              'wall_time': 3}
    for col, k in digits.items():
        frame[col] = frame[col].map(
            lambda v, k=k: '' if math.isnan(v) else f'{v:.{k}f}')
    frame.to_csv(path, index=False)


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


def _rank_text(rank: Optional[float]) -> str:
    return f'{rank:.2f}' if rank is not None else '–'


def results_lines(cells: Cells, ranks: RankResult,
                  ranks_complete: Optional[RankResult] = None,
                  labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """The readouts x datasets table, the published rows beneath it and
    the average-rank lines."""
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    by_dataset = {d: [cells[d, r] for r in readouts if (d, r) in cells]
                  for d in datasets}
    expected = {d: expected_units(by_dataset[d]) for d in datasets}
    bold = {d: best_readouts(by_dataset[d]) for d in datasets}
    text = pd.DataFrame(
        [[(d, r), format_cell(c, expected[d])] for (d, r), c in cells.items()],
        columns=['key', 'text'])
    text['text'] = [f'**{t}**' if k[1] in bold[k[0]] else t
                    for k, t in zip(text['key'], text['text'], strict=True)]
    text[['dataset', 'readout']] = pd.DataFrame(text['key'].tolist())
    grid = (text.pivot(index='readout', columns='dataset', values='text')
            .reindex(index=readouts, columns=datasets).astype(object)
            .fillna('–'))
    grid.columns = [column_name(d, cells, labels) for d in datasets]
    grid['avg. rank'] = [_rank_text(ranks.average.get(r)) for r in readouts]
    second = (ranks_complete is not None and bool(ranks.excluded)
              and bool(ranks_complete.average))
    if second:
        grid['avg. rank, complete readouts'] = [
            _rank_text(ranks_complete.average.get(r)) for r in readouts]
    grid.insert(0, 'readout', [display(r) for r in readouts])
    refs = [ref for ref in REFERENCES
            if any(d in ref.values for d in datasets)]
    extra = len(grid.columns) - len(datasets) - 1
    rows = []
    if refs:
        rows.append(['*published references (not our runs):*']
                    + [''] * (len(datasets) + extra))
    for i, ref in enumerate(refs):
        rows.append([f'*{ref.label}* [{i + 1}]']
                    + [ref.values.get(d, '–') for d in datasets]
                    + [''] * extra)
    grid = pd.concat([grid, pd.DataFrame(rows, columns=grid.columns)])
    lines = md_table(grid) + ['']
    for i, ref in enumerate(refs):
        lines.append(f'[{i + 1}] {ref.label}: {ref.protocol}. Values as '
                     'published, typed in from the shared `ANCHORS.md`.  ')
    if refs:
        lines.append('')
    names = [label(d, labels) for d in ranks.used]
    if ranks.used:
        lines += [
            '**Average rank** (1 = best mean test score on a dataset, '
            f'ties share their mean rank) over the {len(ranks.used)} '
            f'dataset(s) on which all {len(readouts)} readouts of the '
            'table finished the same folds/seeds: ' + ', '.join(names)
            + '.']
    else:
        lines += ['**Average rank**: no dataset has results of all '
                  f'{len(readouts)} readouts on the same folds/seeds yet.']
    if ranks.excluded:
        lines[-1] += ' Not ranked: ' + '; '.join(
            f'{label(d, labels)} ({why})'
            for d, why in ranks.excluded.items()) + '.'
    if second:
        kept = len(ranks_complete.average)
        lines += ['', '**Average rank, complete readouts** (the other way '
                  'round: every dataset of the table, ranking only the '
                  f'{kept} readouts that finished all folds/seeds of '
                  'every dataset). Left out: ' + '; '.join(
                      f'{display(r)} (incomplete on '
                      + ', '.join(label(d, labels) for d in short.split(', '))
                      + ')'
                      for r, short in ranks_complete.excluded.items()) + '.']
    return lines + ['']


def paired_lines(results: Sequence[PairedResult],
                 default_sap: str,
                 labels: Optional[Mapping[str, str]] = None) -> List[str]:
    lines = [
        '## Paired tests: SAP against the best other readout', '',
        f'Per dataset, `{default_sap}` ({display(default_sap)}, the '
        'default, fixed in advance) and the SAP variant with the best mean '
        '*validation* score are each paired with the non-SAP readout with '
        'the best mean *validation* score. Both choices use validation '
        'scores only, so no test score selects what is tested, and are '
        'made among the cells with the most finished folds/seeds (as for '
        'bold). Only folds/seeds finished by both readouts are paired. '
        'Δ = SAP − baseline test score in percentage points per '
        'fold/seed; W/T/L = folds SAP wins/ties/loses. p: two-sided exact '
        'sign-flip permutation test of mean Δ = 0 '
        '(`sap_graph.experiments.compare.stats.sign_flip_test`: all 2^n '
        'sign patterns of the n paired differences, ties within the '
        'rounding of float32 scores counted; Monte Carlo above '
        f'{EXACT_MAX}). The smallest attainable p is 2/2^n (0.0020 '
        'for 10 folds, 0.25 for 3); p-values are not corrected for the '
        'several tests, and cross-validation folds share training data, '
        'so they are indicative only.', '']
    if not results:
        return lines + ['No dataset has both a SAP and a non-SAP result '
                        'yet.', '']
    if not any(res.readout == default_sap for res in results):
        lines += [f'`{default_sap}` has no result on these datasets yet.',
                  '']
    rows = []
    for res in results:
        p = (f'{res.p_value:.3g}' if not math.isnan(res.p_value) else '–')
        if res.p_method != 'exact':
            p += ' (MC)'
        rows.append([
            label(res.dataset, labels),
            f'{display(res.readout)} (`{res.readout}`)',
            res.choice, f'{display(res.against)} (`{res.against}`)',
            str(len(res.units)),
            ', '.join(f'{d:+.1f}' for d in res.diffs) or '–',
            f'{res.mean_diff:+.1f}' if res.diffs else '–',
            f'{res.wins}/{res.ties}/{res.losses}', p])
    lines += rows_table(['dataset', 'SAP variant', 'chosen', 'baseline '
                         '(best non-SAP by val)', 'pairs',
                         'Δ per fold/seed (pp)', 'mean Δ (pp)', 'W/T/L',
                         'p (sign-flip)'], rows, 'lllllrrcr')
    return lines + ['']


def chosen_lr_lines(cells: Cells,
                    labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """Per readout and dataset: folds in which lr 0.001 was chosen."""
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    counts = pd.DataFrame(
        [[d, r, '{}/{}'.format(sum(rec['selected'].endswith(LR_SUFFIX)
                                   for rec in c.records.values()), c.n)]
         for (d, r), c in cells.items()],
        columns=['dataset', 'readout', 'text'])
    grid = (counts.pivot(index='readout', columns='dataset', values='text')
            .reindex(index=readouts, columns=datasets).astype(object)
            .fillna('–'))
    grid.columns = [label(d, labels) for d in datasets]
    grid.insert(0, 'readout', [display(r) for r in readouts])
    return ['## Chosen learning rates', '',
            'Folds/seeds in which lr 0.001 had the higher validation '
            'score, of the folds/seeds run at both rates:', '',
            *md_table(grid), '']


def collapse_lines(cells: Cells, readouts: Optional[Sequence[str]] = None,
                   datasets: Optional[Sequence[str]] = None,
                   labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """Per learning rate, a readouts x datasets table of the folds that
    collapsed (see :func:`~benchmarks.render.stats.collapsed_folds`) before any
    selection; :obj:`readouts` (base names) and :obj:`datasets` restrict
    the rows and columns."""
    frame = collapsed_folds(cells)
    if readouts is not None:
        frame = frame[frame['readout'].isin(readouts)]
    if datasets is not None:
        frame = frame[frame['dataset'].isin(datasets)]
    if frame.empty:
        return []
    datasets = order_datasets(frame['dataset'].unique().tolist())
    lines = [
        '## Collapsed folds', '',
        'Folds/seeds whose final training loss is at least '
        f'{CHANCE_LOSS:g} x the loss of the best constant prediction (the '
        'entropy of the class frequencies, `TU_CLASS_COUNTS` in '
        '`sap_graph/experiments/data/tu.py`): the model never learnt '
        'more than the class prior. Counted per learning rate on the runs '
        'before selection, as collapsed/finished.', '']
    for lr, part in frame.groupby('lr', sort=True, group_keys=False):
        part = part.assign(text=[f'{c}/{n}' for c, n in
                                 zip(part['collapsed'], part['n'],
                                     strict=True)])
        rows = order_readouts(part['readout'].unique().tolist())
        grid = (part.pivot(index='readout', columns='dataset',
                           values='text')
                .reindex(index=rows, columns=datasets).astype(object)
                .fillna('–'))
        grid.columns = [label(d, labels) for d in datasets]
        grid.insert(0, 'readout', [display(r) for r in rows])
        total = int(part['collapsed'].sum())
        lines += [f'lr {lr:g} ({total} of {int(part["n"].sum())} folds '
                  'collapsed):', '', *md_table(grid), '']
    return lines

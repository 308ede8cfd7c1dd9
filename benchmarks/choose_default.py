"""Chooses SAP's default configuration on validation scores only.

For every SAP candidate of the grid and every dataset, the learning rate is
selected per fold on validation (0.01 cells in the main cache, the
``_lr1e-3`` twins in ``--select_lr_from``; a tie keeps 0.01) exactly as in
the fair table (:func:`benchmarks.render.load.select_learning_rate`), and the
candidate is scored by the mean *validation* accuracy of the selected runs.
A candidate with a collapsed run (final training loss >= 0.98 x the
constant-prediction loss) at either learning rate is ruled out. The default
is the candidate with the best average validation rank over the datasets
on which every candidate finished all folds. Test scores are never read.

A second table, the collapse census, counts the collapsed runs of each
candidate per dataset and learning rate over every cell of the caches
given (also datasets without a fair column, e.g. ogbg-molhiv, whose
lr-0.01 cells are named ``*_lr1e-2``).

Usage::

    python -m benchmarks.choose_default \\
        --override ENZYMES=benchmarks/results/enzymes_attr_cache

writes ``benchmarks/results/default_choice.md``.
"""
from __future__ import annotations

import argparse
import os.path as osp
import sys
from typing import Dict, List, Tuple

from scipy.stats import rankdata

from .render.load import (
    Cells,
    apply_overrides,
    base_readout,
    constant_loss,
    load_cache,
    order_datasets,
    parse_override,
    select_learning_rate,
)
from .render.stats import CHANCE_LOSS
from .variants import DEFAULT_CANDIDATES

RESULTS = osp.join(osp.dirname(osp.realpath(__file__)), 'results')


def collapsed(record: dict, dataset: str) -> bool:
    return record['final_train_loss'] >= CHANCE_LOSS * constant_loss(dataset)


def census(cells: Cells, candidates: List[str]
           ) -> Dict[Tuple[str, str], Dict[float, Tuple[int, int]]]:
    """``(candidate, dataset) -> {lr: (collapsed, runs)}`` over all cells."""
    out: Dict[Tuple[str, str], Dict[float, Tuple[int, int]]] = {}
    for (dataset, readout), cell in cells.items():
        name = base_readout(readout)
        if name not in candidates or constant_loss(dataset) is None:
            continue
        for record in cell.records.values():
            lr = float(record['config']['lr'])
            k, n = out.setdefault((name, dataset), {}).get(lr, (0, 0))
            out[name, dataset][lr] = (k + collapsed(record, dataset), n + 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cache', default=osp.join(RESULTS, 'accuracy_cache'),
                        help='cache of the lr 0.01 cells (default: '
                        'benchmarks/results/accuracy_cache)')
    parser.add_argument('--select_lr_from',
                        default=osp.join(RESULTS, 'ablation_cache'),
                        help='cache of the lr 0.001 cells (default: '
                        'benchmarks/results/ablation_cache)')
    parser.add_argument('--override', nargs='*', default=[],
                        help='DATASET=CACHE: take both rates of DATASET '
                        'from CACHE (default: none)')
    parser.add_argument('--candidates', nargs='+',
                        default=list(DEFAULT_CANDIDATES),
                        help='SAP variants: cell names, e.g. of '
                        'benchmarks/variants.py (default: '
                        + ' '.join(DEFAULT_CANDIDATES) + ')')
    parser.add_argument('--folds', type=int, default=10,
                        help='folds (default: 10)')
    parser.add_argument('--out', default=osp.join(RESULTS,
                                                  'default_choice.md'),
                        help='output (default: '
                        'benchmarks/results/default_choice.md)')
    args = parser.parse_args()
    try:
        overrides = [parse_override(o) for o in args.override]
    except ValueError as e:
        parser.error(str(e))

    cells = {**load_cache(args.cache), **load_cache(args.select_lr_from)}
    cells = apply_overrides(cells, overrides)
    chosen = select_learning_rate(cells)
    datasets = order_datasets({d for d, _ in cells})
    fair = order_datasets({d for d, r in chosen if r in args.candidates})

    # Validation accuracy of the lr-selected runs, complete cells only.
    val: Dict[Tuple[str, str], float] = {}
    for d in fair:
        for c in args.candidates:
            cell = chosen.get((d, c))
            if cell is not None and cell.n == args.folds:
                val[c, d] = cell.val_mean
    complete = [d for d in fair
                if all((c, d) in val for c in args.candidates)]
    ranks: Dict[str, List[float]] = {c: [] for c in args.candidates}
    for d in complete:
        for c, r in zip(args.candidates,
                        rankdata([-val[c, d] for c in args.candidates]),
                        strict=True):
            ranks[c].append(float(r))
    avg = {c: sum(r) / len(r) for c, r in ranks.items() if r}
    counts = census(cells, args.candidates)
    fair_collapsed = {c: sum(k for d in fair
                             for k, _ in counts.get((c, d), {}).values())
                      for c in args.candidates}
    eligible = [c for c in avg if fair_collapsed[c] == 0]
    choice = min(eligible, key=avg.get) if eligible else None

    command = ('python -m benchmarks.choose_default '
               + ' '.join(sys.argv[1:]))
    lines = ['# SAP default: chosen on validation', '',
             f'Generated by `{command.strip()}`; do not edit by hand.', '',
             'Mean *validation* accuracy (%) of the runs whose learning rate '
             '(0.01 or 0.001) was selected on validation per fold (`–`: '
             'not all folds at both rates); `collapsed` counts runs at '
             f'either rate whose final training loss is >= {CHANCE_LOSS} x '
             'the constant-prediction loss. Test scores are not read. '
             'Average rank over the datasets where every candidate finished '
             'all folds: ' + (', '.join(complete) or 'none') + '.', '',
             '| candidate | ' + ' | '.join(fair) +
             ' | collapsed | avg. val rank |',
             '|---|' + '--:|' * (len(fair) + 2)]
    for c in args.candidates:
        row = [f'{val[c, d]:.1f}' if (c, d) in val else '–' for d in fair]
        rank = f'{avg[c]:.2f}' if c in avg else '–'
        lines.append(f'| `{c}` | ' + ' | '.join(row) +
                     f' | {fair_collapsed[c]} | {rank} |')
    lines += ['', f'Chosen: `{choice}`' if choice else
              'Chosen: none (no candidate is complete and collapse-free)',
              '', '## Collapse census', '',
              'Collapsed runs / finished runs of each candidate, per dataset '
              'and learning rate, over every cell in the caches (the fair '
              'datasets above and those run at one rate only); `–`: not '
              'run.', '',
              '| candidate | lr | ' + ' | '.join(datasets) + ' |',
              '|---|--:|' + '--:|' * len(datasets)]
    for c in args.candidates:
        rates = sorted({lr for (c2, _), by in counts.items() if c2 == c
                        for lr in by}, reverse=True)
        for lr in rates:
            row = []
            for d in datasets:
                k_n = counts.get((c, d), {}).get(lr)
                row.append('–' if k_n is None else f'{k_n[0]}/{k_n[1]}')
            lines.append(f'| `{c}` | {lr:g} | ' + ' | '.join(row) + ' |')
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

"""Chooses SAP's default configuration on validation scores only.

For every SAP candidate of the grid and every dataset, the learning rate is
selected per fold on validation (0.01 cells in the main cache, the
``_lr1e-3`` twins in ``--select_lr_from``; a tie keeps 0.01) exactly as in
the fair table, and the candidate is scored by the mean *validation*
accuracy of the selected runs. A candidate with a collapsed fold (final
training loss >= 0.98 x the constant-prediction loss) at either learning
rate is ruled out. The default is the candidate with the best average
validation rank over the datasets on which every candidate finished all
folds. Test scores are never read.

Usage::

    python benchmarks/choose_default.py \\
        --cache benchmarks/results/accuracy_cache \\
        --select_lr_from benchmarks/results/ablation_cache \\
        --override ENZYMES=benchmarks/results/enzymes_attr_cache

writes ``benchmarks/results/default_choice.md``.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import os.path as osp
import sys
from typing import Dict, List, Optional, Tuple

from scipy.stats import rankdata

HERE = osp.dirname(osp.realpath(__file__))
sys.path.insert(0, osp.join(HERE, '..'))
from sap_graph.experiments.data import TU_CLASS_COUNTS  # noqa: E402

CANDIDATES = ['sap_sum', 'sap_max', 'sap_log', 'sap4_zero', 'sap4',
              'sap4_mean', 'sap1']
DATASETS = ['MUTAG', 'PROTEINS', 'ENZYMES', 'IMDB-BINARY', 'IMDB-MULTI',
            'NCI1', 'DD', 'REDDIT-BINARY']
COLLAPSE = 0.98


def constant_loss(dataset: str) -> float:
    counts = TU_CLASS_COUNTS[dataset]
    total = sum(counts)
    return -sum(c / total * math.log(c / total) for c in counts if c)


def cells(cache: str, dataset: str, readout: str) -> Dict[str, dict]:
    out = {}
    for path in glob.glob(osp.join(cache, dataset, readout, 'fold_*.json')):
        with open(path) as f:
            out[osp.basename(path)[:-5]] = json.load(f)
    return out


def selected(dataset: str, readout: str, caches: Tuple[str, str],
             folds: int) -> Optional[Tuple[List[float], int]]:
    """Validation scores of the lr-selected runs over all folds, and the
    number of collapsed runs at either rate; None if a fold is missing."""
    high = cells(caches[0], dataset, readout)
    low = cells(caches[1], dataset, f'{readout}_lr1e-3')
    units = [f'fold_{k}' for k in range(folds)]
    if any(u not in high or u not in low for u in units):
        return None
    ref = constant_loss(dataset)
    vals, collapsed = [], 0
    for u in units:
        a, b = high[u], low[u]
        vals.append(max(a['val'], b['val']))
        collapsed += sum(r['final_train_loss'] >= COLLAPSE * ref
                         for r in (a, b))
    return vals, collapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cache', default=osp.join(
        HERE, 'results', 'accuracy_cache'),
        help='cache of the lr 0.01 cells (default: '
        'benchmarks/results/accuracy_cache)')
    parser.add_argument('--select_lr_from', default=osp.join(
        HERE, 'results', 'ablation_cache'),
        help='cache of the lr 0.001 cells (default: '
        'benchmarks/results/ablation_cache)')
    parser.add_argument('--override', nargs='*', default=[],
                        help='DATASET=CACHE: take both rates of DATASET '
                        'from CACHE (default: none)')
    parser.add_argument('--candidates', nargs='+', default=CANDIDATES,
                        help=f'SAP variants (default: {CANDIDATES})')
    parser.add_argument('--folds', type=int, default=10,
                        help='folds (default: 10)')
    parser.add_argument('--out', default=osp.join(
        HERE, 'results', 'default_choice.md'),
        help='output (default: benchmarks/results/default_choice.md)')
    args = parser.parse_args()
    override = dict(item.split('=', 1) for item in args.override)

    table: Dict[str, Dict[str, Tuple[List[float], int]]] = {}
    for dataset in DATASETS:
        caches = ((override[dataset], override[dataset])
                  if dataset in override else
                  (args.cache, args.select_lr_from))
        for cand in args.candidates:
            res = selected(dataset, cand, caches, args.folds)
            if res is not None:
                table.setdefault(dataset, {})[cand] = res
    complete = [d for d in DATASETS
                if set(table.get(d, {})) == set(args.candidates)]
    ranks = {c: [] for c in args.candidates}
    for d in complete:
        means = [sum(table[d][c][0]) / args.folds for c in args.candidates]
        for c, r in zip(args.candidates, rankdata([-m for m in means]),
                        strict=True):
            ranks[c].append(float(r))
    collapsed = {c: sum(table[d][c][1] for d in table if c in table[d])
                 for c in args.candidates}
    eligible = [c for c in args.candidates
                if collapsed[c] == 0 and ranks[c]]
    avg = {c: sum(ranks[c]) / len(ranks[c]) for c in args.candidates
           if ranks[c]}
    choice = min(eligible, key=lambda c: avg[c]) if eligible else None

    command = 'python benchmarks/choose_default.py ' + ' '.join(sys.argv[1:])
    lines = ['# SAP default: chosen on validation', '',
             f'Generated by `{command.strip()}`; do not edit by hand.', '',
             'Mean *validation* accuracy (%) of the runs whose learning rate '
             '(0.01 or 0.001) was selected on validation per fold; '
             '`collapsed` counts runs at either rate whose final training '
             f'loss is >= {COLLAPSE} x the constant-prediction loss. Test '
             'scores are not read. Average rank over the datasets where '
             'every candidate finished all folds: ' +
             (', '.join(complete) or 'none') + '.', '',
             '| candidate | ' + ' | '.join(DATASETS) +
             ' | collapsed | avg. val rank |',
             '|---|' + '--:|' * (len(DATASETS) + 2)]
    for c in args.candidates:
        row = []
        for d in DATASETS:
            res = table.get(d, {}).get(c)
            row.append('–' if res is None else
                       f'{100 * sum(res[0]) / args.folds:.1f}')
        rank = f'{avg[c]:.2f}' if c in avg else '–'
        lines.append(f'| `{c}` | ' + ' | '.join(row) +
                     f' | {collapsed[c]} | {rank} |')
    lines += ['', f'Chosen: `{choice}`' if choice else
              'Chosen: none (no candidate is complete and collapse-free)',
              '']
    with open(args.out, 'w') as f:
        f.write('\n'.join(lines))
    print('\n'.join(lines))


if __name__ == '__main__':
    main()

"""Readouts on MoleculeNet: every set of ``$SAP_GRAPH_DATA/moleculenet``
through the comparison engine (``sap_graph.experiments.compare``), one
output folder per set under ``benchmarks/results/molecules/`` (report,
per-run CSV, figure and the cache of finished runs, so that a rerun
resumes); ``--render`` writes the summary page ``molecules.md`` from them.

The same model and budget for every readout (the ``molecules`` kind of
``sap_graph.experiments.data.kinds``, epochs below), balanced scaffold
splits drawn with seeds 0..9 on the small sets (under 2,100 molecules,
so that an exact sign-flip test can reach p < 0.05) and 0..4 on the
larger ones, learning rate chosen per seed on validation among 0.01 and
0.001; MoleculeNet's metrics (ROC-AUC, RMSE, MAE on QM8). A set whose
later seeds have not all run renders as partial.

Usage::

    python -m benchmarks.molecules --sets freesolv esol --workers 2
    python -m benchmarks.molecules --render
"""
from __future__ import annotations

import argparse
import csv
import gzip
import os
import os.path as osp
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

HERE = osp.dirname(osp.realpath(__file__))
OUT = osp.join(HERE, 'results', 'molecules')


@dataclass(frozen=True)
class MoleculeSet:
    name: str
    path: str  # Under $SAP_GRAPH_DATA/moleculenet.
    targets: Optional[Tuple[str, ...]]  # None: every column but SMILES/ids.
    seeds: int = 5
    drop: Tuple[str, ...] = ()  # Non-task columns.
    metric: Optional[str] = None  # Regression: MoleculeNet's, if not RMSE.


#: The MoleculeNet sets, smallest first.
SETS = {s.name: s for s in (
    MoleculeSet('freesolv', 'freesolv/SAMPL.csv', ('expt',), seeds=10),
    MoleculeSet('esol', 'esol/delaney-processed.csv',
                ('measured log solubility in mols per litre',), seeds=10),
    MoleculeSet('clintox', 'clintox/clintox.csv', ('FDA_APPROVED', 'CT_TOX'),
                seeds=10),
    MoleculeSet('bbbp', 'bbbp/BBBP.csv', ('p_np',), seeds=10),
    MoleculeSet('sider', 'sider/sider.csv', None, seeds=10),
    MoleculeSet('lipophilicity', 'lipophilicity/Lipophilicity.csv',
                ('exp',)),
    MoleculeSet('tox21', 'tox21/tox21.csv', None, drop=('mol_id',)),
    MoleculeSet('qm8', 'qm8/qm8.csv.gz', tuple(
        f'{q}-{m}' for m in ('CC2', 'PBE0', 'CAM')
        for q in ('E1', 'E2', 'f1', 'f2')), metric='mae'),
)}

#: The readouts: the simple ones, the learned baselines, the SAP default,
#: its frozen-query control and the SAP candidates.
CORE = ('sum', 'mean', 'max', 'set2set', 'sap', 'sap_frozen', 'sap_log',
        'sap_log_frozen', 'sap_rezero')
#: Epochs per run (every readout, every set).
EPOCHS = 20
MORE = ('attention', 'set_transformer', 'sap_sum', 'sap_sharp',
        'sap_mean')


def targets_of(s: MoleculeSet, path: str) -> List[str]:
    if s.targets is not None:
        return list(s.targets)
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt', newline='') as f:
        header = next(csv.reader(f))  # Quoted names hold commas (SIDER).
    return [c for c in header if c not in ('smiles', *s.drop)]


def compare_set(name: str, readouts: Sequence[str], data: str,
                epochs: int, **options):
    """:func:`~sap_graph.experiments.compare.compare` of one set into its
    folder, with this script's budget, seeds and command line."""
    from sap_graph.experiments.compare import compare
    s = SETS[name]
    path = osp.join(data, 'moleculenet', s.path)
    return compare(
        path, readouts, out=osp.join(OUT, name), epochs=epochs,
        seeds=list(range(s.seeds)), smiles_column='smiles',
        targets=targets_of(s, path), metric=s.metric,
        command=f'python -m benchmarks.molecules --sets {name} '
                f'--readouts {" ".join(readouts)} --epochs {epochs}',
        **options)


def run(sets: Sequence[str], readouts: Sequence[str], epochs: int,
        workers: int, data: str) -> None:
    for name in sets:
        result = compare_set(name, readouts, data, epochs, workers=workers)
        best = result.row(result.best)
        print(f'{name}: best by val {result.best} {result.metric} '
              f'{best.test_mean:.4f} ± {best.test_std:.4f}', flush=True)


def render_results(sets: Sequence[str], data: str, epochs: int = EPOCHS,
                   write: bool = True) -> dict:
    """The :class:`ComparisonResult` of every set with finished runs
    (nothing is trained; with :obj:`write` each folder's report is
    rewritten)."""
    from .molecules_page import readouts_in
    results = {}
    for name in sets:
        readouts = readouts_in(osp.join(OUT, name))
        if readouts:
            results[name] = compare_set(name, readouts, data, epochs,
                                        train=False, write=write,
                                        progress=False)
    return results


def render(sets: Sequence[str], epochs: int, data: str) -> None:
    from sap_graph.experiments.files import atomic_write

    from .molecules_page import page
    results = render_results(sets, data, epochs)
    first = next(iter(results.values()))
    cfg = first.config
    budget = (f"Budget, equal for every readout: {cfg['conv']} with OGB "
              f"atom and bond encoders, {cfg['num_layers']} layers of "
              f"width {cfg['hidden_channels']}, batch {cfg['batch_size']}, "
              f"{cfg['epochs']} epochs, dropout {cfg['dropout']} / layer "
              f"dropout {cfg['layer_dropout']}; learning rate chosen per "
              f"seed on validation among "
              f"{', '.join(f'{lr:g}' for lr in cfg['lrs'])}; balanced "
              f"Bemis-Murcko scaffold split 80/10/10 drawn with each seed; "
              f"regression targets standardised on the training part. "
              f"Sets and seeds: "
              + ', '.join(f"{n} ({max(r.n for r in res.rows)})"
                          for n, res in results.items()) + '.')
    text = page(results, budget)
    atomic_write(osp.join(OUT, 'molecules.md'),
                 lambda f: f.write(text.encode()))
    print(f"Wrote {osp.join(OUT, 'molecules.md')}")


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sets', nargs='+', default=list(SETS),
                        choices=list(SETS),
                        help='MoleculeNet sets (default: all)')
    parser.add_argument('--readouts', nargs='+', default=list(CORE),
                        help='variants of benchmarks/variants.py to run '
                        '(default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=EPOCHS,
                        help='epochs per run (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=1,
                        help='local worker processes, one thread each '
                        '(default: %(default)s)')
    parser.add_argument('--data', default=os.environ.get(
        'SAP_GRAPH_DATA', osp.join(HERE, '..', '..', 'shared', 'data')),
        help='folder holding moleculenet/ (default: $SAP_GRAPH_DATA or '
        '../shared/data)')
    parser.add_argument('--render', action='store_true',
                        help='only write molecules.md from the reports')
    args = parser.parse_args(argv)
    if not args.render:
        run(args.sets, args.readouts, args.epochs, args.workers, args.data)
    render(args.sets, args.epochs, args.data)


if __name__ == '__main__':
    main()

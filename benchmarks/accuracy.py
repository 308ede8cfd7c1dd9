"""The readout comparison grid: datasets x readouts x folds, resumable.

Every readout gets the same GIN encoder, hidden size, optimiser and epoch
budget. TU datasets use stratified 10-fold cross-validation with model
selection on a validation split carved from each training fold (Errica et
al. 2020); ogbg-molhiv uses the official scaffold split, the OGB Evaluator
and several seeds. Each finished (dataset, readout, fold/seed) is written
to ``benchmarks/results/accuracy_cache/`` at once, so an interrupted run
resumes where it stopped; ``--render`` (also run after every dataset)
builds ``benchmarks/results/accuracy.md`` and the plots.

Usage::

    python -m benchmarks.accuracy                          # whole grid
    python -m benchmarks.accuracy --datasets MUTAG PROTEINS --readouts sum sap4
    python -m benchmarks.accuracy --shard 0/2 &           # two shards
    python -m benchmarks.accuracy --shard 1/2
    python -m benchmarks.accuracy --render                 # tables, plots

The readout variants (name -> training options, display label) are the
table of ``benchmarks/variants.py``; one cell is trained by
:func:`sap_graph.experiments.train.run_split`, as in ``sap-graph compare``.
"""
from __future__ import annotations

import argparse
import os.path as osp
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from sap_graph.experiments.data import load_dataset
from sap_graph.experiments.data.kinds import protocol_of
from sap_graph.experiments.files import write_json
from sap_graph.experiments.train import (
    TrainConfig,
    device_info,
    plan_splits,
    resolve_config,
    resolve_device,
    run_split,
    versions,
)
from sap_graph.experiments.train.protocols import PROTOCOL_NAMES

from .render_accuracy import CACHE, RESULTS, parse_override, render
from .render_accuracy import add_arguments as add_render_arguments
from .variants import DEFAULT_SAP, GRID, VARIANTS

TU_DATASETS = ['MUTAG', 'PROTEINS', 'ENZYMES', 'IMDB-BINARY', 'IMDB-MULTI',
               'NCI1', 'DD', 'REDDIT-BINARY']
#: Epochs and lr step of a TU fold where the grid's budget differs from 50
#: and 25 (the cached cells were run with these; ``--epochs`` and
#: ``--lr_step`` override them for every dataset).
TU_BUDGET: Dict[str, Tuple[int, int]] = {'REDDIT-BINARY': (20, 10)}
OGB_DATASETS = ['ogbg-molhiv']


def cell_path(cache: str, dataset: str, readout: str, unit: str) -> str:
    return osp.join(cache, dataset, readout, f'{unit}.json')


def write_atomic(path: str, obj: Any) -> None:
    # The cache format: indent 1, sorted keys, no final newline.
    write_json(path, obj, indent=1, sort_keys=True, newline=False)


def grid_config(args: argparse.Namespace, dataset: str,
                readout: str) -> TrainConfig:
    cfg = TrainConfig(dataset=dataset, root=args.root, device=args.device,
                      progress=False, verbose=False, seed=args.seed,
                      use_node_attr=args.use_node_attr,
                      **VARIANTS[readout].config())
    kind = 'ogb' if dataset.startswith('ogbg-') else 'tu'
    cfg = resolve_config(cfg, kind)
    if kind == 'tu':
        epochs, lr_step = TU_BUDGET.get(dataset, (50, 25))
        cfg = replace(
            cfg, epochs=epochs if args.epochs is None else args.epochs,
            lr_step=lr_step if args.lr_step is None else args.lr_step,
            folds=args.folds)
    else:
        cfg = replace(cfg, epochs=args.ogb_epochs,
                      hidden_channels=args.ogb_hidden,
                      seeds=list(range(args.ogb_seeds)))
    return cfg


def units(dataset: str, args: argparse.Namespace) -> List[str]:
    if dataset.startswith('ogbg-'):
        return [f'seed_{s}' for s in range(args.ogb_seeds)]
    return [f'fold_{k}' for k in range(args.folds)]


def run_unit(task: Any, cfg: TrainConfig, unit: str) -> Dict:
    """Trains one fold (TU) or one seed (OGB) of :obj:`cfg`'s protocol
    (:func:`~sap_graph.experiments.train.plan_splits`) with
    :func:`~sap_graph.experiments.train.run_split` and returns its
    record."""
    split = next(s for s in plan_splits(task, cfg) if s.unit == unit)
    record, _ = run_split(task, cfg, split.index, split.seed,
                          resolve_device(cfg.device))
    if unit.startswith('fold_'):
        record = {'fold': int(unit.split('_')[1]), **record}
    record['test'] = record[f'test_{task.metric}']
    record['val'] = record[f'val_{task.metric}']
    return record


def run_grid(args: argparse.Namespace) -> None:
    todo = [(d, r) for d in args.datasets for r in args.readouts]
    shard, num_shards = args.shard
    for dataset in args.datasets:
        task = None
        # Fold-major: every readout finishes fold k before any starts k+1,
        # so an interrupted dataset still gives paired folds.
        for unit in units(dataset, args):
            for readout in args.readouts:
                index = todo.index((dataset, readout)) * 1000 + \
                    units(dataset, args).index(unit)
                if index % num_shards != shard:
                    continue
                path = cell_path(args.cache, dataset, readout, unit)
                if osp.exists(path):
                    continue
                if task is None:
                    task = load_dataset(dataset, root=args.root,
                                        use_node_attr=args.use_node_attr)
                cfg = grid_config(args, dataset, readout)
                start = time.perf_counter()
                record = run_unit(task, cfg, unit)
                record.update(
                    dataset=dataset, readout=readout, unit=unit,
                    wall_time=time.perf_counter() - start,
                    config={k: v for k, v in vars(cfg).items()
                            if k not in ('progress', 'verbose', 'out',
                                         'checkpoint', 'root')},
                    protocol=PROTOCOL_NAMES[protocol_of(task)],
                    metric=task.metric,
                    versions=versions(record.pop('sap_graph_paths')),
                    device=device_info(torch.device(cfg.device)),
                    threads=torch.get_num_threads())
                write_atomic(path, record)
                print(f'{dataset:14s} {readout:16s} {unit:8s} '
                      f'test {record["test"]:.4f} val {record["val"]:.4f} '
                      f'{record["epoch_time_mean"]:.3f} s/epoch '
                      f'({record["wall_time"]:.0f} s)', flush=True)
        if shard == 0 and not args.no_render:
            render_all(args.cache, args.out)


def render_all(cache: str, out_dir: str,
               select_from: Optional[str] = None,
               overrides: Sequence[Tuple[str, str]] = (),
               default_sap: Optional[str] = None) -> None:
    render(cache, out_dir, select_from, overrides,
           default_sap or DEFAULT_SAP)


def parse_shard(text: str) -> tuple:
    i, n = text.split('/')
    if not 0 <= int(i) < int(n):
        raise argparse.ArgumentTypeError(f"invalid shard '{text}'")
    return int(i), int(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=TU_DATASETS + OGB_DATASETS,
                        help='datasets (default: all TU sets, ogbg-molhiv)')
    parser.add_argument('--readouts', nargs='+', default=list(GRID),
                        choices=list(VARIANTS),
                        help='readout variants of benchmarks/variants.py '
                        '(default: the grid readouts, ' + ' '.join(GRID)
                        + ')')
    parser.add_argument('--epochs', type=int, default=None,
                        help='epochs per TU fold (default: 50, '
                        'REDDIT-BINARY 20)')
    parser.add_argument('--lr_step', type=int, default=None,
                        help='halve the learning rate every this many '
                        'epochs (default: 25, REDDIT-BINARY 10)')
    parser.add_argument('--folds', type=int, default=10,
                        help='cross-validation folds (default: 10)')
    parser.add_argument('--ogb_epochs', type=int, default=10,
                        help='epochs per ogbg seed (default: 10)')
    parser.add_argument('--ogb_hidden', type=int, default=64,
                        help='hidden width on ogbg (default: 64)')
    parser.add_argument('--ogb_seeds', type=int, default=3,
                        help='seeds on ogbg (default: 3)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the splits and models (default: 0)')
    parser.add_argument('--root', default=None,
                        help='data root (default: $SAP_GRAPH_DATA rules)')
    parser.add_argument('--use_node_attr', action='store_true',
                        help='TU datasets: also use continuous node '
                        'attributes (use a separate --cache)')
    parser.add_argument('--device', default='cpu',
                        help='device (default: cpu)')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads, 0 keeps the default '
                        '(default: 0)')
    parser.add_argument('--shard', type=parse_shard, default=(0, 1),
                        help='run only cells i mod n, as "i/n" '
                        '(default: 0/1)')
    parser.add_argument('--cache', default=CACHE,
                        help=f'result cache folder (default: {CACHE})')
    parser.add_argument('--out', default=RESULTS,
                        help=f'folder for tables and plots (default: '
                        f'{RESULTS})')
    parser.add_argument('--render', action='store_true',
                        help='only render tables and plots from the cache')
    parser.add_argument('--no_render', action='store_true',
                        help='do not render after each dataset')
    parser.add_argument('--select_lr_from', default=None,
                        help='with --render: cache holding the *_lr1e-3 '
                        'cells; renders the table with the learning rate '
                        'selected on validation per fold (into --out)')
    add_render_arguments(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.select_lr_from is not None and not args.render:
        parser.error('--select_lr_from needs --render')
    try:
        overrides = [parse_override(o) for o in args.override]
    except ValueError as e:
        parser.error(str(e))
    if not args.render:
        run_grid(args)
    render_all(args.cache, args.out, args.select_lr_from, overrides,
               args.default_sap)


if __name__ == '__main__':
    main()

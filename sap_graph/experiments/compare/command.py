r""":obj:`sap-graph compare`: its flags (:func:`add_parser`) and run
(:func:`run`), over :func:`~sap_graph.experiments.compare.compare`."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import fields
from typing import Any, Sequence

from sap_graph.experiments.flags import (
    _add,
    _error,
    add_config_arguments,
    config_from_args,
)

#: TrainConfig fields that compare sets itself (per readout, per run).
_COMPARE_OWN = ('heads', 'readout_kwargs', 'lr', 'out', 'checkpoint', 'state',
                'resume', 'verbose')


#: The fields whose errors are about the options in --readouts.
_PER_READOUT = ('heads', 'concat', 'readout', 'readout_kwargs')


def _shard(text: str) -> tuple:
    try:
        i, n = (int(p) for p in text.split('/'))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected i/n, e.g. 0/4 (got '{text}')") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f'expected 0 <= i < n (got {text})')
    return i, n


def add_compare_parser(sub: Any) -> None:
    from sap_graph.experiments.compare.variants import (
        DEFAULT_READOUTS,
        VARIANTS,
    )
    compare = sub.add_parser(
        'compare', help='which readout for my data? readouts side by side',
        description='Train every readout under the same model, budget and '
        "protocol of the dataset's kind (k-fold CV, official split, or a "
        'scaffold split per seed for molecules), choose the learning rate '
        'per fold/seed on validation, and write OUT/report.md (mean ± std, '
        'best by validation, paired sign-flip tests), OUT/results.csv and '
        'OUT/compare.png. Finished runs are kept in OUT/runs/: a rerun '
        'trains only what is missing. See docs/compare.md.')
    _add(compare, 'readouts', nargs='+', default=list(DEFAULT_READOUTS),
         help=f"readouts: {', '.join(VARIANTS)}, any registered readout, "
         f"or one with JSON options, e.g. 'sap{{\"residual\": \"mean\"}}' "
         f"(default: {' '.join(DEFAULT_READOUTS)})")
    _add(compare, 'lrs', nargs='+', type=float, default=[0.01, 0.001],
         help='learning rates, one chosen per fold/seed on validation '
         '(default: 0.01 0.001)')
    _add(compare, 'out', required=True,
         help='output folder (required); its runs/ cache is resumed')
    _add(compare, 'workers', type=int, default=1,
         help='local worker processes, one run each (default: 1)')
    _add(compare, 'threads', type=int, default=1,
         help='torch threads per worker (default: 1)')
    _add(compare, 'shard', type=_shard, default=(0, 1),
         help='train only runs i, i+n, i+2n, ... of the plan, e.g. one '
         'SLURM array task each; render afterwards with --render_only '
         '(default: 0/1)')
    _add(compare, 'render_only', action='store_true',
         help='train nothing; write the report of the finished runs '
         '(default: off)')
    add_config_arguments(compare, exclude=_COMPARE_OWN)


def run_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from sap_graph.experiments.cli import USER_ERRORS
    from sap_graph.experiments.compare.api import command_line, compare
    from sap_graph.experiments.signals import sigterm_as_interrupt
    cfg = config_from_args(args)
    options = {f.name: getattr(cfg, f.name) for f in fields(cfg)
               if f.name not in _COMPARE_OWN and not f.metadata.get('hidden')
               and f.name not in ('dataset', 'progress')}
    try:
        with sigterm_as_interrupt():
            result = compare(
                args.dataset, args.readouts, out=args.out, lrs=args.lrs,
                workers=args.workers, threads=args.threads,
                shard=args.shard, train=not args.render_only,
                progress=cfg.progress, command=command_line(argv),
                **options)
    except (*USER_ERRORS, ValueError) as e:
        if os.environ.get('SAP_GRAPH_DEBUG'):
            raise
        if getattr(e, 'field', None) in _PER_READOUT:
            e.field = 'readouts'  # Compare's flag for readout options.
        return _error(e)
    except KeyboardInterrupt:
        print(f'error: interrupted; finished runs are kept in '
              f'{os.path.join(args.out, "runs")}, rerun to continue',
              file=sys.stderr)
        return 130
    if result.missing and args.shard != (0, 1):
        print(f'Shard {args.shard[0]}/{args.shard[1]} done; '
              f'{result.missing} runs of the plan missing. Render with '
              f'--render_only once all shards have finished.')
        return 0
    print(_summary(result, '' if args.render_only else
                   ' (rerun to train them)'))
    print(f'Wrote {os.path.join(args.out, "report.md")}')
    return 0


def _summary(result: Any, hint: str = '') -> str:
    r"""The line saying the best readout, and whether the result is
    partial (planned runs missing: held by another process, say)."""
    name = result.dataset['name']
    if result.missing:
        total = result.missing + len(result.runs)
        name += (f': partial, {result.missing} of {total} planned runs '
                 f'missing{hint}')
        if result.best is None:
            return f'{name}; no readout is ranked yet'
        name += '; so far'
    if result.best is None:
        return f'{name}: no readout has a finite validation score'
    row = result.row(result.best)
    spread = f' ± {row.test_std:.4f}' if row.n > 1 else ''
    return (f"{name}: best by validation {result.best}, test "
            f"{result.metric} {row.test_mean:.4f}{spread} "
            f"({row.n} {'fold' if result.protocol == 'kfold' else 'seed'}"
            f"{'s' if row.n != 1 else ''})")



__all__ = ['add_compare_parser', 'run_compare']

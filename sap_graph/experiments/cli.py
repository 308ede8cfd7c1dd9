r"""Command line interface: :obj:`sap-graph train ...`,
:obj:`sap-graph compare ...` and :obj:`sap-graph explain ...` (also
:obj:`python -m sap_graph ...`). Each command is one entry of
:data:`COMMANDS`: a function adding its flags and a function running it.
The flags of :obj:`train` and :obj:`compare` are made from the fields of
:class:`~sap_graph.experiments.train.TrainConfig` and their help texts.

Set :envvar:`SAP_GRAPH_DEBUG=1` for tracebacks instead of one-line
errors. Flags use PyG's snake_case (:obj:`--hidden_channels`); the dashed
spellings (:obj:`--hidden-channels`, :obj:`--no-progress`) are accepted
too.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
)

from sap_graph.experiments.checkpoint import CheckpointError
from sap_graph.experiments.compare import command as compare_command
from sap_graph.experiments.data import (
    DatasetFormatError,
    DatasetNotFoundError,
    UnknownDatasetError,
)
from sap_graph.experiments.errors import ConfigError, one_line
from sap_graph.experiments.files import (
    LockedError,
    OutputError,
    ResultRescuedError,
)
from sap_graph.experiments.flags import (
    ArgumentParser,
    _add,
    _error,
    add_config_arguments,
    config_from_args,
)
from sap_graph.experiments.option_types import number
from sap_graph.experiments.readouts import READOUTS, UnknownReadoutError
from sap_graph.experiments.signals import sigterm_as_interrupt

#: Errors reported as one line, without a traceback.
USER_ERRORS = (DatasetNotFoundError, DatasetFormatError, UnknownDatasetError,
               UnknownReadoutError, CheckpointError, ImportError, OutputError,
               LockedError)


# Commands #################################################################


def _add_train(sub: Any) -> None:
    train = sub.add_parser(
        'train', help='train and evaluate a graph classifier',
        description='Train a GraphClassifier with k-fold CV (TU, '
        'synthetic), the official OGB split or scaffold splits (molecules '
        "from a CSV), and write a JSON result. Defaults 'per dataset "
        "kind' are listed in docs/training.md.")
    add_config_arguments(train)
    _add(train, 'readout', default='sap',
         help=f"readout: {', '.join(READOUTS)} (default: sap)")
    heads = train.add_mutually_exclusive_group()
    _add(heads, 'concat', action='store_true',
         help='concatenate the heads of sap (or set_transformer) instead '
         "of the readout's default (default: sap averages its heads)")
    _add(heads, 'no_concat', action='store_true',
         help='average the heads (default: the readout default)')
    _add(train, 'diversity', type=float, default=0.0,
         help='weight of the sap head-diversity penalty ||AA^T - I||^2 '
         '(Lin et al. 2017) added to the loss (default: 0.0)')
    _add(train, 'entropy', type=float, default=0.0,
         help='weight of the sap attention entropy added to the loss; '
         'positive sharpens, negative spreads (default: 0.0)')


def _sap_regularisers(args: argparse.Namespace) -> Dict[str, Any]:
    kwargs = dict(args.readout_kwargs)
    for name in ('diversity', 'entropy'):
        value = getattr(args, name)
        if value:
            if args.readout != 'sap':
                raise ValueError(f"--{name} applies to the 'sap' readout "
                                 f"only (got --readout {args.readout})")
            try:  # Named by its own flag, not --readout_kwargs.
                number(name, value)
            except ValueError as e:
                raise ConfigError(name, str(e)) from None
            kwargs[name] = value
    return kwargs


def _config(args: argparse.Namespace) -> Any:
    return config_from_args(
        args, readout=args.readout, readout_kwargs=_sap_regularisers(args),
        concat=True if args.concat else False if args.no_concat else None)


def _summary(result: dict) -> str:
    cfg = result['config']
    runs = result.get('folds') or result.get('seeds') or []
    what = (f"{len(runs)} {'fold' if 'folds' in result else 'seed'}"
            f"{'s' if len(runs) != 1 else ''}")
    spread = f" ± {result['test_std']:.4f}" if len(runs) > 1 else ''
    return (f"{result['dataset']['name']} readout={cfg['readout']}: test "
            f"{result['metric']} {result['test_mean']:.4f}{spread} "
            f"({what}), val "
            f"{result['val_mean']:.4f}, median epoch time "
            f"{result['epoch_time_median']:.3f}s")


def _run_train(args: argparse.Namespace) -> int:
    from sap_graph.experiments import distributed
    try:
        from sap_graph.experiments.train import run
    except ImportError as e:  # scikit-learn or tqdm missing.
        return _error(ImportError(
            f"training needs the 'train' extra: pip install "
            f"'sap-graph[train]' ({e})"))
    try:
        with sigterm_as_interrupt():
            result = run(_config(args))
    except ResultRescuedError as e:  # Trained, but not saved as asked.
        if os.environ.get('SAP_GRAPH_DEBUG'):
            raise
        return _error(e, 1)
    except (*USER_ERRORS, ValueError) as e:  # ValueError: bad options.
        if os.environ.get('SAP_GRAPH_DEBUG'):
            raise
        # Under torchrun every rank meets the same (deterministic) error.
        return _error(e) if distributed.is_main() else 2
    except KeyboardInterrupt:
        hint = (f'; continue with --resume --state {args.state}'
                if args.state else '')
        if distributed.is_main():  # torchrun interrupts every rank.
            print(f'error: interrupted{hint}', file=sys.stderr)
        return 130
    finally:
        rank0 = distributed.is_main()
        distributed.shutdown()
    if not rank0:
        return 0
    print(_summary(result))
    if args.out:
        print(f'Wrote {args.out}')
    if args.checkpoint:
        print(f'Saved the selected model to {args.checkpoint}')
    return 0


def _add_explain(sub: Any) -> None:
    explain = sub.add_parser(
        'explain', help='draw what the sap readout of a checkpoint attends '
        'to', description='Rebuild a model saved by `sap-graph train '
        '--checkpoint` (readout sap), load its dataset as training did, and '
        'draw the attention weights of one graph (one panel per head and '
        'their mean), optionally with statistics over the dataset.')
    _add(explain, 'checkpoint', required=True,
         help='a checkpoint written by `sap-graph train --checkpoint` '
         '(required)')
    _add(explain, 'dataset', default=None,
         help="dataset name (default: the checkpoint's)")
    _add(explain, 'root', default=None,
         help="data root as for train (default: the checkpoint's, else "
         "$SAP_GRAPH_DATA/{TUDataset,ogb}, else ./data/...)")
    _add(explain, 'index', type=int, default=0,
         help='the graph to draw, 0-based (default: 0)')
    _add(explain, 'out', default='attention.png',
         help='image of the graph (PNG, SVG or PDF) (default: '
         'attention.png)')
    _add(explain, 'stats', default=None,
         help='also draw attention entropy vs graph size and the attention '
         'per node type and class (quantile bin of a regression target) '
         'over the whole dataset here (default: none)')
    add_config_arguments(explain, only=('smiles_column', 'targets'), defaults={
        'smiles_column': (None, "the checkpoint's for a CSV, else smiles"),
        'targets': (None, "the checkpoint's for a CSV")})


@dataclass(frozen=True)
class Command:
    r"""A subcommand: :obj:`add(subparsers)` adds its parser,
    :obj:`run(args, argv)` runs it and returns the exit status."""
    add: Callable[[Any], None]
    run: Callable[[argparse.Namespace, Sequence[str]], int]


#: Every subcommand of :obj:`sap-graph`.
COMMANDS: Dict[str, Command] = {
    'train': Command(_add_train, lambda args, argv: _run_train(args)),
    'compare': Command(compare_command.add_compare_parser,
                       compare_command.run_compare),
    'explain': Command(_add_explain, lambda args, argv: _run_explain(args)),
}


def build_parser() -> argparse.ArgumentParser:
    r"""Returns the argument parser of :obj:`sap-graph`."""
    parser = ArgumentParser(
        prog='sap-graph',
        description='Graph property prediction with self-attention '
        'pooling: train a model, compare readouts, explain attention.')
    sub = parser.add_subparsers(dest='command', required=True)
    for command in COMMANDS.values():
        command.add(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""Entry point of :obj:`sap-graph`; returns the exit status."""
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(argv)
    with _warnings_as_lines():
        return COMMANDS[args.command].run(args, argv)


@contextlib.contextmanager
def _warnings_as_lines() -> Iterator[None]:
    r"""Shows each warning as one :obj:`warning: ...` line (a user of the
    command wants the message, not the library line that raised it)."""
    def show(message: Any, category: Any, filename: str, lineno: int,
             file: Any = None, line: Any = None) -> None:
        print(f'warning: {one_line(message)}', file=file or sys.stderr)

    previous = warnings.showwarning
    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = previous


def _run_explain(args: argparse.Namespace) -> int:
    from sap_graph.experiments.explain import explain_checkpoint
    from sap_graph.experiments.explain.targets import outcome_text
    try:
        result = explain_checkpoint(
            args.checkpoint, args.out, index=args.index,
            dataset=args.dataset, root=args.root, stats_out=args.stats,
            smiles_column=args.smiles_column, targets=args.targets)
    except (*USER_ERRORS, ValueError, OSError) as e:
        if os.environ.get('SAP_GRAPH_DEBUG'):
            raise
        return _error(e)
    # Entropy is >= 0 (one node: 0, not a rounding's -0.00).
    entropy = ', '.join(f'{max(h, 0.0):.2f}' for h in result['entropy'])
    targets = result['targets']
    what = (outcome_text(targets[0]) if len(targets) == 1
            else f'{len(targets)} targets (below)')
    print(f"{result['dataset']} graph {result['index']}: "
          f"{result['num_nodes']} node{'s' * (result['num_nodes'] != 1)}, "
          f"{what}; attention entropy per head "
          f"[{entropy}] (uniform {math.log(max(result['num_nodes'], 1)):.2f})")
    if len(targets) > 1:
        for target in targets:
            print(f"  {target['target']}: {outcome_text(target)}")
    for top in result['top']:
        what = f" ({top['symbol']})" if top['symbol'] else ''
        print(f"  head {top['head']}: most weight on node {top['node']}"
              f"{what}, {top['weight']:.3f}")
    print(f"Wrote {result['out']}")
    if result.get('stats_out'):
        print(f"Wrote {result['stats_out']}")
    return 0


__all__: List[str] = ['COMMANDS', 'Command', 'USER_ERRORS', 'build_parser',
                      'main', 'sigterm_as_interrupt']

r"""Command line interface: :obj:`sap-graph train ...` (also
:obj:`python -m sap_graph train ...`) and :obj:`sap-graph explain ...`
(see :mod:`sap_graph.experiments.explain`).

Set :envvar:`SAP_GRAPH_DEBUG=1` for tracebacks instead of one-line
errors. Flags use PyG's snake_case (:obj:`--hidden_channels`); the dashed
spellings (:obj:`--hidden-channels`, :obj:`--no-progress`) are accepted
too.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
from typing import Any, Dict, Iterator, List, NoReturn, Optional, Sequence

from sap_graph.experiments.checkpoint import CheckpointError
from sap_graph.experiments.data import (
    DatasetFormatError,
    DatasetNotFoundError,
    UnknownDatasetError,
)
from sap_graph.experiments.errors import one_line
from sap_graph.experiments.files import (
    LockedError,
    OutputError,
    ResultRescuedError,
)
from sap_graph.experiments.readouts import READOUTS, UnknownReadoutError

#: Errors reported as one line, without a traceback.
USER_ERRORS = (DatasetNotFoundError, DatasetFormatError, UnknownDatasetError,
               UnknownReadoutError, CheckpointError, ImportError, OutputError,
               LockedError)


#: What to do about an error of a field, in flags.
_HINTS = {'state': ' (continue it with --resume)',
          'resume': ' (pass --state PATH)'}


def _error(e: BaseException, status: int = 2) -> int:
    r"""Prints :obj:`e` as one :obj:`error: ...` line; returns
    :obj:`status`. An error that names its option (:obj:`e.field`, *e.g.*
    a :class:`~sap_graph.experiments.errors.ConfigError`) is prefixed with
    the option's flag."""
    text = one_line(e)
    field = getattr(e, 'field', None)
    if field:
        text = f'--{field}: {text}{_HINTS.get(field, "")}'
    print(f'error: {text}', file=sys.stderr)
    return status


class ArgumentParser(argparse.ArgumentParser):
    r"""An :class:`argparse.ArgumentParser` whose usage errors are one
    :obj:`error: ...` line (exit status 2), like every other input
    error of :obj:`sap-graph`."""

    def error(self, message: str) -> 'NoReturn':  # type: ignore[override]
        text = ' '.join(message.split())  # argparse's own, no exception.
        self.exit(2, f'error: {text} (see {self.prog} --help)\n')


def _add(parser: argparse.ArgumentParser, name: str, **kwargs: Any) -> None:
    flags = [f'--{name}']
    if '_' in name:
        flags.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*flags, dest=name, **kwargs)


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f'not valid JSON: {e}') from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError('expected a JSON object')
    return value


def build_parser() -> argparse.ArgumentParser:
    r"""Returns the argument parser of :obj:`sap-graph`."""
    parser = ArgumentParser(
        prog='sap-graph',
        description='Graph classification with self-attention pooling.')
    sub = parser.add_subparsers(dest='command', required=True)

    train = sub.add_parser(
        'train', help='train and evaluate a graph classifier',
        description='Train a GraphClassifier with 10-fold CV (TU, '
        'synthetic) or the official OGB split, and write a JSON result. '
        "Defaults marked 'per dataset' are listed in docs/training.md.")
    _add(train, 'dataset', default='synthetic',
         help="'synthetic' (built in), a TUDataset name (MUTAG, PROTEINS, "
         "NCI1, ENZYMES, DD, IMDB-BINARY, ...) or an ogbg-mol* name "
         "(default: synthetic)")
    _add(train, 'root', default=None,
         help='PyG/OGB data root: DIR/<NAME>/raw for TU, DIR/ogbg_molhiv '
         'for OGB (default: $SAP_GRAPH_DATA/{TUDataset,ogb}, else '
         './data/{TUDataset,ogb})')
    _add(train, 'readout', default='sap',
         help=f"readout: {', '.join(READOUTS)} (default: sap)")
    _add(train, 'heads', type=int, default=4,
         help='attention heads of sap, set_transformer and gmt (default: 4)')
    _add(train, 'concat', action='store_true',
         help='concatenate the heads of sap (or set_transformer) instead '
         "of the readout's default (default: sap averages its heads)")
    _add(train, 'no_concat', action='store_true',
         help='average the heads (default: the readout default)')
    _add(train, 'diversity', type=float, default=0.0,
         help='weight of the sap head-diversity penalty ||AA^T - I||^2 '
         '(Lin et al. 2017) added to the loss (default: 0.0)')
    _add(train, 'entropy', type=float, default=0.0,
         help='weight of the sap attention entropy added to the loss; '
         'positive sharpens, negative spreads (default: 0.0)')
    _add(train, 'readout_kwargs', type=_json_dict, default={},
         help='further readout options as JSON, e.g. \'{"k": 20}\' '
         '(default: {})')
    _add(train, 'conv', default=None, choices=['gin', 'gcn', 'gine'],
         help='message passing layer (default: gin; gine with OGB '
         'bond encoders for ogbg-mol*)')
    _add(train, 'hidden_channels', type=int, default=None,
         help='hidden width (default per dataset: 64 TU, 32 synthetic, '
         '300 OGB)')
    _add(train, 'num_layers', type=int, default=None,
         help='message passing layers (default per dataset: 5 TU and '
         'OGB, 2 synthetic)')
    _add(train, 'jk', default='last', choices=['last', 'cat', 'max'],
         help='jumping knowledge mode (default: last)')
    _add(train, 'dropout', type=float, default=None,
         help='dropout before the last layer (default: 0.5; OGB 0.0)')
    _add(train, 'layer_dropout', type=float, default=None,
         help='dropout after each layer (default: 0.0; OGB 0.5)')
    _add(train, 'batch_size', type=int, default=None,
         help='batch size (default: 32)')
    _add(train, 'lr', type=float, default=None,
         help='Adam learning rate (default: 0.01; OGB 0.001)')
    _add(train, 'lr_step', type=int, default=None,
         help='halve the learning rate every N epochs, 0 = never '
         '(default: 50; OGB 0)')
    _add(train, 'weight_decay', type=float, default=0.0,
         help='Adam weight decay (default: 0.0)')
    _add(train, 'epochs', type=int, default=None,
         help='epochs per fold/seed (default per dataset: 100 TU and '
         'OGB, 40 synthetic)')
    _add(train, 'folds', type=int, default=None,
         help='cross-validation folds (default: 10; synthetic 5)')
    _add(train, 'val_ratio', type=float, default=0.1,
         help='share of each training fold used for model selection '
         '(default: 0.1)')
    _add(train, 'seeds', type=int, nargs='+', default=None,
         help='OGB runs, one per seed (default: 0 1 2)')
    _add(train, 'seed', type=int, default=0,
         help='seed of splits, initialisation and shuffling (default: 0)')
    _add(train, 'node_features', default='auto',
         choices=['auto', 'degree', 'constant'],
         help='features for TU datasets without node features: one-hot '
         'degree if the max degree <= 1000, else constant (default: auto)')
    _add(train, 'use_node_attr', action='store_true',
         help='TU datasets: also use the continuous node attributes '
         '(e.g. the 18 of ENZYMES) next to the node labels '
         '(default: labels only)')
    _add(train, 'no_download', action='store_true',
         help='never try to download a missing dataset (default: try)')
    _add(train, 'device', default='auto',
         help="'cpu', 'cuda', 'cuda:1' or 'auto' = cuda if available "
         "(default: auto)")
    _add(train, 'no_progress', action='store_true',
         help='no progress bars (default: show them)')
    _add(train, 'quiet', action='store_true',
         help='no per-fold log lines (default: print them)')
    _add(train, 'out', default=None,
         help='write the JSON result here (default: none)')
    _add(train, 'checkpoint', default=None,
         help='save the selected model (weights + config) here '
         '(default: none)')
    _add(train, 'state', default=None,
         help='keep the resumable training state here, rewritten '
         'atomically after every epoch (finished folds/seeds, the running '
         'one\'s model, optimizer, scheduler, selection and RNG states); '
         'an existing file is only continued with --resume (default: none)')
    _add(train, 'resume', action='store_true',
         help='continue the interrupted run of --state PATH to the result '
         'an uninterrupted run gives; starts afresh if PATH does not exist '
         'yet (default: off)')
    _add_explain_parser(sub)
    return parser


def _add_explain_parser(sub: Any) -> None:
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
         'per node type and class over the whole dataset here (default: '
         'none)')


def _sap_regularisers(args: argparse.Namespace) -> Dict[str, Any]:
    kwargs = dict(args.readout_kwargs)
    for name in ('diversity', 'entropy'):
        if getattr(args, name):
            if args.readout != 'sap':
                raise ValueError(f"--{name} applies to the 'sap' readout "
                                 f"only (got --readout {args.readout})")
            kwargs[name] = getattr(args, name)
    return kwargs


def _config(args: argparse.Namespace) -> Any:
    from sap_graph.experiments.train import TrainConfig
    return TrainConfig(
        dataset=args.dataset, root=args.root, readout=args.readout,
        heads=args.heads,
        concat=True if args.concat else False if args.no_concat else None,
        readout_kwargs=_sap_regularisers(args), conv=args.conv,
        hidden_channels=args.hidden_channels, num_layers=args.num_layers,
        jk=args.jk, dropout=args.dropout, layer_dropout=args.layer_dropout,
        batch_size=args.batch_size, lr=args.lr, lr_step=args.lr_step,
        weight_decay=args.weight_decay, epochs=args.epochs,
        folds=args.folds, val_ratio=args.val_ratio, seeds=args.seeds,
        seed=args.seed, node_features=args.node_features,
        use_node_attr=args.use_node_attr,
        download=not args.no_download, device=args.device,
        progress=not args.no_progress, verbose=not args.quiet,
        out=args.out, checkpoint=args.checkpoint, state=args.state,
        resume=args.resume)


def _summary(result: dict) -> str:
    cfg = result['config']
    runs = result.get('folds') or result.get('seeds') or []
    what = f"{len(runs)} {'folds' if 'folds' in result else 'seeds'}"
    return (f"{result['dataset']['name']} readout={cfg['readout']}: test "
            f"{result['metric']} {result['test_mean']:.4f} ± "
            f"{result['test_std']:.4f} ({what}), val "
            f"{result['val_mean']:.4f}, median epoch time "
            f"{result['epoch_time_median']:.3f}s")


def main(argv: Optional[Sequence[str]] = None) -> int:
    r"""Entry point of :obj:`sap-graph`; returns the exit status."""
    args = build_parser().parse_args(list(argv) if argv is not None
                                     else None)
    if args.command == 'train':
        from sap_graph.experiments import distributed
        try:
            from sap_graph.experiments.train import run
        except ImportError as e:  # scikit-learn or tqdm missing.
            return _error(ImportError(
                f"training needs the 'train' extra: pip install "
                f"'sap-graph[train]' ({e})"))
        try:
            with _sigterm_as_interrupt():
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
    elif args.command == 'explain':
        return _run_explain(args)
    return 0


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    r"""Turns SIGTERM (a scheduler's preemption) into
    :class:`KeyboardInterrupt` in the main thread, so a killed run exits
    through the same path as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run_explain(args: argparse.Namespace) -> int:
    from sap_graph.experiments.explain import explain_checkpoint
    try:
        result = explain_checkpoint(
            args.checkpoint, args.out, index=args.index,
            dataset=args.dataset, root=args.root, stats_out=args.stats)
    except (*USER_ERRORS, ValueError) as e:
        if os.environ.get('SAP_GRAPH_DEBUG'):
            raise
        return _error(e)
    entropy = ', '.join(f'{h:.2f}' for h in result['entropy'])
    print(f"{result['dataset']} graph {result['index']}: "
          f"{result['num_nodes']} nodes, label {result['label']}, "
          f"predicted {result['prediction']} "
          f"(p = {result['confidence']:.2f}); attention entropy per head "
          f"[{entropy}] (uniform {math.log(max(result['num_nodes'], 1)):.2f})")
    for top in result['top']:
        what = f" ({top['symbol']})" if top['symbol'] else ''
        print(f"  head {top['head']}: most weight on node {top['node']}"
              f"{what}, {top['weight']:.3f}")
    print(f"Wrote {result['out']}")
    if result.get('stats_out'):
        print(f"Wrote {result['stats_out']}")
    return 0


__all__: List[str] = ['build_parser', 'main']

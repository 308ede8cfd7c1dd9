r"""Training and evaluation protocols, and the model of a configuration
(:func:`build_model`, checked first by :func:`check_readout`).

* TU and synthetic datasets: stratified :math:`k`-fold cross-validation,
  with model selection on a stratified validation split carved from each
  training fold (`"A Fair Comparison of Graph Neural Networks for Graph
  Classification" <https://arxiv.org/abs/1912.09893>`_, Errica et al.
  2020): the test fold is only touched once, by the selected model.
* OGB datasets: the official train/valid/test split and
  :class:`ogb.graphproppred.Evaluator`; the test metric is read at the best
  validation epoch, for several seeds.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Data
from tqdm.auto import tqdm

from sap_graph.experiments import distributed
from sap_graph.experiments.data import GraphTask
from sap_graph.experiments.data.kinds import KINDS, kind_of, protocol_of
from sap_graph.experiments.errors import one_line
from sap_graph.experiments.models import GraphClassifier
from sap_graph.experiments.readouts import (
    UnknownReadoutError,
    readout_params,
    readout_size,
)
from sap_graph.experiments.train.config import (
    ConfigError,
    TrainConfig,
    resolve_device,
)
from sap_graph.experiments.train.provenance import (
    device_info,
    versions,
)
from sap_graph.experiments.train.runs import (
    Split,
    plan_splits,
    run_split,
)
from sap_graph.experiments.train.state import (
    TrainState,
)

#: The protocol names written to result files.
PROTOCOL_NAMES = {'kfold': 'stratified_kfold_cv',
                  'official': 'ogb_official_split',
                  'scaffold': 'scaffold_split_per_seed'}

# Protocols ################################################################


def readout_arguments(cfg: TrainConfig) -> Dict[str, Any]:
    r"""The readout's keyword arguments: :obj:`heads` and :obj:`concat`
    where the readout takes them, then :obj:`cfg.readout_kwargs`."""
    params = readout_params(cfg.readout)
    kwargs: Dict[str, Any] = {}
    if 'heads' in params and cfg.heads is not None:
        kwargs['heads'] = cfg.heads
    if cfg.concat is not None:
        if 'concat' not in params:
            raise ConfigError('concat', f"readout '{cfg.readout}' has no "
                              f"heads to concatenate or average")
        kwargs['concat'] = cfg.concat
    kwargs.update(cfg.readout_kwargs)
    return kwargs


def _invalid_options(cfg: TrainConfig, error: Exception) -> ConfigError:
    return ConfigError('readout_kwargs', f"invalid options for readout "
                       f"'{cfg.readout}' {readout_arguments(cfg)}: "
                       f"{one_line(error)}")


#: The most parameters the readout and the linear layer after it may have
#: together (4 GiB as float32): more is a typo, not a model.
MAX_READOUT_PARAMETERS = 2**30


def model_widths(cfg: TrainConfig,
                 kind: Optional[str] = None) -> Tuple[int, int]:
    r"""Returns the hidden width (:obj:`cfg.hidden_channels`, else the
    default of the dataset's kind) and the width of the node embeddings
    the readout pools (the hidden width, times :obj:`cfg.num_layers` with
    :obj:`jk='cat'`).

    Args:
        cfg (TrainConfig): The configuration, resolved or not.
        kind (str, optional): The dataset kind, a key of
            :data:`~sap_graph.experiments.data.kinds.KINDS`. (default:
            read from the name :obj:`cfg.dataset`)
    """
    defaults = KINDS[kind or kind_of(cfg.dataset).name].defaults
    hidden = cfg.hidden_channels or defaults['hidden_channels']
    layers = cfg.num_layers or defaults['num_layers']
    return hidden, layers * hidden if cfg.jk == 'cat' else hidden


def check_readout(cfg: TrainConfig, kind: Optional[str] = None) -> None:
    r"""Builds the readout alone, on the :obj:`meta` device (nothing is
    allocated) and at the width it will pool (:func:`model_widths`),
    before any data is loaded, so that bad readout options fail at once.

    Raises:
        ConfigError: For options the readout rejects (wrong name, type or
            value, whatever building it raises) and for a readout that,
            with the linear layer after it, would have more than
            :obj:`MAX_READOUT_PARAMETERS` parameters.
    """
    hidden, channels = model_widths(cfg, kind)
    try:
        numel, width = readout_size(cfg.readout, channels,
                                    **readout_arguments(cfg))
    except UnknownReadoutError:
        raise
    except Exception as e:  # RuntimeError, AssertionError, MemoryError...
        raise _invalid_options(cfg, e) from None
    numel += width * hidden  # GraphClassifier.lin1
    if numel > MAX_READOUT_PARAMETERS:
        layers = (f" ({hidden} x {channels // hidden} layers, jk='cat')"
                  if channels != hidden else '')
        too_many = (f"at width {channels}{layers}, the readout and the "
                    f"linear layer after it would have {numel:,} parameters "
                    f"(at most {MAX_READOUT_PARAMETERS:,})")
        if _too_wide(cfg, hidden, channels):
            name = ('hidden_channels' if cfg.hidden_channels is not None
                    else 'num_layers')
            raise ConfigError(name, f"too wide for readout "
                              f"'{cfg.readout}': {too_many}")
        raise _invalid_options(cfg, ValueError(too_many))


def _too_wide(cfg: TrainConfig, hidden: int, channels: int) -> bool:
    r"""Whether the readout would be too large at this width with its
    default options, too: the width is at fault, not the options."""
    try:
        numel, width = readout_size(cfg.readout, channels)
    except Exception:  # The defaults need options (e.g. a 'k').
        return False
    return numel + width * hidden > MAX_READOUT_PARAMETERS


def build_model(cfg: TrainConfig, task: GraphTask) -> GraphClassifier:
    r"""Builds the :class:`GraphClassifier` of a resolved config."""
    kwargs = readout_arguments(cfg)
    extra: Dict[str, Any] = {}
    conv = cfg.conv
    if kind_of(task).encoders:
        extra['node_encoder'] = 'atom'
        if conv in ('gin', 'gine'):
            conv, extra['edge_encoder'] = 'gine', 'bond'
    elif conv == 'gine':
        if task.num_edge_features == 0:
            raise ValueError(f"conv='gine' needs edge features, but "
                             f"'{task.name}' has none")
        extra['edge_dim'] = task.num_edge_features
    try:
        return GraphClassifier(
            task.num_features, cfg.hidden_channels, task.num_classes,
            num_layers=cfg.num_layers, conv=conv, readout=cfg.readout,
            readout_kwargs=kwargs, dropout=cfg.dropout,
            layer_dropout=cfg.layer_dropout, jk=cfg.jk, **extra)
    except TypeError as e:  # e.g. a string where a number belongs.
        raise _invalid_options(cfg, e) from None


def _subset(dataset: Any, idx: Tensor) -> List[Data]:
    return [dataset[int(i)] for i in idx]


def _log(cfg: TrainConfig, msg: str) -> None:
    if cfg.verbose and distributed.is_main():
        tqdm.write(msg)


def run_fold(
    task: GraphTask,
    cfg: TrainConfig,
    split: Dict[str, Tensor],
    fold: int,
    device: torch.device,
    model_fn: Optional[Callable[[], Module]] = None,
    state: Optional[TrainState] = None,
) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    r"""Trains and scores one cross-validation fold: a fresh model seeded
    with :obj:`cfg.seed + fold` is trained on :obj:`split['train']`, the
    epoch is selected on :obj:`split['val']`, and only the selected weights
    see :obj:`split['test']`. Returns the fold's record and the selected
    :obj:`state_dict`. With :obj:`state`, every epoch is saved and an
    interrupted fold continues from its last epoch.
    """
    record, state_dict = run_split(
        task, cfg, split, cfg.seed + fold, device, model_fn,
        resume=None if state is None else state.snapshot(fold),
        on_epoch=(None if state is None or not state.path else
                  lambda snap: state.epoch_done(fold, snap)),
        desc=f'Fold {fold + 1:02d}')
    return {'fold': fold, **record}, state_dict


def cross_validate(
    task: GraphTask,
    cfg: TrainConfig,
    splits: Optional[List[Dict[str, Tensor]]] = None,
    model_fn: Optional[Callable[[], Module]] = None,
) -> Dict[str, Any]:
    r"""Stratified :math:`k`-fold cross-validation (Errica et al. 2020):
    per fold, a fresh model is trained on the training split, the epoch is
    selected on the validation split, and only the selected model is
    scored on the test fold.

    With :obj:`cfg.state`, the finished folds and the running fold (after
    every epoch) are kept in that file, and :obj:`cfg.resume` continues an
    interrupted run to the result an uninterrupted run gives (see
    :class:`TrainState`).

    Args:
        task (GraphTask): The dataset.
        cfg (TrainConfig): A resolved configuration.
        splits (list of dict, optional): Precomputed splits. (default:
            :func:`stratified_splits` with :obj:`cfg.folds`, :obj:`cfg.seed`)
        model_fn (callable, optional): Returns a fresh model. (default:
            :func:`build_model`)
    """
    device = resolve_device(cfg.device)
    if splits is None:
        splits = [s.index for s in plan_splits(task, cfg)]
    return _run_protocol(task, cfg, [
        Split(f'fold_{k}', cfg.seed + k, s) for k, s in enumerate(splits)],
        'folds', model_fn, device)


def holdout(
    task: GraphTask,
    cfg: TrainConfig,
    model_fn: Optional[Callable[[], Module]] = None,
    split_idx: Optional[Dict[str, Tensor]] = None,
) -> Dict[str, Any]:
    r"""The seeded protocols: one run per seed in :obj:`cfg.seeds`, on
    the official split (OGB) or on a scaffold split drawn with the seed
    (molecules from a CSV, see
    :func:`~sap_graph.experiments.train.runs.plan_splits`); the test
    metric is read at the best validation epoch.

    Args:
        task (GraphTask): An OGB dataset or molecules.
        cfg (TrainConfig): A resolved configuration.
        model_fn (callable, optional): Returns a fresh model. (default:
            :func:`build_model`)
        split_idx (dict, optional): Overrides the split of every seed
            (keys :obj:`'train'`, :obj:`'valid'` or :obj:`'val'`,
            :obj:`'test'`), *e.g.* with subsets for quick checks.
            (default: :obj:`None`)
    """
    device = resolve_device(cfg.device)
    if split_idx is not None:
        index = {'train': split_idx['train'],
                 'val': split_idx.get('val', split_idx.get('valid')),
                 'test': split_idx['test']}
        splits = [Split(f'seed_{s}', s, {k: v.view(-1) for k, v in
                                         index.items()})
                  for s in cfg.seeds or [cfg.seed]]
    else:
        splits = plan_splits(task, cfg)
    return _run_protocol(task, cfg, splits, 'seeds', model_fn, device)


def _run_protocol(task: GraphTask, cfg: TrainConfig, splits: List[Split],
                  key: str, model_fn: Optional[Callable[[], Module]],
                  device: torch.device) -> Dict[str, Any]:
    r"""Runs every fold (:obj:`key='folds'`) or seed (:obj:`'seeds'`) of
    :obj:`splits` not finished in :obj:`cfg.state` and summarises them."""
    state = TrainState(cfg, task, key, [s.index for s in splits])
    try:
        metric = task.metric
        records: List[Dict[str, Any]] = list(state.runs)
        best_state = state.best
        for i, split in enumerate(tqdm(
                splits, desc=key.capitalize(), dynamic_ncols=True,
                disable=not cfg.progress or not distributed.is_main())):
            if i < len(records):  # Finished before an interruption.
                continue
            name = (f'Fold {i + 1:02d}' if key == 'folds' else
                    f'Seed {split.seed}')
            record, state_dict = run_split(
                task, cfg, split.index, split.seed, device, model_fn,
                resume=state.snapshot(i),
                on_epoch=(None if not state.path else
                          lambda snap, i=i: state.epoch_done(i, snap)),
                desc=name)
            if key == 'folds':
                record = {'fold': i, **record}
            records.append(record)
            best_state = _keep_best(best_state, record, state_dict, task)
            state.run_done(record, best_state)
            _log(cfg, f"{name.replace(' ', ': ', 1)}, Best epoch: "
                      f"{record['best_epoch']:03d}, "
                      f"Val: {record[f'val_{metric}']:.4f}, "
                      f"Test: {record[f'test_{metric}']:.4f}")
        result = _summarise(records, metric, best_state, task, cfg, device,
                            key=key)
        result['resumed'] = state.resumed
        result['_time_before'] = state.elapsed_before  # For total_time.
        return result
    finally:
        state.close()


def _keep_best(best: Optional[Dict[str, Any]], record: Dict[str, Any],
               state_dict: Dict[str, Tensor],
               task: GraphTask) -> Optional[Dict[str, Any]]:
    r"""The better of :obj:`best` and a finished run, by the validation
    metric (ties: lower validation loss): the model a checkpoint keeps."""
    sign = 1.0 if task.higher_is_better else -1.0
    key = (sign * record[f'val_{task.metric}'], -record['val_loss'])
    if best is None or key > best['key']:
        return {'key': key, 'state_dict': state_dict, 'record': record}
    return best


def _summarise(records: List[Dict[str, Any]], metric: str,
               best_state: Optional[Dict[str, Any]], task: GraphTask,
               cfg: TrainConfig, device: torch.device,
               key: str) -> Dict[str, Any]:
    test = np.array([r[f'test_{metric}'] for r in records])
    val = np.array([r[f'val_{metric}'] for r in records])
    times = [r['epoch_time_mean'] for r in records]
    result: Dict[str, Any] = {
        'config': asdict(cfg),
        'protocol': PROTOCOL_NAMES[protocol_of(task, cfg.folds)
                                   if key == 'seeds' else 'kfold'],
        'metric': metric,
        key: records,
        'test_mean': float(test.mean()),
        'test_std': float(test.std()),
        'val_mean': float(val.mean()),
        'val_std': float(val.std()),
        'epoch_time_mean': float(statistics.fmean(times)),
        'epoch_time_median': float(statistics.median(
            [r['epoch_time_median'] for r in records])),
        'dataset': task.stats(),
        'versions': versions({p for r in records
                              for p in r.get('sap_graph_paths', ())}),
        'device': device_info(device),
    }
    if best_state is not None:
        result['_best_state'] = best_state
    return result

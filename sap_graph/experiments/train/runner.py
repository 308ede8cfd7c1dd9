r"""A whole run (:func:`run`): checks, data, protocol, and the output
files (checked before training, rescued after).
"""
from __future__ import annotations

import copy
import io
import os.path as osp
import time
from dataclasses import asdict
from typing import (
    Any,
    Dict,
    Optional,
)

import torch
from torch import Tensor

import sap_graph
from sap_graph.experiments import distributed
from sap_graph.experiments.checkpoint import (
    atomic_save,
)
from sap_graph.experiments.data import (
    GraphTask,
    check_task,
    load_configured,
    with_metric,
)
from sap_graph.experiments.data.kinds import protocol_of
from sap_graph.experiments.files import (
    DistinctFiles,
    ResultRescuedError,
    atomic_write,
    check_writable,
    json_bytes,
    lock_outputs,
    real_path,
    release,
    rescue,
)
from sap_graph.experiments.models import GraphClassifier
from sap_graph.experiments.train.config import (
    ConfigError,
    TrainConfig,
    resolve_config,
    validate_config,
)
from sap_graph.experiments.train.protocols import (
    build_model,
    check_readout,
    cross_validate,
    holdout,
)
from sap_graph.experiments.train.runs import selected_target_scale
from sap_graph.experiments.train.state import check_resume


def save_checkpoint(path: str, model: GraphClassifier,
                    state_dict: Dict[str, Tensor],
                    extra: Dict[str, Any]) -> None:
    r"""Saves :obj:`{'state_dict', 'config'}` (plain Python values only),
    loadable with :obj:`torch.load(path, weights_only=True)` and
    :func:`sap_graph.experiments.models.load_checkpoint`."""
    atomic_save(checkpoint_state(model, state_dict, extra), path,
                'checkpoint')


def checkpoint_state(model: GraphClassifier, state_dict: Dict[str, Tensor],
                     extra: Dict[str, Any]) -> Dict[str, Any]:
    r"""Returns what :func:`save_checkpoint` saves."""
    if model.config is None:
        raise ValueError('Cannot checkpoint a model built from a readout '
                         'instance (its config is not plain data)')
    state = {
        'state_dict': {k: v.cpu() for k, v in state_dict.items()},
        'config': {'model': copy.deepcopy(model.config), **extra},
        'sap_graph_version': sap_graph.__version__,
    }
    return state


def check_outputs(cfg: TrainConfig) -> None:
    r"""Checks that the output files of :obj:`cfg` can be written (before
    any training).

    Raises:
        OutputError: For the first one that cannot.
        ConfigError: When two of them, or one and the dataset's CSV file,
            are the same file (one would silently replace the other).
    """
    what = {'dataset': 'dataset', 'out': 'result file',
            'checkpoint': 'checkpoint', 'state': 'training state'}
    files = DistinctFiles()
    if isinstance(cfg.dataset, str) and osp.isfile(real_path(cfg.dataset)):
        files.claim('dataset', cfg.dataset)
    for name in ('out', 'checkpoint', 'state'):
        path = getattr(cfg, name)
        if path:
            check_writable(path, what[name])
            other = files.claim(name, path)
            if other is not None:
                raise ConfigError(
                    name if other == 'dataset' else other,
                    f"'{path}' is both the {what[other]} and the "
                    f"{what[name]} ('{other}' and '{name}'): each output "
                    f"needs a file of its own")


def _write_outputs(cfg: TrainConfig, task: GraphTask, result: Dict[str, Any],
                   best: Optional[Dict[str, Any]]) -> None:
    failed = []
    if cfg.checkpoint and best is not None:
        state = checkpoint_state(build_model(cfg, task), best['state_dict'], {
            'train': asdict(cfg),
            'dataset': task.stats(),
            'selected': best['record'],
            # The selected run's standardisation of regression targets.
            'target_scale': selected_target_scale(task, cfg, best['record']),
        })
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        try:
            atomic_write(cfg.checkpoint, lambda f: f.write(data))
            result['checkpoint'] = cfg.checkpoint
        except OSError as e:
            failed.append((cfg.checkpoint, e, rescue(data, '.pt')))
    if cfg.out:
        data = json_bytes(result)
        try:
            atomic_write(cfg.out, lambda f: f.write(data))
        except OSError as e:
            failed.append((cfg.out, e, rescue(data, '.json')))
    if failed:
        raise ResultRescuedError('; '.join(
            f"cannot write '{path}' ({e.strerror or e}), saved it to "
            f"'{saved}' instead" for path, e, saved in failed))


def run(cfg: TrainConfig,
        task: Optional[GraphTask] = None) -> Dict[str, Any]:
    r"""Loads and checks the dataset
    (:func:`~sap_graph.experiments.data.check_task`),
    runs its protocol, and writes the JSON result (:obj:`cfg.out`), the
    selected model (:obj:`cfg.checkpoint`) and, after every epoch, the
    resumable state (:obj:`cfg.state`, see :class:`TrainState`). Under
    :obj:`torchrun` it trains data-parallel (see
    :mod:`sap_graph.experiments.distributed`) and only rank 0 writes files.

    Args:
        cfg (TrainConfig): The configuration; :obj:`None` fields get the
            dataset defaults.
        task (GraphTask, optional): An already loaded dataset.
            (default: :obj:`None`)

    Returns:
        The result dict written to :obj:`cfg.out`.
    """
    ctx = distributed.init(cfg.device)  # Under torchrun.
    # The device too, before anything else.
    validate_config(cfg, None if task is None else task.kind)
    check_resume(cfg)
    check_readout(cfg, None if task is None else task.kind)  # Before data.
    locks = []
    if distributed.is_main():
        check_outputs(cfg)
        locks = lock_outputs([(cfg.out, 'result file'),  # One live run
                              (cfg.checkpoint, 'checkpoint')])  # per file.
    try:
        return _run(cfg, task, ctx)
    finally:
        release(*locks)


def _run(cfg: TrainConfig, task: Optional[GraphTask],
         ctx: Optional[distributed.DistContext]) -> Dict[str, Any]:
    task = (load_configured(cfg) if task is None else
            with_metric(task, cfg.metric))
    check_task(task)
    cfg = resolve_config(cfg, task.kind)
    if ctx is not None and cfg.batch_size % ctx.world_size:
        raise ConfigError('batch_size', f"'batch_size' {cfg.batch_size} "
                          f"must be a multiple of the {ctx.world_size} "
                          f"processes (each takes batch_size / processes "
                          f"graphs)")
    build_model(cfg, task)  # Fail early on bad model options.
    start = time.perf_counter()
    if protocol_of(task, cfg.folds) != 'kfold':
        result = holdout(task, cfg)
    else:
        result = cross_validate(task, cfg)
    # With --resume, the protocol's time before it counts too.
    result['total_time'] = (time.perf_counter() - start
                            + result.pop('_time_before', 0.0))
    if ctx is not None:
        result['distributed'] = {'world_size': ctx.world_size,
                                 'backend': ctx.backend,
                                 'per_rank_batch_size':
                                 cfg.batch_size // ctx.world_size}
    best = result.pop('_best_state', None)
    if not distributed.is_main():  # Rank 0 writes the files.
        return result
    _write_outputs(cfg, task, result, best)
    return result

r"""One run of a protocol: the splits of a dataset (:func:`plan_splits`,
one per fold or seed), and :func:`run_split`, which trains a fresh model
on one split, selects its epoch on the validation part and scores the
selected weights once on the test part.

Regression targets are standardised with the mean and standard deviation
of the training part (as chemprop does); losses are in those units, every
metric in the units of the data.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Data

from sap_graph.experiments.data import GraphTask
from sap_graph.experiments.data.kinds import kind_of, protocol_of
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.train.config import TrainConfig, seed_everything
from sap_graph.experiments.train.loop import _eval_loader, evaluate, fit
from sap_graph.ops.dispatch import recording_paths

# Splits ###################################################################


def stratified_splits(
    labels: Tensor,
    folds: int = 10,
    val_ratio: float = 0.1,
    seed: int = 0,
) -> List[Dict[str, Tensor]]:
    r"""Returns the :obj:`folds` splits of stratified :math:`k`-fold
    cross-validation, each a dict of :obj:`'train'`, :obj:`'val'` and
    :obj:`'test'` index tensors. The test folds partition the dataset; the
    validation split is a stratified :obj:`val_ratio` share of the
    training fold, disjoint from its test fold.

    Args:
        labels (torch.Tensor): Graph labels :obj:`[num_graphs]`.
        folds (int, optional): Number of folds. (default: :obj:`10`)
        val_ratio (float, optional): Share of each training fold held out
            for model selection. (default: :obj:`0.1`)
        seed (int, optional): Seed of the shuffles. (default: :obj:`0`)
    """
    y = labels.view(-1).cpu().numpy()
    if folds < 2:
        raise ValueError(f"'folds' must be at least 2 (got {folds})")
    counts = np.bincount(y.astype(np.int64))
    if counts[counts > 0].min() < folds:
        raise ValueError(f"Cannot make {folds} stratified folds: the "
                         f"smallest class has {counts[counts > 0].min()} "
                         f"graphs")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return _with_val(skf.split(np.zeros(len(y)), y), y, val_ratio, seed)


def kfold_splits(num_graphs: int, folds: int = 10, val_ratio: float = 0.1,
                 seed: int = 0) -> List[Dict[str, Tensor]]:
    r"""As :func:`stratified_splits`, without stratification (regression
    and multi-task data)."""
    if folds < 2:
        raise ValueError(f"'folds' must be at least 2 (got {folds})")
    if num_graphs < folds:
        raise ValueError(f"Cannot make {folds} folds of {num_graphs} "
                         f"graphs")
    kf = KFold(n_splits=folds, shuffle=True, random_state=seed)
    return _with_val(kf.split(np.zeros(num_graphs)), None, val_ratio, seed)


def _with_val(folds: Any, y: Optional[np.ndarray], val_ratio: float,
              seed: int) -> List[Dict[str, Tensor]]:
    out = []
    for fold, (train_val, test) in enumerate(folds):
        n = len(train_val)  # sklearn keeps floor((1 - share) * n).
        if math.floor((1 - val_ratio) * n) < 1:
            raise ConfigError('val_ratio', f"a validation share of "
                              f"{val_ratio:g} of a training fold of {n} "
                              f"graphs leaves no training graph")
        try:
            train, val = train_test_split(
                train_val, test_size=val_ratio, random_state=seed + fold,
                stratify=None if y is None else y[train_val])
        except ValueError:  # A class too small to stratify.
            train, val = train_test_split(
                train_val, test_size=val_ratio, random_state=seed + fold)
        out.append({'train': torch.from_numpy(np.sort(train)),
                    'val': torch.from_numpy(np.sort(val)),
                    'test': torch.from_numpy(np.sort(test))})
    return out


@dataclass
class Split:
    r"""One fold or seed of a protocol: its name (:obj:`'fold_3'`,
    :obj:`'seed_0'`), the seed of its model, and its index tensors."""
    unit: str
    seed: int
    index: Dict[str, Tensor]


def strata_of(task: GraphTask, folds: int) -> Optional[Tensor]:
    r"""The labels that :math:`k`-fold over :obj:`task` stratifies by:
    the classes of a multiclass task; the 0/1 labels of a single binary
    task without missing labels when each class has at least
    :obj:`folds` graphs (a fold of one class has no ROC-AUC); else
    :obj:`None`, plain :math:`k`-fold."""
    if task.task_type == 'multiclass':
        return task.labels
    y = task.dataset.y
    if (task.task_type != 'binary classification'
            or y.view(len(task.dataset), -1).size(1) != 1):
        return None
    y = y.view(-1)
    if bool(torch.isnan(y).any()):
        return None
    y = y.long()
    counts = torch.bincount(y, minlength=2)
    return y if int(counts.min()) >= folds else None


def plan_splits(task: GraphTask, cfg: TrainConfig) -> List[Split]:
    r"""The folds or seeds of :obj:`task`'s protocol under a resolved
    :obj:`cfg`: stratified :math:`k`-fold (plain :math:`k`-fold for
    regression and multi-task data) with model seeds
    :obj:`cfg.seed + fold`; the official split once per seed in
    :obj:`cfg.seeds`; or a balanced Bemis-Murcko scaffold split drawn with
    each seed in :obj:`cfg.seeds` (80/10/10)."""
    protocol = protocol_of(task, cfg.folds)
    if protocol == 'kfold':
        strata = strata_of(task, cfg.folds)
        if strata is not None:
            index = stratified_splits(strata, cfg.folds, cfg.val_ratio,
                                      cfg.seed)
        else:
            index = kfold_splits(len(task.dataset), cfg.folds,
                                 cfg.val_ratio, cfg.seed)
        splits = [Split(f'fold_{k}', cfg.seed + k, s)
                  for k, s in enumerate(index)]
    elif protocol == 'official':
        assert task.split_idx is not None
        index = {'train': task.split_idx['train'],
                 'val': task.split_idx['valid'],
                 'test': task.split_idx['test']}
        splits = [Split(f'seed_{s}', s, {k: v.view(-1) for k, v in
                                         index.items()})
                  for s in cfg.seeds or [cfg.seed]]
    else:
        from sap_graph.experiments.data.splits import split_scaffolds
        splits = [Split(f'seed_{s}', s, split_scaffolds(
            task.dataset.scaffolds, seed=s)) for s in cfg.seeds or [cfg.seed]]
    check_splits(task, splits)
    return splits


def check_splits(task: GraphTask, splits: List[Split]) -> None:
    r"""Checks, before any training, that every part of every split has
    graphs and that its validation and test parts can be scored: a
    labelled value of some task (regression), or some task with both
    classes labelled (binary classification: ROC-AUC is undefined
    otherwise; tasks with one class are skipped when scoring, as OGB
    does).

    Raises:
        DatasetFormatError: Naming the fold or seed and the part.
    """
    from sap_graph.experiments.data import DatasetFormatError
    y = None
    if task.task_type in ('binary classification', 'regression'):
        y = task.dataset.y.view(len(task.dataset), -1)
    for split in splits:
        for part in ('train', 'val', 'test'):
            index = split.index[part]
            problem = None
            if index.numel() == 0:
                problem = 'no graphs'
            elif y is not None and part == 'train':
                counts = (~torch.isnan(y[index])).sum(0)
                least = 2 if task.task_type == 'regression' else 1
                if bool((counts < least).any()):  # Nothing to learn from.
                    t = int((counts < least).nonzero()[0])
                    names = getattr(task.dataset, 'targets', None)
                    name = repr(names[t]) if names else f'{t}'
                    problem = (f'{int(counts[t])} labelled value(s) of '
                               f'target {name} (at least {least} needed '
                               f'to learn it)')
            elif y is not None:
                sub = y[index]
                if task.task_type == 'regression':
                    if bool(torch.isnan(sub).all()):
                        problem = 'no labelled target value'
                elif not bool(((sub == 0).any(0) & (sub == 1).any(0)).any()):
                    problem = ('no task with both classes labelled, so '
                               'ROC-AUC is undefined there')
            if problem is not None:
                raise DatasetFormatError(
                    f"Dataset '{task.name}' ({len(task.dataset)} graphs) is "
                    f"too small or too unbalanced for its split: the {part} "
                    f"part of {split.unit} ({index.numel()} graph"
                    f"{'' if index.numel() == 1 else 's'}) has "
                    f"{problem}; use more data, other seeds or --folds")


# Scoring ##################################################################


def evaluator_of(task: GraphTask) -> Optional[Any]:
    r"""The evaluator of :obj:`task`'s metric (:obj:`None` for accuracy):
    OGB's own for OGB datasets, else
    :class:`~sap_graph.experiments.train.metrics.Evaluator`."""
    if task.task_type == 'multiclass':
        return None
    own = kind_of(task).evaluator
    if own is not None:
        return own(task)
    from sap_graph.experiments.train.metrics import Evaluator
    return Evaluator(task.metric)


class _Unscaled:
    r"""Scores predictions of standardised targets in the data's units."""

    def __init__(self, evaluator: Any, mean: Tensor, std: Tensor) -> None:
        self.evaluator, self.mean, self.std = evaluator, mean, std

    def eval(self, inputs: Dict[str, Any]) -> Dict[str, float]:
        # In float64: targets near float32's bound overflow when scaled
        # back in float32.
        mean, std = self.mean.double().numpy(), self.std.double().numpy()
        return self.evaluator.eval({
            key: np.asarray(inputs[key], dtype=np.float64) * std + mean
            for key in ('y_true', 'y_pred')})


def _scaled(data: List[Data], mean: Tensor, std: Tensor) -> List[Data]:
    out = []
    for d in data:
        d = d.clone()
        d.y = ((d.y.view(1, -1).double() - mean.double())
               / std.double()).to(mean.dtype)
        out.append(d)
    return out


def target_scale(y: Tensor) -> Tuple[Tensor, Tensor]:
    r"""The per-task mean and standard deviation (population; :obj:`1`
    where it is :obj:`0`) of the labelled entries of regression targets
    :obj:`y` :obj:`[n, tasks]`: :func:`run_split` trains on
    :obj:`(y - mean) / std` of its training part."""
    mean = torch.nanmean(y.double(), dim=0).float()
    std = torch.from_numpy(np.nanstd(y.double().numpy(), axis=0))
    return mean, torch.where(std > 0, std, torch.ones_like(std)).float()


def selected_target_scale(task: GraphTask, cfg: TrainConfig,
                          record: Dict[str, Any]
                          ) -> Optional[Dict[str, List[float]]]:
    r"""The :obj:`{'mean', 'std'}` (one entry per task) with which the run
    of :obj:`record` (a fold or seed of :func:`plan_splits` under the
    resolved :obj:`cfg`) standardised its regression targets, or
    :obj:`None` when :obj:`task` is not regression or that split cannot
    be found again (another split, or other data: its training part has
    another size than the record's)."""
    if task.task_type != 'regression':
        return None
    unit = (f"fold_{record['fold']}" if 'fold' in record
            else f"seed_{record.get('seed')}")
    split = next((s for s in plan_splits(task, cfg) if s.unit == unit), None)
    train = None if split is None else split.index['train']
    if train is None or len(train) != record.get('train_size'):
        return None
    ds = task.dataset
    mean, std = target_scale(torch.cat([ds[int(i)].y.view(1, -1)
                                        for i in train]))
    return {'mean': mean.tolist(), 'std': std.tolist()}


def chance_loss(y: Tensor, task_type: str) -> float:
    r"""The training loss of the best constant prediction on labels
    :obj:`y` (cross-entropy of the class frequencies; binary
    cross-entropy of the per-task rates over the labelled entries; the
    variance for standardised regression targets). A run whose final
    training loss stays near it never trained (collapsed)."""
    if task_type == 'multiclass':
        p = torch.bincount(y.view(-1).long()).double()
        p = p[p > 0] / p.sum()
        return float(-(p * p.log()).sum())
    y = y.double().view(y.size(0), -1)
    labelled = y == y
    if task_type == 'regression':
        mean = torch.nanmean(y, dim=0)
        sq = torch.where(labelled, (y - mean) ** 2, torch.zeros_like(y))
        return float(sq.sum() / labelled.sum().clamp(min=1))
    n = labelled.sum(0).double()
    p = (torch.where(labelled, y, torch.zeros_like(y)).sum(0) /
         n.clamp(min=1)).clamp(1e-12, 1 - 1e-12)
    h = -(p * p.log() + (1 - p) * (1 - p).log())
    return float((h * n).sum() / n.sum().clamp(min=1))


def run_split(
    task: GraphTask,
    cfg: TrainConfig,
    split: Dict[str, Tensor],
    seed: int,
    device: torch.device,
    model_fn: Optional[Callable[[], Module]] = None,
    resume: Optional[Dict[str, Any]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
    desc: str = 'Epochs',
) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    r"""Trains a fresh model seeded with :obj:`seed` on
    :obj:`split['train']`, selects the epoch on :obj:`split['val']` (the
    task's metric, ties by loss) and scores only the selected weights on
    :obj:`split['test']`. Returns the run's record (sizes, best epoch,
    :obj:`val_<metric>`, :obj:`test_<metric>`, losses, epoch times, final
    and chance training loss, the SAP paths it ran,
    :obj:`sap_graph_paths`) and the selected :obj:`state_dict`.
    :obj:`resume` and :obj:`on_epoch` are passed to :func:`fit`.
    """
    from sap_graph.experiments.train.protocols import build_model
    ds = task.dataset
    parts = {k: [ds[int(i)] for i in v] for k, v in split.items()}
    evaluator = evaluator_of(task)
    y_train = torch.cat([d.y.view(1, -1) for d in parts['train']])
    if task.task_type == 'regression':
        mean, std = target_scale(y_train)
        parts = {k: _scaled(v, mean, std) for k, v in parts.items()}
        evaluator = _Unscaled(evaluator, mean, std)
        y_train = torch.cat([d.y for d in parts['train']])
    seed_everything(seed)
    model = (model_fn or (lambda: build_model(cfg, task)))().to(device)
    metric = task.metric
    with recording_paths() as paths:
        res = fit(model, parts['train'], parts['val'], cfg, device,
                  task.task_type, metric, task.higher_is_better, evaluator,
                  seed=seed, desc=desc, resume=resume, on_epoch=on_epoch)
        model.load_state_dict(res.state_dict)
        test = evaluate(model, _eval_loader(parts['test'], cfg.batch_size),
                        device, task.task_type, evaluator, metric)
    record = {
        'seed': seed,
        'train_size': len(parts['train']), 'val_size': len(parts['val']),
        'test_size': len(parts['test']),
        'best_epoch': res.best_epoch,
        f'val_{metric}': res.val[metric], 'val_loss': res.val['loss'],
        f'test_{metric}': test[metric], 'test_loss': test['loss'],
        'epoch_time_mean': statistics.fmean(res.epoch_times),
        'epoch_time_median': statistics.median(res.epoch_times),
        'final_train_loss': res.history[-1]['train_loss'],
        'chance_loss': chance_loss(y_train, task.task_type),
        'sap_graph_paths': sorted(paths),
    }
    if not math.isfinite(record['chance_loss']):
        record['chance_loss'] = None
    return record, res.state_dict


__all__ = ['Split', 'chance_loss', 'evaluator_of', 'kfold_splits',
           'check_splits', 'plan_splits', 'run_split',
           'selected_target_scale', 'strata_of', 'stratified_splits',
           'target_scale']

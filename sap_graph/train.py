r"""Training and evaluation protocols.

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

import copy
import json
import os
import os.path as osp
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

import sap_graph
from sap_graph.data import GraphTask, load_dataset
from sap_graph.models import GraphClassifier
from sap_graph.readouts import readout_params
from sap_graph.regularizers import aux_loss


@dataclass
class TrainConfig:
    r"""Everything a training run needs. :obj:`None` fields get a default
    that depends on the dataset (see :func:`resolve_config`)."""
    dataset: str = 'synthetic'
    root: Optional[str] = None
    readout: str = 'sap'
    heads: int = 4
    concat: bool = True
    readout_kwargs: Dict[str, Any] = field(default_factory=dict)
    conv: Optional[str] = None
    hidden_channels: Optional[int] = None
    num_layers: Optional[int] = None
    jk: str = 'last'
    dropout: Optional[float] = None
    layer_dropout: Optional[float] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    lr_step: Optional[int] = None
    lr_gamma: float = 0.5
    weight_decay: float = 0.0
    epochs: Optional[int] = None
    folds: Optional[int] = None
    val_ratio: float = 0.1
    seeds: Optional[List[int]] = None
    seed: int = 0
    node_features: str = 'auto'
    download: bool = True
    device: str = 'auto'
    progress: bool = True
    verbose: bool = True
    out: Optional[str] = None
    checkpoint: Optional[str] = None


#: Defaults per dataset kind, applied to the :obj:`None` fields.
DEFAULTS: Dict[str, Dict[str, Any]] = {
    # Xu et al. (2019) GIN: hidden 64, 5 layers, batch 32, Adam 0.01 halved
    # every 50 epochs, dropout 0.5 before the last layer.
    'tu': dict(conv='gin', hidden_channels=64, num_layers=5, dropout=0.5,
               layer_dropout=0.0, batch_size=32, lr=0.01, lr_step=50,
               epochs=100, folds=10),
    'synthetic': dict(conv='gin', hidden_channels=32, num_layers=2,
                      dropout=0.5, layer_dropout=0.0, batch_size=32,
                      lr=0.01, lr_step=50, epochs=40, folds=5),
    # OGB's reference GIN: emb_dim 300, 5 layers, drop_ratio 0.5, batch 32,
    # Adam 0.001 without decay, 100 epochs.
    'ogb': dict(conv='gine', hidden_channels=300, num_layers=5, dropout=0.0,
                layer_dropout=0.5, batch_size=32, lr=0.001, lr_step=0,
                epochs=100, seeds=[0, 1, 2]),
}


def resolve_config(cfg: TrainConfig, kind: str) -> TrainConfig:
    r"""Returns a copy of :obj:`cfg` with dataset defaults filled in."""
    cfg = copy.deepcopy(cfg)
    for key, value in DEFAULTS[kind].items():
        if getattr(cfg, key, None) is None:
            setattr(cfg, key, copy.deepcopy(value))
    if cfg.seeds is None:
        cfg.seeds = [cfg.seed]
    return cfg


def seed_everything(seed: int) -> None:
    r"""Seeds :mod:`random`, :mod:`numpy` and :mod:`torch`."""
    torch_geometric.seed_everything(seed)


def resolve_device(device: str = 'auto') -> torch.device:
    r"""Maps :obj:`'auto'` to CUDA when available, else CPU."""
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    dev = torch.device(device)
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ValueError(f"Device '{device}' requested but CUDA is not "
                         f"available (use --device cpu)")
    return dev


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
    out = []
    for fold, (train_val, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        try:
            train, val = train_test_split(
                train_val, test_size=val_ratio, stratify=y[train_val],
                random_state=seed + fold)
        except ValueError:  # A class too small to stratify.
            train, val = train_test_split(
                train_val, test_size=val_ratio, random_state=seed + fold)
        out.append({
            'train': torch.from_numpy(np.sort(train)),
            'val': torch.from_numpy(np.sort(val)),
            'test': torch.from_numpy(np.sort(test)),
        })
    return out


# One model ################################################################


def _forward(model: Module, batch: Data) -> Tensor:
    return model(batch.x, batch.edge_index, batch.batch,
                 edge_attr=getattr(batch, 'edge_attr', None),
                 ptr=getattr(batch, 'ptr', None),
                 num_graphs=batch.num_graphs)


def compute_loss(out: Tensor, y: Tensor, task_type: str,
                 reduction: str = 'mean') -> Tensor:
    r"""Cross-entropy for :obj:`'multiclass'`, otherwise the OGB losses
    (binary cross-entropy with logits, or MSE for regression) with
    unlabelled (NaN) targets masked out."""
    if task_type == 'multiclass':
        return F.cross_entropy(out, y.view(-1).long(), reduction=reduction)
    y = y.view(out.shape).to(out.dtype)
    mask = y == y  # False for NaN labels.
    if task_type == 'regression':
        return F.mse_loss(out[mask], y[mask], reduction=reduction)
    return F.binary_cross_entropy_with_logits(out[mask], y[mask],
                                              reduction=reduction)


def train_epoch(model: Module, loader: DataLoader,
                optimizer: torch.optim.Optimizer, device: torch.device,
                task_type: str = 'multiclass') -> float:
    r"""Trains one epoch and returns the mean task loss per graph
    (auxiliary losses of the model, see :func:`sap_graph.aux_loss`, are
    optimised too but not included)."""
    model.train()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        optimizer.zero_grad()
        loss = compute_loss(_forward(model, batch), batch.y, task_type)
        extra = aux_loss(model)  # e.g. SAP's head-diversity penalty
        (loss if extra is None else loss + extra).backward()
        optimizer.step()
        total += float(loss.detach()) * batch.num_graphs
        count += batch.num_graphs
    return total / max(count, 1)


@torch.no_grad()
def predict(model: Module, loader: DataLoader,
            device: torch.device) -> Tuple[Tensor, Tensor]:
    r"""Returns :obj:`(y_true, logits)` over a loader, on the CPU."""
    model.eval()
    ys, outs = [], []
    for batch in loader:
        batch = batch.to(device)
        outs.append(_forward(model, batch).cpu())
        ys.append(batch.y.cpu())
    if not outs:
        return torch.empty(0), torch.empty(0)
    return torch.cat(ys), torch.cat(outs)


def evaluate(model: Module, loader: DataLoader, device: torch.device,
             task_type: str = 'multiclass',
             evaluator: Optional[Any] = None,
             metric: str = 'acc') -> Dict[str, float]:
    r"""Returns :obj:`{'loss': ..., metric: ...}` on a loader: accuracy for
    :obj:`'multiclass'`, else the OGB :obj:`evaluator`'s metric."""
    y, out = predict(model, loader, device)
    if out.numel() == 0:
        return {'loss': float('nan'), metric: float('nan')}
    loss = float(compute_loss(out, y, task_type))
    if task_type == 'multiclass':
        acc = float((out.argmax(dim=-1) == y.view(-1)).float().mean())
        return {'loss': loss, 'acc': acc}
    y_true = y.view(out.shape).numpy()
    result = evaluator.eval({'y_true': y_true, 'y_pred': out.numpy()})
    return {'loss': loss, metric: float(result[metric])}


@dataclass
class FitResult:
    r"""Outcome of :func:`fit`: the selected weights and their scores."""
    state_dict: Dict[str, Tensor]
    best_epoch: int
    val: Dict[str, float]
    epoch_times: List[float]
    history: List[Dict[str, float]]


def fit(
    model: Module,
    train_data: Sequence[Data],
    val_data: Sequence[Data],
    cfg: TrainConfig,
    device: torch.device,
    task_type: str = 'multiclass',
    metric: str = 'acc',
    higher_is_better: bool = True,
    evaluator: Optional[Any] = None,
    seed: int = 0,
    desc: str = 'Epochs',
) -> FitResult:
    r"""Trains :obj:`model` and selects the epoch with the best validation
    :obj:`metric` (ties: lower validation loss). Never sees test data.

    Args:
        model (torch.nn.Module): The model, on :obj:`device`.
        train_data (sequence of Data): Training graphs.
        val_data (sequence of Data): Validation graphs.
        cfg (TrainConfig): Resolved configuration (epochs, lr, ...).
        device (torch.device): Device.
        task_type (str, optional): :obj:`'multiclass'` or an OGB task type.
        metric (str, optional): Selection metric. (default: :obj:`'acc'`)
        higher_is_better (bool, optional): Metric direction.
        evaluator (ogb.graphproppred.Evaluator, optional): For OGB metrics.
        seed (int, optional): Seeds the shuffling. (default: :obj:`0`)
        desc (str, optional): Progress bar label.
    """
    generator = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(list(train_data), batch_size=cfg.batch_size,
                              shuffle=True, generator=generator)
    val_loader = DataLoader(list(val_data), batch_size=max(cfg.batch_size,
                                                            128))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr,
                                 weight_decay=cfg.weight_decay)
    scheduler = None
    if cfg.lr_step:
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=cfg.lr_step, gamma=cfg.lr_gamma)

    sign = 1.0 if higher_is_better else -1.0
    best_key: Optional[Tuple[float, float]] = None
    best: Optional[FitResult] = None
    times: List[float] = []
    history: List[Dict[str, float]] = []
    bar = tqdm(range(1, cfg.epochs + 1), desc=desc, leave=False,
               disable=not cfg.progress, dynamic_ncols=True)
    for epoch in bar:
        start = time.perf_counter()
        loss = train_epoch(model, train_loader, optimizer, device, task_type)
        val = evaluate(model, val_loader, device, task_type, evaluator,
                       metric)
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
        if scheduler is not None:
            scheduler.step()
        history.append({'epoch': epoch, 'train_loss': loss,
                        'val_loss': val['loss'], f'val_{metric}': val[metric]})
        key = (sign * val[metric], -val['loss'])
        if best_key is None or key > best_key:
            best_key = key
            best = FitResult(
                state_dict={k: v.detach().clone()
                            for k, v in model.state_dict().items()},
                best_epoch=epoch, val=dict(val), epoch_times=times,
                history=history)
        bar.set_postfix(loss=f'{loss:.4f}', val=f'{val[metric]:.4f}',
                        best=f'{best.val[metric]:.4f}')
    bar.close()
    assert best is not None, "'epochs' must be positive"
    best.epoch_times, best.history = times, history
    return best


# Protocols ################################################################


def build_model(cfg: TrainConfig, task: GraphTask) -> GraphClassifier:
    r"""Builds the :class:`GraphClassifier` of a resolved config."""
    kwargs = {}
    params = readout_params(cfg.readout)
    if 'heads' in params:
        kwargs['heads'] = cfg.heads
    if 'concat' in params:
        kwargs['concat'] = cfg.concat
    kwargs.update(cfg.readout_kwargs)
    extra: Dict[str, Any] = {}
    conv = cfg.conv
    if task.kind == 'ogb':
        extra['node_encoder'] = 'atom'
        if conv in ('gin', 'gine'):
            conv, extra['edge_encoder'] = 'gine', 'bond'
    elif conv == 'gine':
        if task.num_edge_features == 0:
            raise ValueError(f"conv='gine' needs edge features, but "
                             f"'{task.name}' has none")
        extra['edge_dim'] = task.num_edge_features
    return GraphClassifier(
        task.num_features, cfg.hidden_channels, task.num_classes,
        num_layers=cfg.num_layers, conv=conv, readout=cfg.readout,
        readout_kwargs=kwargs, dropout=cfg.dropout,
        layer_dropout=cfg.layer_dropout, jk=cfg.jk, **extra)


def _subset(dataset: Any, idx: Tensor) -> List[Data]:
    return [dataset[int(i)] for i in idx]


def _log(cfg: TrainConfig, msg: str) -> None:
    if cfg.verbose:
        tqdm.write(msg)


def run_fold(
    task: GraphTask,
    cfg: TrainConfig,
    split: Dict[str, Tensor],
    fold: int,
    device: torch.device,
    model_fn: Optional[Callable[[], Module]] = None,
) -> Tuple[Dict[str, Any], Dict[str, Tensor]]:
    r"""Trains and scores one cross-validation fold: a fresh model seeded
    with :obj:`cfg.seed + fold` is trained on :obj:`split['train']`, the
    epoch is selected on :obj:`split['val']`, and only the selected weights
    see :obj:`split['test']`. Returns the fold's record and the selected
    :obj:`state_dict`.
    """
    seed = cfg.seed + fold
    seed_everything(seed)
    model = (model_fn or (lambda: build_model(cfg, task)))().to(device)
    res = fit(model, _subset(task.dataset, split['train']),
              _subset(task.dataset, split['val']), cfg, device,
              seed=seed, desc=f'Fold {fold + 1:02d}')
    model.load_state_dict(res.state_dict)
    test_loader = DataLoader(_subset(task.dataset, split['test']),
                             batch_size=max(cfg.batch_size, 128))
    test = evaluate(model, test_loader, device)
    record = {
        'fold': fold, 'seed': seed,
        'train_size': int(split['train'].numel()),
        'val_size': int(split['val'].numel()),
        'test_size': int(split['test'].numel()),
        'best_epoch': res.best_epoch,
        'val_acc': res.val['acc'], 'val_loss': res.val['loss'],
        'test_acc': test['acc'], 'test_loss': test['loss'],
        'epoch_time_mean': statistics.fmean(res.epoch_times),
        'epoch_time_median': statistics.median(res.epoch_times),
        'final_train_loss': res.history[-1]['train_loss'],
    }
    return record, res.state_dict


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
        splits = stratified_splits(task.labels, cfg.folds, cfg.val_ratio,
                                   cfg.seed)
    records: List[Dict[str, Any]] = []
    best_state: Optional[Dict[str, Any]] = None
    bar = tqdm(splits, desc='Folds', disable=not cfg.progress,
               dynamic_ncols=True)
    for fold, split in enumerate(bar):
        record, state_dict = run_fold(task, cfg, split, fold, device,
                                      model_fn)
        records.append(record)
        key = (record['val_acc'], -record['val_loss'])
        if best_state is None or key > best_state['key']:
            best_state = {'key': key, 'state_dict': state_dict,
                          'record': record}
        _log(cfg, f"Fold: {fold + 1:02d}, "
                  f"Best epoch: {record['best_epoch']:03d}, "
                  f"Val: {record['val_acc']:.4f}, "
                  f"Test: {record['test_acc']:.4f}")
    return _summarise(records, 'acc', best_state, task, cfg, device,
                      key='folds')


def holdout(
    task: GraphTask,
    cfg: TrainConfig,
    model_fn: Optional[Callable[[], Module]] = None,
    split_idx: Optional[Dict[str, Tensor]] = None,
) -> Dict[str, Any]:
    r"""The OGB protocol: official split, test metric at the best
    validation epoch, one run per seed in :obj:`cfg.seeds`.

    Args:
        task (GraphTask): An OGB dataset.
        cfg (TrainConfig): A resolved configuration.
        model_fn (callable, optional): Returns a fresh model. (default:
            :func:`build_model`)
        split_idx (dict, optional): Overrides the official split, *e.g.*
            with subsets for quick checks. (default: :obj:`None`)
    """
    from sap_graph.data import _require_ogb
    evaluator = _require_ogb().Evaluator(task.name)
    device = resolve_device(cfg.device)
    split = split_idx or task.split_idx
    assert split is not None
    train = _subset(task.dataset, split['train'])
    val = _subset(task.dataset, split['valid'])
    test_loader = DataLoader(_subset(task.dataset, split['test']),
                             batch_size=max(cfg.batch_size, 128))
    metric = task.metric
    sign = 1.0 if task.higher_is_better else -1.0
    records: List[Dict[str, Any]] = []
    best_state: Optional[Dict[str, Any]] = None
    for seed in tqdm(cfg.seeds, desc='Seeds', disable=not cfg.progress,
                     dynamic_ncols=True):
        seed_everything(seed)
        model = (model_fn or (lambda: build_model(cfg, task)))().to(device)
        res = fit(model, train, val, cfg, device, task.task_type, metric,
                  task.higher_is_better, evaluator, seed=seed,
                  desc=f'Seed {seed}')
        model.load_state_dict(res.state_dict)
        test = evaluate(model, test_loader, device, task.task_type,
                        evaluator, metric)
        records.append({
            'seed': seed, 'train_size': len(train), 'val_size': len(val),
            'test_size': len(test_loader.dataset),
            'best_epoch': res.best_epoch,
            f'val_{metric}': res.val[metric], 'val_loss': res.val['loss'],
            f'test_{metric}': test[metric], 'test_loss': test['loss'],
            'epoch_time_mean': statistics.fmean(res.epoch_times),
            'epoch_time_median': statistics.median(res.epoch_times),
            'final_train_loss': res.history[-1]['train_loss'],
        })
        key = (sign * res.val[metric], -res.val['loss'])
        if best_state is None or key > best_state['key']:
            best_state = {'key': key, 'state_dict': res.state_dict,
                          'record': records[-1]}
        _log(cfg, f"Seed: {seed}, Best epoch: {res.best_epoch:03d}, "
                  f"Val: {res.val[metric]:.4f}, Test: {test[metric]:.4f}")
    return _summarise(records, metric, best_state, task, cfg, device,
                      key='seeds')


def _summarise(records: List[Dict[str, Any]], metric: str,
               best_state: Optional[Dict[str, Any]], task: GraphTask,
               cfg: TrainConfig, device: torch.device,
               key: str) -> Dict[str, Any]:
    test = np.array([r[f'test_{metric}'] for r in records])
    val = np.array([r[f'val_{metric}'] for r in records])
    times = [r['epoch_time_mean'] for r in records]
    result: Dict[str, Any] = {
        'config': asdict(cfg),
        'protocol': ('stratified_kfold_cv' if key == 'folds' else
                     'ogb_official_split'),
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
        'versions': versions(),
        'device': device_info(device),
    }
    if best_state is not None:
        result['_best_state'] = best_state
    return result


def versions() -> Dict[str, Optional[str]]:
    r"""Returns the versions of Python and the main packages."""
    out: Dict[str, Optional[str]] = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torch_geometric': torch_geometric.__version__,
        'sap_graph': sap_graph.__version__,
        'numpy': np.__version__,
    }
    try:
        import ogb
        out['ogb'] = ogb.__version__
    except ImportError:
        out['ogb'] = None
    return out


def device_info(device: torch.device) -> Dict[str, Any]:
    r"""Describes the device a run used."""
    info: Dict[str, Any] = {'type': device.type, 'name': str(device),
                            'torch_threads': torch.get_num_threads(),
                            'platform': platform.platform()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    else:
        info['cpu'] = platform.processor() or platform.machine()
    return info


def write_json(path: str, obj: Any) -> None:
    r"""Writes :obj:`obj` as JSON atomically (temporary file, then
    :func:`os.replace`)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.json', dir=folder)
    try:
        with os.fdopen(fd, 'w') as f:
            json.dump(obj, f, indent=2)
            f.write('\n')
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def save_checkpoint(path: str, model: GraphClassifier,
                    state_dict: Dict[str, Tensor],
                    extra: Dict[str, Any]) -> None:
    r"""Saves :obj:`{'state_dict', 'config'}` (plain Python values only),
    loadable with :obj:`torch.load(path, weights_only=True)` and
    :func:`sap_graph.models.load_checkpoint`."""
    if model.config is None:
        raise ValueError('Cannot checkpoint a model built from a readout '
                         'instance (its config is not plain data)')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    state = {
        'state_dict': {k: v.cpu() for k, v in state_dict.items()},
        'config': {'model': copy.deepcopy(model.config), **extra},
        'sap_graph_version': sap_graph.__version__,
    }
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pt', dir=folder)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def run(cfg: TrainConfig,
        task: Optional[GraphTask] = None) -> Dict[str, Any]:
    r"""Loads the dataset, runs its protocol, and writes the JSON result
    (:obj:`cfg.out`) and the selected model (:obj:`cfg.checkpoint`).

    Args:
        cfg (TrainConfig): The configuration; :obj:`None` fields get the
            dataset defaults.
        task (GraphTask, optional): An already loaded dataset.
            (default: :obj:`None`)

    Returns:
        The result dict written to :obj:`cfg.out`.
    """
    resolve_device(cfg.device)  # Fail early on a bad device.
    if task is None:
        task = load_dataset(cfg.dataset, root=cfg.root,
                            node_features=cfg.node_features,
                            download=cfg.download, seed=cfg.seed)
    cfg = resolve_config(cfg, 'ogb' if task.kind == 'ogb' else task.kind)
    build_model(cfg, task)  # Fail early on bad model options.
    start = time.perf_counter()
    if task.kind == 'ogb':
        result = holdout(task, cfg)
    else:
        result = cross_validate(task, cfg)
    result['total_time'] = time.perf_counter() - start
    best = result.pop('_best_state', None)
    if cfg.checkpoint and best is not None:
        model = build_model(cfg, task)
        save_checkpoint(cfg.checkpoint, model, best['state_dict'], {
            'train': asdict(cfg),
            'dataset': task.stats(),
            'selected': best['record'],
        })
        result['checkpoint'] = cfg.checkpoint
    if cfg.out:
        write_json(cfg.out, result)
    return result

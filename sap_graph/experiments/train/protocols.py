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
import hashlib
import io
import os
import os.path as osp
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np
import torch
import torch.nn.functional as F
import torch_geometric
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

import sap_graph
from sap_graph.experiments import distributed
from sap_graph.experiments.checkpoint import (
    CheckpointError,
    atomic_save,
    get_rng_state,
    safe_load,
    set_rng_state,
)
from sap_graph.experiments.data import GraphTask, check_task, load_dataset
from sap_graph.experiments.files import (
    ResultRescuedError,
    atomic_write,
    check_writable,
    json_bytes,
    release,
    rescue,
    try_lock,
)
from sap_graph.experiments.models import GraphClassifier
from sap_graph.experiments.readouts import readout_params
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
    use_node_attr: bool = False
    download: bool = True
    device: str = 'auto'
    progress: bool = True
    verbose: bool = True
    out: Optional[str] = None
    checkpoint: Optional[str] = None
    state: Optional[str] = None
    resume: bool = False


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


class ConfigError(ValueError):
    r"""Raised for an invalid :class:`TrainConfig` value; :obj:`field`
    names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


#: Lower bounds of the numeric fields: (bound, inclusive).
_BOUNDS: Dict[str, Tuple[float, bool]] = {
    'heads': (1, True), 'hidden_channels': (1, True),
    'num_layers': (1, True), 'batch_size': (1, True), 'lr': (0, False),
    'lr_step': (0, True), 'weight_decay': (0, True), 'epochs': (1, True),
    'folds': (2, True), 'val_ratio': (0, False), 'dropout': (0, True),
    'layer_dropout': (0, True)}


def validate_config(cfg: TrainConfig) -> None:
    r"""Checks the set fields of :obj:`cfg` (before any data is loaded).

    Raises:
        ConfigError: For the first invalid field.
    """
    for name, (low, inclusive) in _BOUNDS.items():
        value = getattr(cfg, name)
        if value is None:
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(name, f"'{name}' must be a number (got "
                              f"{value!r})")
        if value < low or (value == low and not inclusive):
            op = '>=' if inclusive else '>'
            raise ConfigError(name, f"'{name}' must be {op} {low} (got "
                              f"{value})")
    for name in ('val_ratio', 'dropout', 'layer_dropout'):
        value = getattr(cfg, name)
        if value is not None and value >= 1:
            raise ConfigError(name, f"'{name}' must be < 1 (got {value})")
    if cfg.seeds is not None and not cfg.seeds:
        raise ConfigError('seeds', "'seeds' must not be empty")


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
    r"""Maps :obj:`'auto'` to CUDA when available, else CPU (under
    :obj:`torchrun`, the device of this rank)."""
    ctx = distributed.context()
    if ctx is not None:
        return ctx.device
    if device == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError('device', f"unknown device '{device}' (expected "
                          f"'cpu', 'cuda', 'cuda:N' or 'auto')") from None
    if dev.type not in ('cpu', 'cuda'):
        raise ConfigError('device', f"unsupported device '{device}' "
                          f"(expected 'cpu', 'cuda', 'cuda:N' or 'auto')")
    if dev.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('device', f"device '{device}' requested but CUDA "
                          f"is not available (use 'cpu')")
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


def _loss_sum(out: Tensor, y: Tensor, task_type: str) -> Tuple[Tensor, int]:
    if task_type == 'multiclass':
        return compute_loss(out, y, task_type, 'sum'), out.size(0)
    labelled = int((y.view(out.shape) == y.view(out.shape)).sum())
    return compute_loss(out, y, task_type, 'sum'), labelled


def train_epoch(model: Module, loader: Any,
                optimizer: torch.optim.Optimizer, device: torch.device,
                task_type: str = 'multiclass') -> float:
    r"""Trains one epoch and returns the mean task loss per graph
    (auxiliary losses of the model, see :func:`sap_graph.aux_loss`, are
    optimised too but not included).

    Under :obj:`torchrun` (see :mod:`sap_graph.experiments.distributed`), the
    loader
    yields this rank's share of each global batch, and the loss is scaled
    so that DDP's averaged gradient is the gradient of the global batch's
    mean loss; the returned loss is that of the global batches.
    """
    model.train()
    ctx = distributed.context()
    total, count = 0.0, 0
    for batch in loader:
        batch = batch.to(device)
        optimizer.zero_grad()
        out = _forward(model, batch)
        if ctx is None:
            loss = compute_loss(out, batch.y, task_type)
            num_graphs, report = batch.num_graphs, float(loss.detach())
        else:
            local, terms = _loss_sum(out, batch.y, task_type)
            loss_sum, terms, num_graphs = distributed.all_sum(
                float(local.detach()), terms, batch.num_graphs)
            loss = local * (ctx.world_size / max(terms, 1.0))
            report = loss_sum / max(terms, 1.0)
        extra = aux_loss(model)  # e.g. SAP's head-diversity penalty
        (loss if extra is None else loss + extra).backward()
        optimizer.step()
        total += report * num_graphs
        count += int(num_graphs)
    return total / max(count, 1)


class ShardedLoader:
    r"""Yields this rank's share :obj:`batch[rank::world_size]` of the
    global batches that a single-process :class:`DataLoader` with the same
    :obj:`batch_size`, shuffle and :obj:`generator` draws.

    Args:
        data (list of Data): The graphs.
        batch_size (int): The global batch size.
        generator (torch.Generator): The shuffle generator (same seed on
            every rank).
    """

    def __init__(self, data: List[Data], batch_size: int,
                 generator: torch.Generator) -> None:
        from torch.utils.data import DataLoader as IndexLoader
        self.data = data
        self.indices = IndexLoader(range(len(data)), batch_size=batch_size,
                                   shuffle=True, generator=generator)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[Batch]:
        mine = distributed.shard
        for idx in self.indices:
            part = [self.data[int(i)] for i in mine(idx.tolist())]
            yield (Batch.from_data_list(part) if part else
                   distributed.empty_batch(self.data[0]))


def _eval_loader(data: Sequence[Data], batch_size: int) -> DataLoader:
    # Under torchrun each rank predicts a strided share (gathered again in
    # `predict`).
    return DataLoader(distributed.shard(list(data)),
                      batch_size=max(batch_size, 128))


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
    y, out = ((torch.cat(ys), torch.cat(outs)) if outs else
              (torch.empty(0), torch.empty(0)))
    # Under torchrun: all shares of `_eval_loader`, in the original order.
    return distributed.gather_shards(y), distributed.gather_shards(out)


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


def _clone_state(module: Any) -> Dict[str, Any]:
    return copy.deepcopy(module.state_dict())


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
    resume: Optional[Dict[str, Any]] = None,
    on_epoch: Optional[Callable[[Dict[str, Any]], None]] = None,
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
        resume (dict, optional): A snapshot passed to :obj:`on_epoch` by an
            earlier, interrupted call with the same arguments; training
            continues after its epoch exactly as if it had not stopped.
            (default: :obj:`None`)
        on_epoch (callable, optional): Called after every epoch with a
            snapshot (epoch, model, optimizer and scheduler states, the
            best epoch so far and its weights, histories and random number
            generator states; tensors and plain containers only).
            (default: :obj:`None`)
    """
    generator = torch.Generator().manual_seed(seed)
    ctx = distributed.context()
    net: Module = model
    train_loader: Any
    if ctx is None:
        train_loader = DataLoader(list(train_data),
                                  batch_size=cfg.batch_size, shuffle=True,
                                  generator=generator)
    else:
        train_loader = ShardedLoader(list(train_data), cfg.batch_size,
                                     generator)
        distributed.convert_batchnorm(model, device)
    val_loader = _eval_loader(val_data, cfg.batch_size)
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
    first = 1
    if resume is not None:
        model.load_state_dict(resume['model'])
        optimizer.load_state_dict(resume['optimizer'])
        if scheduler is not None:
            scheduler.load_state_dict(resume['scheduler'])
        times, history = list(resume['times']), list(resume['history'])
        best_key = tuple(resume['best']['key'])  # type: ignore[assignment]
        best = FitResult(
            state_dict=resume['best']['state_dict'],
            best_epoch=resume['best']['epoch'],
            val=dict(resume['best']['val']), epoch_times=times,
            history=history)
        set_rng_state(resume['rng'], {'shuffle': generator})
        first = resume['epoch'] + 1
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(
            model, device_ids=[device] if device.type == 'cuda' else None)
    if device.type == 'cpu' and cfg.readout == 'sap':
        # Build (or load) the fused CPU kernels now, so that compiling
        # them is never counted as epoch time.
        from sap_graph import _native
        _native.native()
    bar = tqdm(range(first, cfg.epochs + 1), desc=desc, leave=False,
               disable=not cfg.progress or not distributed.is_main(),
               dynamic_ncols=True, initial=first - 1, total=cfg.epochs)
    for epoch in bar:
        start = time.perf_counter()
        loss = train_epoch(net, train_loader, optimizer, device, task_type)
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
        assert best is not None
        bar.set_postfix(loss=f'{loss:.4f}', val=f'{val[metric]:.4f}',
                        best=f'{best.val[metric]:.4f}')
        if on_epoch is not None:
            on_epoch({
                'epoch': epoch,
                'model': _clone_state(model),
                'optimizer': _clone_state(optimizer),
                'scheduler': (None if scheduler is None else
                              _clone_state(scheduler)),
                'best': {'key': list(best_key), 'epoch': best.best_epoch,
                         'val': dict(best.val),
                         'state_dict': best.state_dict},
                'times': list(times),
                'history': copy.deepcopy(history),
                'rng': get_rng_state({'shuffle': generator}),
            })
    bar.close()
    if best is None:
        raise ConfigError('epochs', f"'epochs' must be >= 1 (got "
                          f"{cfg.epochs})")
    best.epoch_times, best.history = times, history
    return best


# Resumable state ##########################################################

#: Config fields that may change between a run and its resumption.
RESUME_FREE_FIELDS = frozenset({
    'root', 'download', 'device', 'progress', 'verbose', 'out',
    'checkpoint', 'state', 'resume'})


class TrainState:
    r"""The resumable state of a cross-validation or multi-seed run, kept
    in :obj:`cfg.state` and rewritten atomically after every epoch: the
    records (and the best selected weights) of the finished folds/seeds,
    and a :func:`fit` snapshot of the interrupted one. Tensors and plain
    containers only, loaded with :obj:`weights_only=True`.

    Args:
        cfg (TrainConfig): The resolved configuration; :obj:`cfg.state`
            is the file (:obj:`None` keeps nothing), :obj:`cfg.resume`
            continues it.
        task (GraphTask): The dataset.
        protocol (str): :obj:`'folds'` or :obj:`'seeds'`.
        splits (list of dict, optional): The splits, stored to check that
            a resumed run uses the same. (default: :obj:`None`)
    """

    FORMAT = 'sap_graph.train_state'
    VERSION = 1

    def __init__(self, cfg: TrainConfig, task: GraphTask, protocol: str,
                 splits: Optional[List[Dict[str, Tensor]]] = None) -> None:
        self.path = cfg.state
        self.verbose = cfg.verbose
        self.resumed = False
        self._lock: Optional[int] = None
        self.data: Dict[str, Any] = {
            'format': self.FORMAT, 'version': self.VERSION,
            'sap_graph_version': sap_graph.__version__,
            'config': asdict(cfg), 'protocol': protocol,
            'dataset': _fingerprint(task),
            'splits': [{k: v.clone() for k, v in s.items()}
                       for s in splits or []],
            'runs': [], 'best': None, 'current': None,
        }
        if cfg.resume and not self.path:
            raise ValueError('--resume needs --state PATH (the training '
                             'state file of the interrupted run)')
        if not self.path:
            return
        if distributed.is_main():  # One live writer per state file.
            self._lock = try_lock(self.path + '.lock',
                                  f"training state '{self.path}'")
        if not osp.exists(self.path):
            return
        if not cfg.resume:
            self.close()
            raise ValueError(f"training state '{self.path}' exists; pass "
                             f"--resume to continue it, or delete it to "
                             f"start over")
        try:
            saved = safe_load(self.path, 'training state')
            self._check(saved)
        except BaseException:
            self.close()
            raise
        self.data = saved
        self.data['config'] = asdict(cfg)
        self.resumed = True

    def _check(self, saved: Any) -> None:
        if (not isinstance(saved, dict)
                or saved.get('format') != self.FORMAT):
            raise CheckpointError(f"'{self.path}' is not a sap-graph "
                                  f"training state file")
        if saved.get('version') != self.VERSION:
            raise CheckpointError(
                f"'{self.path}' has state format version "
                f"{saved.get('version')} (expected {self.VERSION})")
        if saved.get('protocol') != self.data['protocol']:
            raise ValueError(f"'{self.path}' holds a '{saved['protocol']}' "
                             f"run (expected '{self.data['protocol']}')")
        mine, theirs = self.data['config'], saved.get('config', {})
        diff = [f'{k}={theirs.get(k)!r} (now {v!r})'
                for k, v in mine.items()
                if k not in RESUME_FREE_FIELDS and theirs.get(k) != v]
        if diff:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"with {', '.join(diff)}")
        if saved.get('dataset') != self.data['dataset']:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"for another dataset ({saved.get('dataset')})")
        splits = saved.get('splits', [])
        same = len(splits) == len(self.data['splits']) and all(
            a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            for a, b in zip(splits, self.data['splits'], strict=True))
        if not same:
            raise ValueError(f"cannot resume '{self.path}': it was written "
                             f"with other splits")

    @property
    def runs(self) -> List[Dict[str, Any]]:
        r"""Records of the finished folds or seeds."""
        return self.data['runs']

    @property
    def best(self) -> Optional[Dict[str, Any]]:
        r"""The best selected model so far (:obj:`'key'`,
        :obj:`'state_dict'`, :obj:`'record'`)."""
        best = self.data['best']
        if best is not None:
            best = dict(best, key=tuple(best['key']))
        return best

    def snapshot(self, run: int) -> Optional[Dict[str, Any]]:
        r"""The :func:`fit` snapshot of run :obj:`run`, if interrupted."""
        current = self.data['current']
        if current is not None and current['run'] == run:
            if self.verbose and distributed.is_main():
                tqdm.write(f'Resuming run {run + 1} after epoch '
                           f"{current['fit']['epoch']:03d}")
            return current['fit']
        return None

    def epoch_done(self, run: int, snapshot: Dict[str, Any]) -> None:
        r"""Stores the snapshot of run :obj:`run` after an epoch."""
        self.data['current'] = {'run': run, 'fit': snapshot}
        self.save()

    def run_done(self, record: Dict[str, Any],
                 best: Optional[Dict[str, Any]]) -> None:
        r"""Stores a finished run and the best selected model so far."""
        self.data['runs'].append(record)
        if best is not None:
            best = dict(best, key=list(best['key']))
        self.data['best'] = best
        self.data['current'] = None
        self.save()

    def save(self) -> None:
        r"""Writes the state atomically (nothing without a path, and only
        on rank 0 under :obj:`torchrun`)."""
        if self.path and distributed.is_main():
            atomic_save(self.data, self.path)

    def close(self) -> None:
        r"""Releases the lock on the state file."""
        release(self._lock)
        self._lock = None


def _fingerprint(task: GraphTask) -> Dict[str, Any]:
    stats = task.stats()
    return {k: stats.get(k) for k in ('name', 'num_graphs', 'num_classes',
                                      'num_features', 'num_nodes',
                                      'num_directed_edges', 'class_counts')}


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
    try:
        return GraphClassifier(
            task.num_features, cfg.hidden_channels, task.num_classes,
            num_layers=cfg.num_layers, conv=conv, readout=cfg.readout,
            readout_kwargs=kwargs, dropout=cfg.dropout,
            layer_dropout=cfg.layer_dropout, jk=cfg.jk, **extra)
    except TypeError as e:  # e.g. a string where a number belongs.
        text = ' '.join(str(e).split())
        raise ConfigError('readout_kwargs', f"invalid readout options "
                          f"{cfg.readout_kwargs}: {text}") from None


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
    seed = cfg.seed + fold
    seed_everything(seed)
    model = (model_fn or (lambda: build_model(cfg, task)))().to(device)
    res = fit(model, _subset(task.dataset, split['train']),
              _subset(task.dataset, split['val']), cfg, device,
              seed=seed, desc=f'Fold {fold + 1:02d}',
              resume=None if state is None else state.snapshot(fold),
              on_epoch=(None if state is None or not state.path else
                        lambda snap: state.epoch_done(fold, snap)))
    model.load_state_dict(res.state_dict)
    test_loader = _eval_loader(_subset(task.dataset, split['test']),
                               cfg.batch_size)
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
        splits = stratified_splits(task.labels, cfg.folds, cfg.val_ratio,
                                   cfg.seed)
    state = TrainState(cfg, task, 'folds', splits)
    try:
        return _cross_validate(task, cfg, splits, model_fn, state, device)
    finally:
        state.close()


def _cross_validate(task: GraphTask, cfg: TrainConfig,
                    splits: List[Dict[str, Tensor]],
                    model_fn: Optional[Callable[[], Module]],
                    state: TrainState,
                    device: torch.device) -> Dict[str, Any]:
    records: List[Dict[str, Any]] = list(state.runs)
    best_state = state.best
    bar = tqdm(splits, desc='Folds', dynamic_ncols=True,
               disable=not cfg.progress or not distributed.is_main())
    for fold, split in enumerate(bar):
        if fold < len(records):  # Finished before an interruption.
            continue
        record, state_dict = run_fold(task, cfg, split, fold, device,
                                      model_fn, state)
        records.append(record)
        key = (record['val_acc'], -record['val_loss'])
        if best_state is None or key > best_state['key']:
            best_state = {'key': key, 'state_dict': state_dict,
                          'record': record}
        state.run_done(record, best_state)
        _log(cfg, f"Fold: {fold + 1:02d}, "
                  f"Best epoch: {record['best_epoch']:03d}, "
                  f"Val: {record['val_acc']:.4f}, "
                  f"Test: {record['test_acc']:.4f}")
    result = _summarise(records, 'acc', best_state, task, cfg, device,
                        key='folds')
    result['resumed'] = state.resumed
    return result


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
    from sap_graph.experiments.data import _require_ogb
    evaluator = _require_ogb().Evaluator(task.name)
    device = resolve_device(cfg.device)
    split = split_idx or task.split_idx
    assert split is not None
    train = _subset(task.dataset, split['train'])
    val = _subset(task.dataset, split['valid'])
    test_data = _subset(task.dataset, split['test'])
    test_loader = _eval_loader(test_data, cfg.batch_size)
    state = TrainState(cfg, task, 'seeds',
                       [{k: v.view(-1) for k, v in split.items()}])
    try:
        return _holdout(task, cfg, model_fn, state, device, evaluator,
                        train, val, test_data, test_loader)
    finally:
        state.close()


def _holdout(task: GraphTask, cfg: TrainConfig,
             model_fn: Optional[Callable[[], Module]], state: TrainState,
             device: torch.device, evaluator: Any, train: List[Data],
             val: List[Data], test_data: List[Data],
             test_loader: DataLoader) -> Dict[str, Any]:
    metric = task.metric
    sign = 1.0 if task.higher_is_better else -1.0
    records: List[Dict[str, Any]] = list(state.runs)
    best_state = state.best
    for run_idx, seed in enumerate(tqdm(
            cfg.seeds, desc='Seeds', dynamic_ncols=True,
            disable=not cfg.progress or not distributed.is_main())):
        if run_idx < len(records):  # Finished before an interruption.
            continue
        seed_everything(seed)
        model = (model_fn or (lambda: build_model(cfg, task)))().to(device)
        res = fit(model, train, val, cfg, device, task.task_type, metric,
                  task.higher_is_better, evaluator, seed=seed,
                  desc=f'Seed {seed}', resume=state.snapshot(run_idx),
                  on_epoch=(None if not state.path else
                            lambda snap, i=run_idx: state.epoch_done(i,
                                                                     snap)))
        model.load_state_dict(res.state_dict)
        test = evaluate(model, test_loader, device, task.task_type,
                        evaluator, metric)
        records.append({
            'seed': seed, 'train_size': len(train), 'val_size': len(val),
            'test_size': len(test_data),
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
        state.run_done(records[-1], best_state)
        _log(cfg, f"Seed: {seed}, Best epoch: {res.best_epoch:03d}, "
                  f"Val: {res.val[metric]:.4f}, Test: {test[metric]:.4f}")
    result = _summarise(records, metric, best_state, task, cfg, device,
                        key='seeds')
    result['resumed'] = state.resumed
    return result


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


def source_digest() -> str:
    r"""SHA-1 (12 hex digits) of the package's own source files
    (:obj:`sap_graph/**/*.py` and the C++ kernels): two results with the
    same digest were computed by the same code."""
    root = os.path.dirname(os.path.abspath(sap_graph.__file__))
    digest = hashlib.sha1()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(('.py', '.cpp')):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, 'rb') as f:
                    digest.update(f.read())
    return digest.hexdigest()[:12]


def versions() -> Dict[str, Optional[str]]:
    r"""Returns the versions of Python and the main packages, the digest of
    this package's sources and which SAP core ran on CPU
    (:func:`sap_graph._native.status`)."""
    from sap_graph import _native
    out: Dict[str, Optional[str]] = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torch_geometric': torch_geometric.__version__,
        'sap_graph': sap_graph.__version__,
        'sap_graph_source': source_digest(),
        'sap_graph_cpu_core': _native.status(),
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


def save_checkpoint(path: str, model: GraphClassifier,
                    state_dict: Dict[str, Tensor],
                    extra: Dict[str, Any]) -> None:
    r"""Saves :obj:`{'state_dict', 'config'}` (plain Python values only),
    loadable with :obj:`torch.load(path, weights_only=True)` and
    :func:`sap_graph.experiments.models.load_checkpoint`."""
    atomic_save(checkpoint_state(model, state_dict, extra), path)


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
    """
    for name in ('out', 'checkpoint', 'state'):
        path = getattr(cfg, name)
        if path:
            what = {'out': 'result file', 'checkpoint': 'checkpoint',
                    'state': 'training state'}[name]
            check_writable(path, what)


def _write_outputs(cfg: TrainConfig, task: GraphTask, result: Dict[str, Any],
                   best: Optional[Dict[str, Any]]) -> None:
    failed = []
    if cfg.checkpoint and best is not None:
        state = checkpoint_state(build_model(cfg, task), best['state_dict'], {
            'train': asdict(cfg),
            'dataset': task.stats(),
            'selected': best['record'],
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
    resolve_device(cfg.device)  # Fail early on a bad device.
    if cfg.resume and not cfg.state:
        raise ValueError('--resume needs --state PATH (the training state '
                         'file of the interrupted run)')
    if cfg.state and not cfg.resume and osp.exists(cfg.state):
        raise ValueError(f"training state '{cfg.state}' exists; pass "
                         f"--resume to continue it, or delete it to start "
                         f"over")
    validate_config(cfg)
    if distributed.is_main():
        check_outputs(cfg)
    if task is None:
        task = load_dataset(cfg.dataset, root=cfg.root,
                            node_features=cfg.node_features,
                            download=cfg.download, seed=cfg.seed,
                            use_node_attr=cfg.use_node_attr)
    check_task(task)
    cfg = resolve_config(cfg, 'ogb' if task.kind == 'ogb' else task.kind)
    if ctx is not None and cfg.batch_size % ctx.world_size:
        raise ValueError(f'--batch_size {cfg.batch_size} must be a multiple '
                         f'of the {ctx.world_size} processes (each takes '
                         f'batch_size / processes graphs)')
    build_model(cfg, task)  # Fail early on bad model options.
    start = time.perf_counter()
    if task.kind == 'ogb':
        result = holdout(task, cfg)
    else:
        result = cross_validate(task, cfg)
    result['total_time'] = time.perf_counter() - start
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

r"""One model: losses, the training epoch, prediction, evaluation and
:func:`fit` with model selection on the validation split.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass
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

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from sap_graph.experiments import distributed
from sap_graph.experiments.checkpoint import (
    get_rng_state,
    set_rng_state,
)
from sap_graph.experiments.regularized import aux_loss
from sap_graph.experiments.train.config import (
    ConfigError,
    TrainConfig,
)

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
    (auxiliary losses of the model, see
    :func:`sap_graph.experiments.regularized.aux_loss`, are
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
        if ctx is None and batch.num_nodes < 2:
            # Batch normalisation cannot train on one node (the last batch
            # of an epoch can be a single one-atom molecule): skip it.
            continue
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


def _own_rng(states: List[Dict[str, Any]]) -> Dict[str, Any]:
    r"""This rank's random generator states of a snapshot's per-rank
    list (:func:`distributed.all_objects`)."""
    ctx = distributed.context()
    rank, world = (0, 1) if ctx is None else (ctx.rank, ctx.world_size)
    if not isinstance(states, list) or len(states) != world:
        count = len(states) if isinstance(states, list) else 'no'
        raise ValueError(f"cannot resume: the snapshot holds the random "
                         f"generator states of {count} process(es), this "
                         f"run has {world}")
    return states[rank]


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
            best epoch so far and its weights, histories and the random
            number generator states of every rank, a list by rank; tensors
            and plain containers only).
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
        set_rng_state(_own_rng(resume['rng']), {'shuffle': generator})
        first = resume['epoch'] + 1
    if ctx is not None:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(
            model, device_ids=[device] if device.type == 'cuda' else None)
    if device.type == 'cpu' and cfg.readout == 'sap':
        # Build (or load) the fused CPU kernels now, so that compiling
        # them is never counted as epoch time.
        from sap_graph.ops import native as _native
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
                # Every rank's: their dropout streams differ.
                'rng': distributed.all_objects(
                    get_rng_state({'shuffle': generator})),
            })
    bar.close()
    if best is None:
        raise ConfigError('epochs', f"'epochs' must be >= 1 (got "
                          f"{cfg.epochs})")
    best.epoch_times, best.history = times, history
    return best

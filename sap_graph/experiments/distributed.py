r"""Data-parallel training with :class:`DistributedDataParallel` under
:obj:`torchrun` (gloo on CPU, NCCL on GPU).

The distributed run reproduces the single-process run with the same seed:

* every rank draws the same shuffled global batches of
  :obj:`batch_size` graphs (the single-process :class:`DataLoader`'s
  shuffle, with the same generator) and takes the strided share
  :obj:`batch[rank::world_size]` of each, so a rank's batch has
  :obj:`batch_size / world_size` graphs;
* each rank's loss is its sum over its share divided by the size of the
  *global* batch (times :obj:`world_size`, which DDP's gradient averaging
  divides out), so the gradient is the single-process one;
* batch normalisation computes its statistics over the global batch
  (:class:`DistributedBatchNorm1d` on CPU, :class:`torch.nn.SyncBatchNorm`
  on GPU);
* evaluation splits the graphs across ranks and gathers the predictions,
  so every rank computes the metrics of the whole split.

What is not reproduced bit for bit: dropout masks (each rank has its own
random stream), auxiliary readout losses (a mean per share instead of per
batch) and floating-point summation order. A resumed run is the
uninterrupted one: the training state keeps the random generator states of
every rank (:func:`all_objects`), and each rank restores its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import BatchNorm1d, Module
from torch_geometric.data import Batch, Data


@dataclass
class DistContext:
    r"""The process group of a :obj:`torchrun` launch."""
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device


_CTX: Optional[DistContext] = None


def launched() -> bool:
    r"""Whether this process was started by :obj:`torchrun` with more than
    one process."""
    return int(os.environ.get('WORLD_SIZE', '1')) > 1


def init(device: str = 'auto') -> Optional[DistContext]:
    r"""Joins the :obj:`torchrun` process group (once) and returns its
    context, or :obj:`None` when not launched with several processes.

    Args:
        device (str, optional): :obj:`'cpu'`, :obj:`'cuda'` or
            :obj:`'auto'` (CUDA when available); ranks on CUDA use the
            device :obj:`cuda:$LOCAL_RANK` and NCCL, on CPU gloo.
            (default: :obj:`'auto'`)
    """
    global _CTX
    if _CTX is not None or not launched():
        return _CTX
    local_rank = int(os.environ.get('LOCAL_RANK', '0'))
    use_cuda = (device.startswith('cuda') or
                (device == 'auto' and torch.cuda.is_available()))
    if use_cuda:
        dev = torch.device('cuda', local_rank)
        torch.cuda.set_device(dev)
        backend = 'nccl'
    else:
        dev, backend = torch.device('cpu'), 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend)
    _CTX = DistContext(rank=dist.get_rank(),
                       world_size=dist.get_world_size(),
                       local_rank=local_rank, backend=backend, device=dev)
    return _CTX


def shutdown() -> None:
    r"""Leaves the process group joined by :func:`init`."""
    global _CTX
    if _CTX is not None and dist.is_initialized():
        dist.destroy_process_group()
    _CTX = None


def context() -> Optional[DistContext]:
    r"""The current context, or :obj:`None` in a single-process run."""
    return _CTX


def is_main() -> bool:
    r"""Whether this process logs and writes files (rank 0, or no group)."""
    return _CTX is None or _CTX.rank == 0


def shard(items: Sequence[Any]) -> List[Any]:
    r"""This rank's strided share :obj:`items[rank::world_size]`."""
    if _CTX is None:
        return list(items)
    return list(items)[_CTX.rank::_CTX.world_size]


def gather_shards(local: Tensor) -> Tensor:
    r"""Reassembles the rows of :func:`shard`-ed items from all ranks in
    the original order (rows of rank :math:`r` are items
    :math:`r, r + W, \dots`)."""
    if _CTX is None:
        return local
    parts: List[Any] = [None] * _CTX.world_size
    dist.all_gather_object(parts, local.cpu())
    shaped = [p for p in parts if p.numel() > 0] or parts
    total = sum(p.size(0) for p in parts)
    out = shaped[0].new_empty((total, *shaped[0].shape[1:]))
    for rank, part in enumerate(parts):
        if part.numel() > 0:
            out[rank::_CTX.world_size] = part
    return out


def all_objects(obj: Any) -> List[Any]:
    r"""The :obj:`obj` of every rank, by rank (:obj:`[obj]` in a
    single-process run); picklable objects, *e.g.* a rank's random
    generator states."""
    if _CTX is None:
        return [obj]
    parts: List[Any] = [None] * _CTX.world_size
    dist.all_gather_object(parts, obj)
    return parts


def all_sum(*values: float) -> List[float]:
    r"""Sums floats over all ranks (float64)."""
    if _CTX is None:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64,
                     device=_CTX.device if _CTX.backend == 'nccl' else 'cpu')
    dist.all_reduce(t)
    return t.tolist()


def empty_batch(example: Data) -> Batch:
    r"""A batch with no graphs, shaped like :obj:`example`, for a rank
    whose share of a small last batch is empty (it must still take part in
    the collective operations)."""
    batch = Batch.from_data_list([example])
    for key, value in batch.to_dict().items():
        if not torch.is_tensor(value) or key == 'ptr':
            continue
        if key == 'edge_index':
            batch[key] = value[:, :0]
        else:
            batch[key] = value[:0]
    batch.ptr = batch.ptr[:1]
    batch._num_graphs = 0
    return batch


class _AllReduceSum(torch.autograd.Function):
    r"""Differentiable sum over ranks: the gradient of a summed tensor is
    the sum of the gradients of all ranks."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class DistributedBatchNorm1d(BatchNorm1d):
    r"""Batch normalisation whose training statistics (and their
    gradients) are computed over the inputs of all ranks, like
    :class:`torch.nn.SyncBatchNorm`, which needs a GPU. The mean and the
    variance are reduced in two passes, for the accuracy of the
    single-process layer; a rank may contribute no rows."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        all_reduce = _AllReduceSum.apply
        local = torch.cat([x.sum(0), x.new_tensor([float(x.size(0))])])
        total = all_reduce(local)
        n = total[-1].detach()
        mean = total[:-1] / n
        centred = x - mean
        var = all_reduce((centred * centred).sum(0)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = (self.momentum if self.momentum is not None else
                            1.0 / float(self.num_batches_tracked))
                unbiased = var * n / (n - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        out = centred * torch.rsqrt(var + self.eps)
        if self.affine:
            out = out * self.weight + self.bias
        return out


def convert_batchnorm(module: Module, device: torch.device) -> Module:
    r"""Replaces every :class:`BatchNorm1d` of :obj:`module` by its
    synchronised version (:class:`torch.nn.SyncBatchNorm` on GPU,
    :class:`DistributedBatchNorm1d` otherwise), keeping its state."""
    if device.type == 'cuda':
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if (isinstance(child, BatchNorm1d)
                and not isinstance(child, DistributedBatchNorm1d)):
            new = DistributedBatchNorm1d(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new)
        else:
            convert_batchnorm(child, device)
    return module


__all__ = ['DistContext', 'DistributedBatchNorm1d', 'all_objects', 'all_sum',
           'context',
           'convert_batchnorm', 'empty_batch', 'gather_shards', 'init',
           'is_main', 'launched', 'shard', 'shutdown']

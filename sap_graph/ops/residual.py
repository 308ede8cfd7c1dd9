r"""The residual pooling of :class:`~sap_graph.SAPAggregation` outside the
fused CPU kernels (which compute it in their own pass).

Sum and mean go through PyG's :func:`~torch_geometric.utils.scatter`.
:class:`SegmentMax` computes the maximum with the same semantics as the
kernels and :func:`torch.amax`: the gradient of a maximum is shared evenly
by the nodes that attain it, and an empty set pools to zero. (PyG's
scatter max on the CPU also counts the zeros it starts from as ties, so
a maximum of exactly zero loses part of its gradient; torch's
``segment_reduce`` gives every tied node the whole gradient when there is
more than one feature column.) Its backward is a comparison, a count and
a gather, without atomics or arg-max buffers, on any device. While a graph
is captured (:func:`~sap_graph.ops.layout.capturing`: :func:`torch.compile`,
:func:`torch.jit.trace`, :mod:`torch.func` transforms) the same maximum
comes from differentiable ops instead: a custom autograd function with a
hand-written backward cannot be traced there (with dynamic shapes Dynamo
failed on it in training).
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch_geometric.utils import scatter

from sap_graph.ops.layout import capturing


class SegmentMax(torch.autograd.Function):
    r"""Per-set maximum :obj:`[B, F]` of :obj:`x` :obj:`[N, F]` for set
    indices :obj:`index` :obj:`[N]` (int64)."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor,  # type: ignore
                dim_size: int) -> Tensor:
        # Detached: the backward below is ours, so PyG needs no gradient
        # path (nor its 'install torch-scatter' warning on CUDA).
        out = scatter(x.detach(), index, 0, dim_size, reduce='max')
        ctx.save_for_backward(x, index, out)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore
        x, index, out = ctx.saved_tensors
        hit = x == out.index_select(0, index)
        count = torch.zeros_like(out).index_add_(0, index, hit.to(x.dtype))
        share = grad_out / count.clamp_min(1.0)
        return share.index_select(0, index) * hit, None, None


def residual_pool(x: Tensor, index: Tensor, dim_size: int,
                  reduce: Optional[str]) -> Optional[Tensor]:
    r"""The :obj:`'sum'`, :obj:`'mean'` or :obj:`'max'` pooling
    :obj:`[B, F]` of :obj:`x` per set (zero for an empty set), or
    :obj:`None` when :obj:`reduce` is :obj:`None`."""
    if reduce is None:
        return None
    if reduce == 'max':
        if capturing():  # No custom autograd function can be captured.
            return differentiable_max(x, index, dim_size)
        return SegmentMax.apply(x, index, dim_size)
    return scatter(x, index, 0, dim_size, reduce=reduce)


def differentiable_max(x: Tensor, index: Tensor, dim_size: int) -> Tensor:
    r"""The function of :class:`SegmentMax` from differentiable ops, for
    capture (:func:`torch.compile`, :func:`torch.jit.trace`,
    :mod:`torch.func`): :func:`~torch.Tensor.scatter_reduce`'s backward
    also shares a maximum's gradient evenly among the tied nodes."""
    out = x.new_full((dim_size, x.size(1)), float('-inf')).scatter_reduce(
        0, index.unsqueeze(1).expand_as(x), x, 'amax', include_self=False)
    count = x.new_zeros(dim_size).index_add(0, index, x.new_ones(index.numel()))
    return out.masked_fill((count == 0).unsqueeze(1), 0.0)

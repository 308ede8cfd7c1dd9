r"""Padded batches for :class:`sap_graph.SAPAggregation`: one set per row
of :obj:`x` :obj:`[B, L, F]`, with a padding mask :obj:`[B, L]` or lengths
:obj:`[B]`, pooled without gathering the kept rows.

Masked positions take no part whatever they hold: :func:`lay_out_padded`
zero-fills them first, so that neither NaN or inf nor a finite value large
enough to overflow a score or a product of the backward reaches the output
or any gradient; only a ``'runs'`` layout on the CPU whose scores are
bounded (:func:`scores_bounded` of the features' :func:`extent`, one read)
skips the fill.
Two layouts, both over all :math:`BL` positions:

* **runs** (lengths, or a mask whose kept positions form one contiguous run
  per row: right or left padding): row :math:`b` with run
  :math:`[s_b, e_b)` becomes the three CSR segments
  :math:`[bL, bL + s_b), [bL + s_b, bL + e_b), [bL + e_b, (b + 1)L)` of
  one sorted batch of :math:`3B` sets (a ``'runs'``
  :class:`~sap_graph.ops.layout.Layout`), pooled by the kernels of the
  ``native``, ``triton`` or ``torch`` path; the middle segments are the
  result, the padding segments are discarded. No per-position index is
  built on the fused path.
* **dense** (a ``'rows'`` layout: any other mask, a mask on a GPU, where
  checking it for runs would wait for the device, and
  :func:`torch.compile`; the ``dense`` path, :class:`DensePath`): scores
  for all positions, :math:`-\infty` at masked ones, a softmax over
  :math:`L` and one batched product
  :math:`\boldsymbol{\alpha}^{\top}\mathbf{X}`.

A row without kept positions (every row, when :math:`L = 0`) pools to
exactly zero, with finite gradients.
"""
from __future__ import annotations

import math
from functools import cached_property
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sap_graph.ops.layout import (
    Core,
    Gate,
    Layout,
    Segments,
    capturing,
    dropout_runs,
    index_from_ptr,
)


class RunSegments(Segments):
    r""":class:`~sap_graph.ops.layout.Segments` of a sorted batch given by its
    CSR pointer alone: the per-node :obj:`index` is only built when a path
    that needs it reads it (the fused kernels do not)."""

    def __init__(self, ptr: Tensor, num_nodes: int, heads: int) -> None:
        self.ptr = ptr
        self.count = ptr[1:] - ptr[:-1]
        self.dim_size = ptr.numel() - 1
        self.heads = heads
        self.num_nodes = num_nodes
        self.sorted = True

    @cached_property
    def index(self) -> Tensor:  # type: ignore[override]
        return index_from_ptr(self.ptr, self.num_nodes)


def lengths_to_mask(lengths: Tensor, max_length: int) -> Tensor:
    """Boolean padding mask :obj:`[*, max_length]` of sequences with the
    given :obj:`lengths` :obj:`[*]` (kept positions first)."""
    steps = torch.arange(max_length, device=lengths.device)
    return steps < lengths.unsqueeze(-1)


def mask_runs(mask: Tensor) -> Optional[Tuple[Tensor, Tensor]]:
    """:obj:`(start, end)` :obj:`[B]` of the kept run of every row of a
    boolean :obj:`[B, L]` mask, or :obj:`None` when a row keeps more than
    one run (reads the result back: call it on CPU tensors)."""
    count = mask.sum(1)
    if mask.size(1) == 0:  # Rows of length zero: empty runs.
        return count, count
    start = mask.to(torch.uint8).argmax(1)  # First kept position.
    end = start + count
    # One run per row iff the kept positions are exactly [start, end).
    if not torch.equal(lengths_to_mask(end, mask.size(1)) &
                       ~lengths_to_mask(start, mask.size(1)), mask):
        return None
    return start, end


def run_ptr(start: Tensor, end: Tensor, length: int) -> Tensor:
    """CSR pointer :obj:`[3B + 1]` of the segments (padding before, kept
    run, padding after) of rows with kept runs :obj:`[start, end)`."""
    base = torch.arange(start.numel(), device=start.device) * length
    bounds = torch.stack([base, base + start, base + end], 1).view(-1)
    return torch.cat([bounds, bounds.new_full((1, ), start.numel() * length)])


def extent(x: Tensor) -> Optional[float]:
    r""":math:`\max_i \|\mathbf{x}_i\|_\infty` of a CPU batch in eager
    mode (NaN or inf where :obj:`x` holds them; one read of :obj:`x`), or
    :obj:`None` on GPUs and while capturing (no value is read back)."""
    if x.device.type != 'cpu' or capturing():
        return None
    if x.numel() == 0:
        return 0.0
    low, high = torch.aminmax(x.detach())
    return max(-float(low), float(high))  # NaN propagates from both.


def zero_masked(x: Tensor, mask: Tensor, size: Optional[float]) -> Tensor:
    """:obj:`x` :obj:`[*, L, F]` with the positions that :obj:`mask`
    :obj:`[*, L]` drops set to zero, whatever they held: a product with
    the mask where every feature is finite (:obj:`size`, its
    :func:`extent`, is finite: the cheapest fill on the CPU, forward and
    backward), else :func:`torch.where` (always on GPUs and under
    :func:`torch.compile`, where it fuses and no sync is wanted)."""
    keep = mask.unsqueeze(-1)
    if size is not None and math.isfinite(size):
        return x * keep.to(x.dtype)
    return torch.where(keep, x, x.new_zeros(()))


def scores_bounded(size: Optional[float], score_weight: Tensor,
                   dtype: torch.dtype) -> bool:
    r"""Whether every score :math:`|\mathbf{x}_i^{\top}\mathbf{w}_h|
    \le \max_i \|\mathbf{x}_i\|_\infty \max_h \|\mathbf{w}_h\|_1` of
    a batch of :func:`extent` :obj:`size` is below half the largest value
    of :obj:`dtype` (:obj:`False` for NaN or inf, or no extent). Then a
    ``'runs'`` layout needs no fill: its padding segments get finite
    scores, their outputs are discarded, so their gradient is zero, and
    every product of that zero with the features is zero."""
    if size is None:
        return False
    weight = float(score_weight.detach().abs().sum(1).max())
    return size * weight < torch.finfo(dtype).max / 2  # False for NaN.


def _runs(mask: Tensor, lengths: Optional[Tensor]
          ) -> Optional[Tuple[Tensor, Tensor]]:
    # One kept run per row: from lengths, or read off a CPU mask (on a GPU
    # that would wait for the device).
    if capturing():
        return None
    if lengths is not None:
        return torch.zeros_like(lengths), lengths
    if mask.device.type == 'cpu':
        return mask_runs(mask)
    return None


def is_padded(x: Tensor, ptr: Optional[Tensor], dim_size: int,
              mask: Optional[Tensor]) -> bool:
    """Whether :obj:`x` :obj:`[*, L, F]` is a padded batch, one set per
    row (leading dimensions, a mask, no :obj:`ptr`, one set)."""
    return (x.dim() > 2 and mask is not None and ptr is None
            and dim_size == 1)


def lay_out_padded(x: Tensor, mask: Tensor, lengths: Optional[Tensor],
                   score_weight: Tensor, gate: Gate = None) -> Layout:
    r"""The :class:`~sap_graph.ops.layout.Layout` of a padded batch
    :obj:`x` :obj:`[*, L, F]` with its :obj:`mask` :obj:`[*, L]` (and the
    :obj:`lengths` :obj:`[*]` behind it, when the caller has them): one
    set per row, ``'runs'`` where the kept positions form one run per row
    (known without waiting for a GPU), ``'rows'`` otherwise; masked
    positions zero-filled (:func:`zero_masked`) unless a ``'runs'`` layout
    without gate has :func:`scores_bounded`. :obj:`score_weight`
    :obj:`[H, F]` is the score matrix; :obj:`gate` (a callable, optional)
    maps :obj:`[B, L, F]` to the gate :obj:`[B, L, H]`.
    """
    lead, length, channels = x.shape[:-2], x.size(-2), x.size(-1)
    heads, batch = score_weight.size(0), math.prod(lead)
    mask = mask.reshape(batch, length)
    runs = _runs(mask, None if lengths is None else lengths.reshape(-1))
    x = x.reshape(batch, length, channels)
    size = extent(x)  # One read of x decides the fill.
    if runs is None or gate is not None or not scores_bounded(
            size, score_weight, x.dtype):
        x = zero_masked(x, mask, size)
    g = None if gate is None else gate(x)
    shapes = ((*lead, 1), (*lead, length, heads))
    if runs is None:
        return Layout('rows', x, g, None, None, batch, mask, mask.sum(1),
                      *shapes)
    seg = RunSegments(run_ptr(runs[0].to(torch.long),
                              runs[1].to(torch.long), length),
                      mask.numel(), heads)
    return Layout('runs', x.reshape(batch * length, channels),
                  None if g is None else g.reshape(-1, heads), seg, None,
                  seg.dim_size, mask, mask.sum(1), *shapes)


def pool_dense(x: Tensor, score_weight: Tensor, mask: Tensor,
               dropout: float = 0.0, training: bool = False,
               gate: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The ``dense`` path: SAP core of a padded batch from differentiable
    ops (any mask, any device, :func:`torch.compile`); returns
    ``(pooled [H, B, F], alpha [B, L, H], weight_sum [H, B])`` for
    :obj:`x` :obj:`[B, L, F]`, :obj:`mask` :obj:`[B, L]` and an optional
    gate :obj:`[B, L, H]`."""
    score = torch.matmul(x, score_weight.to(x.dtype).t())  # [B, L, H]
    score = score.masked_fill(~mask.unsqueeze(-1), float('-inf'))
    # A row without kept positions has max -inf: shift it by zero instead,
    # so that every weight is exp(-inf) = 0 and nothing is NaN. Rows of
    # length zero (amax needs a position) have nothing to shift.
    if score.size(1) == 0:
        score_max = score.new_zeros(score.size(0), 1, score.size(2))
    else:
        score_max = score.detach().amax(1, keepdim=True)
        score_max = score_max.masked_fill(score_max == float('-inf'), 0.0)
    exp = (score - score_max).exp()
    total = exp.sum(1, keepdim=True)
    alpha = exp / total.masked_fill(total == 0, 1.0)
    weight = F.dropout(alpha, p=dropout, training=training)
    if gate is not None:
        weight = weight * gate
    pooled = torch.matmul(weight.transpose(1, 2), x)  # [B, H, F]
    return pooled.transpose(0, 1), alpha, weight.sum(1).t()


def masked_reduce(x: Tensor, mask: Tensor, reduce: str) -> Tensor:
    """Sum, mean or max :obj:`[B, F]` of the kept rows of :obj:`x`
    :obj:`[B, L, F]` (zero for a row without any). The kept rows are
    selected (:func:`torch.where`), not weighted by the mask: whatever the
    masked rows hold (NaN, inf) reaches neither the result nor the
    gradient. Rows of length zero give zero for every :obj:`reduce`, as
    an empty set of a flat batch does."""
    keep = mask.unsqueeze(-1)
    if reduce == 'max' and x.size(1) > 0:  # L = 0: the zero sum below.
        out = torch.where(keep, x, x.new_full((), float('-inf'))).amax(1)
        return out.masked_fill(~mask.any(1, keepdim=True), 0.0)
    out = torch.where(keep, x, x.new_zeros(())).sum(1)
    if reduce == 'mean':
        count = mask.sum(1, keepdim=True).clamp_min(1)
        out = out / count.to(out.dtype)
    return out


class DensePath:
    r"""The ``dense`` path of :mod:`sap_graph.ops.dispatch`."""

    @staticmethod
    def run(layout: Layout, score_weight: Tensor, dropout: float = 0.0,
            residual: Optional[str] = None) -> Core:
        r"""The :class:`~sap_graph.ops.layout.Core` of a ``'rows'``
        :class:`~sap_graph.ops.layout.Layout`: :func:`pool_dense` and the
        :obj:`residual` pooling (:func:`masked_reduce`)."""
        x, mask = layout.x, layout.mask
        pooled, alpha, weight_sum = pool_dense(
            x, score_weight, mask, dropout, dropout_runs(dropout),
            layout.gate)
        res = None if residual is None else masked_reduce(x, mask, residual)
        return layout.core(pooled, alpha, weight_sum, res)

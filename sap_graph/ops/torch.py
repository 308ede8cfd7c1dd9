r"""The ``torch`` path of the SAP core: pure PyTorch, any device; the
reference for the fused kernels.

For a batch of :math:`N` nodes with features :math:`\mathbf{X}` split into
:math:`B` graphs and :math:`H` heads with score matrix
:math:`\mathbf{W}_q \in \mathbb{R}^{F \times H}` (stored transposed,
:obj:`[H, F]`), the readout core is

.. math::
    \mathbf{E} = \mathbf{X}\mathbf{W}_q, \qquad
    \alpha_{ih} = \mathrm{softmax}_{i \in b}(e_{ih}), \qquad
    \mathbf{P}_{b,h} = \sum_{i \in b} \alpha_{ih} \mathbf{x}_i.

The weighted sum is the sparse-dense product :math:`\mathbf{A}\mathbf{X}`
(:math:`\mathbf{A} \in \mathbb{R}^{BH \times N}` holds the weights).
:class:`SAPPoolFunction` computes it in PyTorch with a hand-written backward
(weighted :func:`~torch.nn.functional.embedding_bag` forward; a sampled
product, the softmax backward and one :math:`[N, F]` gradient buffer
backward), never allocating an :math:`[N, H, F]` tensor.
:mod:`sap_graph.ops.dispatch` picks this path or another.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from sap_graph.ops.layout import (
    Core,
    Layout,
    Segments,
    index_from_ptr,  # noqa: F401 (imported from here by experiments)
)
from sap_graph.ops.residual import residual_pool

# The sampled product has CPU kernels for float32 and float64 only; lower
# precisions are computed in float32.
_KERNEL_DTYPES = (torch.float32, torch.float64)

#: Whether the backward's sampled product runs as one gather per head on
#: GPUs (:meth:`~sap_graph.ops.layout.Segments.sampled_gather`) instead of
#: cuSPARSE's SDDMM.
GATHER_SAMPLED_ON_GPU = True


def _sampled(seg: Segments, grad: Tensor, x: Tensor, cols: Tensor,
            finite: Tensor) -> Tensor:
    r""":math:`\langle\mathbf{x}_i, \partial\mathbf{P}_{h,b(i)}\rangle`
    as :obj:`[N, H]`, for :obj:`grad` :obj:`[H * B, F]`: a sampled sparse
    product on the CPU, a gather per head on other devices (see
    :meth:`Segments.sampled_sparse` and :meth:`Segments.sampled_gather`)."""
    if x.device.type == 'cpu' or not GATHER_SAMPLED_ON_GPU:
        return seg.sampled_sparse(grad, x, cols, finite)
    return seg.sampled_gather(grad, x, cols)


class SAPPoolFunction(torch.autograd.Function):
    r"""Fused scores, segment softmax, attention dropout, optional value
    gate and weighted sum.

    With node weights :math:`w_{ih} = \alpha_{ih} m_{ih} g_{ih}`
    (:math:`m`: dropout mask, :math:`g`: optional gate), returns
    ``(pooled [H, B, F], alpha [N, H], weight_sum [H, B])`` where
    :obj:`pooled` holds :math:`\sum_{i \in b} w_{ih} \mathbf{x}_i` and
    :obj:`weight_sum` :math:`\sum_{i \in b} w_{ih}` (one for a non-empty
    graph without dropout and gate, zero for an empty one). All three are
    differentiable: a loss on :obj:`alpha`, such as a head-diversity
    penalty, flows back into :obj:`x` and :obj:`score_weight`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, score_weight: Tensor,  # type: ignore
                gate: Optional[Tensor], seg: Segments,
                dropout: float) -> Tuple[Tensor, Tensor, Tensor]:
        alpha = seg.softmax(F.linear(x, score_weight))
        mask = None
        if dropout > 0.0:
            mask = torch.empty_like(alpha).bernoulli_(1.0 - dropout)
            mask.div_(1.0 - dropout)
        weight = alpha if mask is None else alpha * mask
        if gate is not None:
            weight = weight * gate
        pooled = seg.pool(weight, x)
        weight_sum = seg.sum(weight).t()
        ctx.seg = seg
        ctx.save_for_backward(x, score_weight, alpha, weight, mask, gate)
        return pooled, alpha, weight_sum

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled: Optional[Tensor],  # type: ignore
                 grad_alpha: Optional[Tensor],
                 grad_weight_sum: Optional[Tensor]):
        x, score_weight, alpha, weight, mask, gate = ctx.saved_tensors
        seg: Segments = ctx.seg
        cols = seg.node_bags()
        channels = x.size(1)

        # Gradient of the node weights w = alpha * mask * gate.
        grad_weight: Optional[Tensor] = None
        if grad_pooled is not None:
            grad_pooled = grad_pooled.reshape(-1, channels).contiguous()
            grad_weight = _sampled(seg, grad_pooled, x, cols, alpha)
        if grad_weight_sum is not None:
            spread = grad_weight_sum.t().index_select(0, seg.index)
            grad_weight = (spread if grad_weight is None else
                           grad_weight.add_(spread))
        if grad_weight is None and grad_alpha is None:
            return None, None, None, None, None

        grad_gate = None
        if grad_weight is None:
            grad_alpha_total = grad_alpha.clone()
        else:
            if gate is not None and ctx.needs_input_grad[2]:
                grad_gate = grad_weight * alpha
                if mask is not None:
                    grad_gate.mul_(mask)
            grad_alpha_total = grad_weight
            if mask is not None:
                grad_alpha_total.mul_(mask)
            if gate is not None:
                grad_alpha_total.mul_(gate)
            if grad_alpha is not None:
                grad_alpha_total.add_(grad_alpha)

        # Softmax backward, in place: alpha * (g - sum_b(alpha * g)).
        dot = seg.sum(alpha * grad_alpha_total)
        grad_score = grad_alpha_total.sub_(dot.index_select(0, seg.index))
        grad_score.mul_(alpha)

        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if grad_pooled is not None:
                # dX = A^T dP + dE W_q: one weighted bag sum writes the
                # buffer, a rank-H update adds the score path in place.
                grad_x = F.embedding_bag(cols, grad_pooled, mode='sum',
                                         per_sample_weights=weight)
                grad_x.addmm_(grad_score, score_weight)
            else:
                grad_x = grad_score @ score_weight
        if ctx.needs_input_grad[1]:
            grad_w = grad_score.t() @ x
        return grad_x, grad_w, grad_gate, None, None


def pool_torch(x: Tensor, score_weight: Tensor, seg: Segments,
               dropout: float = 0.0, gate: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The ``torch`` path: :class:`SAPPoolFunction` in the inputs' dtype
    when its kernels have one (float32, float64), else in float32 (or the
    promoted dtype) and cast back."""
    dtype = x.dtype
    if dtype in _KERNEL_DTYPES and score_weight.dtype == dtype and (
            gate is None or gate.dtype == dtype):
        return SAPPoolFunction.apply(x, score_weight, gate, seg, dropout)
    work = torch.promote_types(torch.promote_types(dtype, score_weight.dtype),
                               torch.float32)
    pooled, alpha, weight_sum = SAPPoolFunction.apply(
        x.to(work), score_weight.to(work),
        None if gate is None else gate.to(work), seg, dropout)
    return pooled.to(dtype), alpha.to(dtype), weight_sum.to(dtype)


class TorchPath:
    r"""The ``torch`` path of :mod:`sap_graph.ops.dispatch`."""

    @staticmethod
    def run(layout: Layout, score_weight: Tensor, dropout: float = 0.0,
            residual: Optional[str] = None) -> Core:
        r"""The :class:`~sap_graph.ops.layout.Core` of a ``'flat'`` or
        ``'runs'`` :class:`~sap_graph.ops.layout.Layout`:
        :func:`pool_torch` with the layout's gate, and the :obj:`residual`
        pooling (:func:`~sap_graph.ops.residual.residual_pool`)."""
        seg = layout.seg
        pooled, alpha, weight_sum = pool_torch(layout.x, score_weight, seg,
                                               dropout, layout.gate)
        res = residual_pool(layout.x, seg.index, layout.sets, residual)
        return layout.core(pooled, alpha, weight_sum, res)

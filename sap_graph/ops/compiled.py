r"""The ``compiled`` path of the SAP core: what runs under
:func:`torch.compile` for a flat batch (``x [N, F]`` and an index), written
with plain differentiable ops that Inductor fuses. Same function as
:mod:`sap_graph.ops.torch`.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch.nn.functional as F
from torch import Tensor

from sap_graph.ops.layout import Core, Layout, dropout_runs
from sap_graph.ops.residual import residual_pool


def pool_compiled(x: Tensor, score_weight: Tensor, index: Tensor,
                  dim_size: int, dropout: float = 0.0,
                  training: bool = False, gate: Optional[Tensor] = None
                  ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The ``compiled`` path: the SAP core of a flat batch from plain
    differentiable ops, for :func:`torch.compile` (no custom autograd
    function, no data-dependent branch): Inductor fuses the broadcast
    product into the reduction, so the :math:`[N, H, F]` product is not
    materialised there."""
    score = F.linear(x, score_weight)
    heads = score.size(1)
    score_max = score.new_full((dim_size, heads), float('-inf')).scatter_reduce(
        0, index.unsqueeze(1).expand_as(score), score.detach(), 'amax')
    out = (score - score_max.index_select(0, index)).exp()
    total = out.new_zeros(dim_size, heads).index_add(0, index, out)
    alpha = out / total.index_select(0, index)
    weight = F.dropout(alpha, p=dropout, training=training)
    if gate is not None:
        weight = weight * gate
    src = weight.unsqueeze(-1) * x.unsqueeze(-2)  # [N, H, F]
    pooled = src.new_zeros(dim_size, heads, x.size(1)).index_add(0, index,
                                                                 src)
    weight_sum = weight.new_zeros(dim_size, heads).index_add(0, index, weight)
    return pooled.transpose(0, 1), alpha, weight_sum.t()


class CompiledPath:
    r"""The ``compiled`` path of :mod:`sap_graph.ops.dispatch`."""

    @staticmethod
    def run(layout: Layout, score_weight: Tensor, dropout: float = 0.0,
            residual: Optional[str] = None) -> Core:
        r"""The :class:`~sap_graph.ops.layout.Core` of a ``'flat'``
        :class:`~sap_graph.ops.layout.Layout` laid out under
        :func:`torch.compile`: :func:`pool_compiled` and the
        :obj:`residual` pooling
        (:func:`~sap_graph.ops.residual.residual_pool`)."""
        x, index = layout.x, layout.index
        pooled, alpha, weight_sum = pool_compiled(
            x, score_weight.to(x.dtype), index, layout.sets, dropout,
            dropout_runs(dropout), layout.gate)
        res = residual_pool(x, index, layout.sets, residual)
        return layout.core(pooled, alpha, weight_sum, res)

r"""The functional form of self-attention pooling.

:func:`sap_pool` runs the SAP core of one batch through the dispatch of
:mod:`sap_graph.ops.dispatch` (fused C++ kernels on CPU, Triton on
H100/H200 or with ``SAP_GRAPH_TRITON=1``, PyTorch otherwise, plain
differentiable ops under :func:`torch.compile`);
:class:`~sap_graph.SAPAggregation` applies its value projection after it.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from sap_graph.nn.checks import (
    assert_agree,
    check_batch,
    check_inputs,
    describe,
)
from sap_graph.ops.dispatch import pool
from sap_graph.ops.layout import infer_dim_size, readable


def sap_pool(x: Tensor, score_weight: Tensor, index: Optional[Tensor] = None,
             ptr: Optional[Tensor] = None, dim_size: Optional[int] = None,
             dropout: float = 0.0, gate: Optional[Tensor] = None,
             residual: Optional[str] = None
             ) -> Union[Tuple[Tensor, Tensor, Tensor],
                        Tuple[Tensor, Tensor, Tensor, Tensor]]:
    r"""Attention-weighted sums of :obj:`x` per set:

    .. math::
        \alpha_{ih} = \mathrm{softmax}_{i \in b}\big(\mathbf{x}_i^{\top}
        \mathbf{w}_h\big), \qquad
        \mathbf{P}_{hb} = \sum_{i \in b} \alpha_{ih} m_{ih} g_{ih}
        \mathbf{x}_i,

    where :math:`\mathbf{w}_h` is row :math:`h` of :obj:`score_weight`
    (the number of heads :math:`H` is its number of rows),
    :math:`m` an attention dropout mask and :math:`g` the optional gate.

    Args:
        x (torch.Tensor): Node features :obj:`[N, F]`.
        score_weight (torch.Tensor): Score matrix :obj:`[H, F]` (scores are
            ``x @ score_weight.t()``).
        index (torch.Tensor, optional): Set of each node :obj:`[N]` (int32
            or int64), not necessarily sorted. (default: :obj:`None`, *i.e.*
            one set, or the sets of :obj:`ptr`)
        ptr (torch.Tensor, optional): CSR pointer :obj:`[B + 1]` of a sorted
            batch; selects the fused kernels. (default: :obj:`None`)
        dim_size (int, optional): Number of sets :math:`B`. (default: from
            :obj:`ptr`, else :obj:`index.max() + 1`, else :obj:`1`)
        dropout (float, optional): Attention dropout probability (pass
            :obj:`0.0` in evaluation). (default: :obj:`0.0`)
        gate (torch.Tensor, optional): Value gate :obj:`[N, H]`.
            (default: :obj:`None`)
        residual (str, optional): Also returns the :obj:`'sum'`,
            :obj:`'mean'` or :obj:`'max'` pooling of :obj:`x` :obj:`[B, F]`
            (zero for an empty set; the gradient of a maximum is shared by
            the nodes that attain it, as in PyG's
            :class:`~torch_geometric.nn.aggr.MaxAggregation`), computed in
            the same pass by the fused kernels. (default: :obj:`None`)

    Returns:
        ``(pooled [H, B, F], alpha [N, H], weight_sum [H, B])``, plus the
        residual pooling ``[B, F]`` when :obj:`residual` is given; all
        differentiable; an empty set gives zero rows.
    """
    for name, value in (('x', x), ('score_weight', score_weight),
                        ('gate', gate)):
        if value is not None and not (isinstance(value, Tensor)
                                      and value.is_floating_point()):
            raise ValueError(f"Expected '{name}' as a floating-point "
                             f"tensor (got {describe(value)})")
    if x.dim() != 2 or score_weight.dim() != 2 or (
            score_weight.size(1) != x.size(1)):
        raise ValueError(f"Expected 'x' [N, F] and 'score_weight' [H, F] "
                         f"(got {list(x.shape)} and "
                         f"{list(score_weight.shape)})")
    check_inputs(x, x.size(1), -2, index, None, None, ptr)
    heads = score_weight.size(0)
    if gate is not None and (gate.shape != (x.size(0), heads)
                             or gate.dtype != x.dtype):
        raise ValueError(f"Expected a {x.dtype} 'gate' of shape "
                         f"[{x.size(0)}, {heads}] (got {gate.dtype} "
                         f"{list(gate.shape)})")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) \
            or not 0.0 <= dropout < 1.0:
        raise ValueError(f"'dropout' must be in [0, 1) (got {dropout!r})")
    if residual not in (None, 'sum', 'mean', 'max'):
        raise ValueError(f"'residual' must be 'sum', 'mean', 'max' or None "
                         f"(got {residual!r})")
    if dim_size is None:
        dim_size = infer_dim_size(index, ptr)
    if index is None and ptr is None:
        index = x.new_zeros(x.size(0), dtype=torch.long)
    if readable(index, ptr):  # Eager, or a torch.func transform of x.
        check_batch(index, ptr, x.size(0), dim_size)
    elif torch.compiler.is_compiling():  # An assertion in the graph.
        assert_agree(index, ptr, x.size(0))
    core = pool(x, score_weight, index, ptr, dim_size, dropout=dropout,
                gate=None if gate is None else (lambda kept: gate),
                residual=residual)
    out = (core.pooled, core.alpha, core.weight_sum)
    return out if residual is None else (*out, core.res)

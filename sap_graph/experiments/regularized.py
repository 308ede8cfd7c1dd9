r"""SAP with the attention regularisers of the training harness
(``sap-graph train --diversity/--entropy``): the layer keeps no loss of
its own; :class:`RegularizedSAP` keeps one per training forward, and the
training loop adds :func:`aux_loss` of the model to the task loss.
"""
from __future__ import annotations

import sys
from numbers import Real
from typing import Any, Optional, Tuple

import torch
from torch import Tensor

from sap_graph.nn.aggr import SAPAggregation
from sap_graph.nn.checks import node_dimension
from sap_graph.ops.layout import flat_batch
from sap_graph.ops.padded import lengths_to_mask
from sap_graph.regularizers import weighted_penalty


class RegularizedSAP(SAPAggregation):
    r""":class:`~sap_graph.SAPAggregation` whose training forwards keep
    :math:`\lambda_d \, \mathrm{diversity\_penalty}(\alpha) +
    \lambda_e \, \mathrm{attention\_entropy}(\alpha)` as
    :obj:`aux_loss`, which the training loop adds to the task loss
    (:func:`aux_loss`): the regularisers are plain functions of
    the attention weights (:mod:`sap_graph.regularizers`), added here by
    the harness (``sap-graph train --diversity/--entropy``), not by the
    layer. Parameters and state dict are those of the layer.

    Args:
        in_channels (int): Input width, as for the layer.
        out_channels (int, optional): Value width, as for the layer.
        diversity (float): Weight :math:`\lambda_d`.
        entropy (float): Weight :math:`\lambda_e`.
        **kwargs: Options of :class:`~sap_graph.SAPAggregation`.
    """

    def __init__(self, in_channels: int, out_channels: Optional[int] = None,
                 *, diversity: float = 0.0, entropy: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, **kwargs)
        for name, value in (('diversity', diversity), ('entropy', entropy)):
            if isinstance(value, bool) or not isinstance(value, Real) or (
                    not abs(value) <= sys.float_info.max):
                raise ValueError(f"'{name}' must be a finite number (got "
                                 f"{value!r})")
        self.diversity_weight = float(diversity)
        self.entropy_weight = float(entropy)

    def forward(self, x: Tensor, index: Optional[Tensor] = None,
                ptr: Optional[Tensor] = None, dim_size: Optional[int] = None,
                dim: int = -2, **kwargs: Any) -> Any:
        if dim_size is None:  # Called as forward(): the call sets it.
            return self(x, index, ptr, None, dim, **kwargs)
        weights = kwargs.pop('return_attention_weights', False)
        out, alpha = super().forward(x, index, ptr, dim_size, dim,
                                     return_attention_weights=True, **kwargs)
        self.aux_loss = None
        if self.training:
            nodes_last, mask = alpha, kwargs.get('mask')
            moved = node_dimension(x, dim)
            if moved is not None:  # The layer's layout: nodes at -2.
                nodes_last = alpha.movedim(moved, -2)
                mask = None if mask is None else mask.movedim(moved, -1)
            kept, sets, num_sets = _flat_sets(
                nodes_last, index, ptr, dim_size, mask, kwargs.get('lengths'))
            self.aux_loss = weighted_penalty(kept, sets, num_sets,
                                             self.diversity_weight,
                                             self.entropy_weight)
        return (out, alpha) if weights else out

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f', diversity={self.diversity_weight}, '
                f'entropy={self.entropy_weight})')


def _flat_sets(alpha: Tensor, index: Optional[Tensor],
               ptr: Optional[Tensor], dim_size: int, mask: Optional[Tensor],
               lengths: Optional[Tensor]) -> Tuple[Tensor, Tensor, int]:
    # The weights [*, N, H] of any call form as the layer lays out its
    # features (ops.layout.flat_batch): the kept nodes' weights [M, H],
    # their set (leading position c, set b: set c * dim_size + b; a padded
    # row is one set) and the number of sets; a set whose nodes are all
    # masked is empty.
    num_nodes = alpha.size(-2)
    if index is None and ptr is None:  # One set per leading position.
        index = torch.zeros(num_nodes, dtype=torch.long, device=alpha.device)
    if lengths is not None:
        mask = lengths_to_mask(lengths, num_nodes)
    kept, sets, _, num_sets = flat_batch(alpha, index, ptr, dim_size, mask)
    return kept, sets, num_sets


def aux_loss(model: torch.nn.Module) -> Optional[Tensor]:
    r"""Sums the :obj:`aux_loss` tensors that submodules (a
    :class:`RegularizedSAP`) kept in their last training forward, or
    :obj:`None` when there are none. The training loop adds it to the task
    loss."""
    total: Optional[Tensor] = None
    for module in model.modules():
        value = getattr(module, 'aux_loss', None)
        if isinstance(value, Tensor):
            total = value if total is None else total + value
    return total


__all__ = ['RegularizedSAP', 'aux_loss']

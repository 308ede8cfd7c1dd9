r"""A registry of graph readouts (global pooling operators).

Every readout is a :class:`torch_geometric.nn.aggr.Aggregation` and is
resolved together with the width of its output, so that the layer after it
never hard-codes a size:

.. code-block:: python

    from sap_graph.experiments.readouts import resolve_readout

    readout, width = resolve_readout('sap', 64, heads=4)   # width == 64
    readout, width = resolve_readout('sap', 64, heads=4, concat=True)  # 256
    readout, width = resolve_readout('set2set', 64)        # width == 128
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Linear, ReLU, Sequential
from torch_geometric.nn import aggr as pyg_aggr
from torch_geometric.nn.aggr import Aggregation

from sap_graph.nn.aggr import SAPAggregation
from sap_graph.ops.torch import index_from_ptr
from sap_graph.regularizers import weighted_penalty


class UnknownReadoutError(ValueError):
    r"""Raised for a readout name that is not in the registry."""


@dataclass(frozen=True)
class ReadoutSpec:
    r"""How to build one registered readout.

    Args:
        build (callable): :obj:`build(channels, **kwargs)` returns the
            :class:`Aggregation` and the width of its output.
        params (frozenset): Keyword arguments :obj:`build` accepts.
    """
    build: Callable[..., Tuple[Aggregation, int]]
    params: FrozenSet[str]


def _simple(cls: type) -> Callable[..., Tuple[Aggregation, int]]:
    def build(channels: int) -> Tuple[Aggregation, int]:
        return cls(), channels

    return build


def _attention(channels: int) -> Tuple[Aggregation, int]:
    gate_nn = Sequential(Linear(channels, channels), ReLU(),
                         Linear(channels, 1))
    return pyg_aggr.AttentionalAggregation(gate_nn), channels


def _set2set(channels: int,
             processing_steps: int = 2) -> Tuple[Aggregation, int]:
    module = pyg_aggr.Set2Set(channels, processing_steps=processing_steps)
    return module, 2 * channels


def _set_transformer(channels: int, heads: int = 1, num_seed_points: int = 1,
                     concat: bool = True, layer_norm: bool = False,
                     dropout: float = 0.0) -> Tuple[Aggregation, int]:
    module = pyg_aggr.SetTransformerAggregation(
        channels, num_seed_points=num_seed_points, heads=heads, concat=concat,
        layer_norm=layer_norm, dropout=dropout)
    width = num_seed_points * channels if concat else channels
    return module, width


def _gmt(channels: int, heads: int = 1, k: int = 4,
         layer_norm: bool = False,
         dropout: float = 0.0) -> Tuple[Aggregation, int]:
    module = pyg_aggr.GraphMultisetTransformer(
        channels, k=k, heads=heads, layer_norm=layer_norm, dropout=dropout)
    return module, channels


def _sort(channels: int, k: int = 10) -> Tuple[Aggregation, int]:
    return pyg_aggr.SortAggregation(k=k), k * channels


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
        diversity (float): Weight :math:`\lambda_d`.
        entropy (float): Weight :math:`\lambda_e`.
        **kwargs: Options of :class:`~sap_graph.SAPAggregation`.
    """

    def __init__(self, in_channels: int, diversity: float = 0.0,
                 entropy: float = 0.0, **kwargs: Any) -> None:
        super().__init__(in_channels, **kwargs)
        self.diversity_weight = float(diversity)
        self.entropy_weight = float(entropy)

    def forward(self, x: Tensor, index: Optional[Tensor] = None,
                ptr: Optional[Tensor] = None, dim_size: Optional[int] = None,
                dim: int = -2, **kwargs: Any) -> Any:
        weights = kwargs.pop('return_attention_weights', False)
        out, alpha = super().forward(x, index, ptr, dim_size, dim,
                                     return_attention_weights=True, **kwargs)
        self.aux_loss = None
        if self.training and x.dim() == 2:
            assert dim_size is not None
            if index is None:
                index = index_from_ptr(ptr, x.size(0))
            self.aux_loss = weighted_penalty(alpha, index, dim_size,
                                             self.diversity_weight,
                                             self.entropy_weight)
        return (out, alpha) if weights else out

    def __repr__(self) -> str:
        return (super().__repr__()[:-1] +
                f', diversity={self.diversity_weight}, '
                f'entropy={self.entropy_weight})')


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


def _sap(channels: int, **kwargs: Any) -> Tuple[Aggregation, int]:
    if kwargs.get('diversity') or kwargs.get('entropy'):
        module: SAPAggregation = RegularizedSAP(channels, **kwargs)
    else:
        kwargs.pop('diversity', None)
        kwargs.pop('entropy', None)
        module = SAPAggregation(channels, **kwargs)
    return module, module.output_channels


READOUTS: Dict[str, ReadoutSpec] = {
    # Sum, mean and element-wise max of the node embeddings.
    'sum': ReadoutSpec(_simple(pyg_aggr.SumAggregation), frozenset()),
    'mean': ReadoutSpec(_simple(pyg_aggr.MeanAggregation), frozenset()),
    'max': ReadoutSpec(_simple(pyg_aggr.MaxAggregation), frozenset()),
    # PyG AttentionalAggregation (one gate, Li et al. 2016).
    'attention': ReadoutSpec(_attention, frozenset()),
    # PyG Set2Set (LSTM, 2 steps), width 2 * channels.
    'set2set': ReadoutSpec(_set2set, frozenset({'processing_steps'})),
    # PyG SetTransformerAggregation (Lee et al. 2019).
    'set_transformer': ReadoutSpec(
        _set_transformer,
        frozenset({'heads', 'num_seed_points', 'concat', 'layer_norm',
                   'dropout'})),
    # PyG GraphMultisetTransformer (Baek et al. 2021).
    'gmt': ReadoutSpec(
        _gmt, frozenset({'heads', 'k', 'layer_norm', 'dropout'})),
    # PyG SortAggregation (DGCNN top-k), width k * channels.
    'sort': ReadoutSpec(_sort, frozenset({'k'})),
    # sap_graph's SAPAggregation (multi-head self-attention pooling).
    'sap': ReadoutSpec(
        _sap,
        frozenset({'heads', 'concat', 'out_channels', 'key_channels',
                   'dropout', 'temperature', 'learn_temperature', 'gated',
                   'residual', 'query_init', 'size_scaler', 'rezero',
                   'diversity', 'entropy'})),
}


def readout_params(name: str) -> FrozenSet[str]:
    r"""Returns the keyword arguments the readout :obj:`name` accepts."""
    return _spec(name).params


def _spec(name: str) -> ReadoutSpec:
    key = name.lower().replace('-', '_')
    if key not in READOUTS:
        raise UnknownReadoutError(
            f"Unknown readout '{name}' (expected one of "
            f"{', '.join(READOUTS)}, or an 'Aggregation' instance)")
    return READOUTS[key]


def readout_output_channels(module: Aggregation, channels: int) -> int:
    r"""Returns the output width of a readout module instance.

    Reads :obj:`output_channels`, then :obj:`out_channels`; when neither
    exists, runs the module once on a tiny input, and falls back to
    :obj:`channels` if that fails.

    Args:
        module (Aggregation): The readout.
        channels (int): Width of the node embeddings it pools.
    """
    for attr in ('output_channels', 'out_channels'):
        value = getattr(module, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    training = module.training
    try:
        module.eval()
        param = next(iter(module.parameters()), None)
        device = param.device if param is not None else None
        x = torch.zeros(2, channels, device=device)
        index = torch.zeros(2, dtype=torch.long, device=device)
        with torch.no_grad():
            out = module(x, index, dim_size=1)
        return int(out.size(-1))
    except Exception:  # Not runnable alone: assume a width-preserving op.
        return channels
    finally:
        module.train(training)


def resolve_readout(
    readout: Union[str, Aggregation],
    channels: int,
    **kwargs: Any,
) -> Tuple[Aggregation, int]:
    r"""Builds a readout and returns it with its output width.

    Args:
        readout (str or Aggregation): A registered name (see
            :obj:`READOUTS`: :obj:`'sum'`, :obj:`'mean'`, :obj:`'max'`,
            :obj:`'attention'`, :obj:`'set2set'`, :obj:`'set_transformer'`,
            :obj:`'gmt'`, :obj:`'sort'`, :obj:`'sap'`) or an
            :class:`Aggregation` instance, which is returned as is.
        channels (int): Width of the node embeddings to pool.
        **kwargs (optional): Options of the named readout, *e.g.*
            :obj:`heads` and :obj:`concat` for :obj:`'sap'`. Options the
            readout does not take raise a :class:`ValueError`.
    """
    if isinstance(readout, Aggregation):
        if kwargs:
            raise ValueError(f"Readout options {sorted(kwargs)} cannot be "
                             f"applied to an 'Aggregation' instance")
        return readout, readout_output_channels(readout, channels)
    if not isinstance(readout, str):
        raise UnknownReadoutError(
            f"Expected a readout name or an 'Aggregation' instance (got "
            f"'{type(readout).__name__}')")
    spec = _spec(readout)
    unknown = set(kwargs) - spec.params
    if unknown:
        allowed = ', '.join(sorted(spec.params)) or 'none'
        raise ValueError(f"Readout '{readout}' does not take "
                         f"{sorted(unknown)} (it takes: {allowed})")
    return spec.build(channels, **kwargs)

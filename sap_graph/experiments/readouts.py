r"""A registry of graph readouts (global pooling operators).

Every readout is a :class:`torch_geometric.nn.aggr.Aggregation` and is
resolved together with the width of its output, so that the layer after it
never hard-codes a size:

.. code-block:: python

    from sap_graph.experiments.readouts import resolve_readout

    readout, width = resolve_readout('sap', 64, heads=4)   # width == 64
    readout, width = resolve_readout('sap', 64, heads=4, concat=True)  # 256
    readout, width = resolve_readout('set2set', 64)        # width == 128

Every option has a type in :obj:`READOUTS` (the checks of
:mod:`~sap_graph.experiments.option_types`: a positive integer, a boolean,
a probability, ...), checked before the readout is built, so that
:obj:`{"k": 0}` or :obj:`{"rezero": "false"}` is an error, not a readout
that means something else. :func:`readout_size` counts a readout's
parameters without allocating them.
"""
from __future__ import annotations

import inspect
import itertools
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, Tuple, Union

import torch
from torch.nn import Linear, ReLU, Sequential
from torch_geometric.nn import aggr as pyg_aggr
from torch_geometric.nn.aggr import Aggregation

from sap_graph.experiments.option_types import (
    Check,
    flag,
    number,
    one_of,
    optional,
    positive,
    probability,
    size,
)
from sap_graph.experiments.regularized import RegularizedSAP
from sap_graph.nn.aggr import SAPAggregation


class UnknownReadoutError(ValueError):
    r"""Raised for a readout name that is not in the registry."""


@dataclass(frozen=True)
class ReadoutSpec:
    r"""How to build one registered readout.

    Args:
        build (callable): :obj:`build(channels, **kwargs)` returns the
            :class:`Aggregation` and the width of its output.
        options (dict): The keyword arguments :obj:`build` accepts, each
            with its type: a check that raises a :class:`ValueError` for
            a value of another type (:func:`size`, :func:`flag`, ...).
    """
    build: Callable[..., Tuple[Aggregation, int]]
    options: Dict[str, Check]
    #: Callables whose signatures give the defaults of options that
    #: :obj:`build` passes on (the layer's, for :obj:`'sap'`).
    defaults_from: Tuple[Callable[..., Any], ...] = ()

    @property
    def params(self) -> FrozenSet[str]:
        r"""The names of the options."""
        return frozenset(self.options)

    def check(self, name: str, kwargs: Dict[str, Any]) -> None:
        r"""Raises a :class:`ValueError` for an option the readout does
        not take or a value not of the option's type."""
        unknown = set(kwargs) - self.params
        if unknown:
            allowed = ', '.join(sorted(self.params)) or 'none'
            raise ValueError(f"Readout '{name}' does not take "
                             f"{sorted(unknown)} (it takes: {allowed})")
        for key, value in kwargs.items():
            self.options[key](key, value)


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


def _divides(heads: int, channels: int) -> None:
    if channels % heads:
        raise ValueError(f"'heads' ({heads}) must divide the width of the "
                         f"node embeddings ({channels})")


def _set_transformer(channels: int, heads: int = 1, num_seed_points: int = 1,
                     concat: bool = True, layer_norm: bool = False,
                     dropout: float = 0.0) -> Tuple[Aggregation, int]:
    _divides(heads, channels)
    module = pyg_aggr.SetTransformerAggregation(
        channels, num_seed_points=num_seed_points, heads=heads, concat=concat,
        layer_norm=layer_norm, dropout=dropout)
    width = num_seed_points * channels if concat else channels
    return module, width


def _gmt(channels: int, heads: int = 1, k: int = 4,
         layer_norm: bool = False,
         dropout: float = 0.0) -> Tuple[Aggregation, int]:
    _divides(heads, channels)
    module = pyg_aggr.GraphMultisetTransformer(
        channels, k=k, heads=heads, layer_norm=layer_norm, dropout=dropout)
    return module, channels


def _sort(channels: int, k: int = 10) -> Tuple[Aggregation, int]:
    return pyg_aggr.SortAggregation(k=k), k * channels



def _sap(channels: int, freeze_queries: bool = False,
         **kwargs: Any) -> Tuple[Aggregation, int]:
    if kwargs.get('diversity') or kwargs.get('entropy'):
        module: SAPAggregation = RegularizedSAP(channels, **kwargs)
    else:
        kwargs.pop('diversity', None)
        kwargs.pop('entropy', None)
        module = SAPAggregation(channels, **kwargs)
    if freeze_queries:
        # The control of "does the attention pay?": the queries keep their
        # initial value (zero by default, so the weights stay uniform and
        # the readout is the mean of the values plus its residual).
        module.query.requires_grad_(False)
    return module, module.output_channels


#: The registered readouts and the type of every option they take.
READOUTS: Dict[str, ReadoutSpec] = {
    # Sum, mean and element-wise max of the node embeddings.
    'sum': ReadoutSpec(_simple(pyg_aggr.SumAggregation), {}),
    'mean': ReadoutSpec(_simple(pyg_aggr.MeanAggregation), {}),
    'max': ReadoutSpec(_simple(pyg_aggr.MaxAggregation), {}),
    # PyG AttentionalAggregation (one gate, Li et al. 2016).
    'attention': ReadoutSpec(_attention, {}),
    # PyG Set2Set (LSTM, 2 steps), width 2 * channels.
    'set2set': ReadoutSpec(_set2set, {'processing_steps': size}),
    # PyG SetTransformerAggregation (Lee et al. 2019).
    'set_transformer': ReadoutSpec(_set_transformer, {
        'heads': size, 'num_seed_points': size, 'concat': flag,
        'layer_norm': flag, 'dropout': probability}),
    # PyG GraphMultisetTransformer (Baek et al. 2021).
    'gmt': ReadoutSpec(_gmt, {
        'heads': size, 'k': size, 'layer_norm': flag,
        'dropout': probability}),
    # PyG SortAggregation (DGCNN top-k), width k * channels.
    'sort': ReadoutSpec(_sort, {'k': size}),
    # sap_graph's SAPAggregation (multi-head self-attention pooling).
    'sap': ReadoutSpec(_sap, {
        'heads': size, 'concat': flag, 'out_channels': optional(size),
        'key_channels': optional(size), 'dropout': probability,
        'temperature': positive, 'learn_temperature': flag, 'gated': flag,
        'residual': one_of(None, 'sum', 'mean', 'max'),
        'query_init': one_of('zeros', 'normal'),
        'size_scaler': one_of(None, 'log'), 'rezero': flag,
        'diversity': number, 'entropy': number, 'freeze_queries': flag},
        (SAPAggregation.__init__, RegularizedSAP.__init__)),
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


def readout_options(readout: str, **kwargs: Any) -> Dict[str, Any]:
    r"""Every option of the registered readout :obj:`readout` with the
    value it gets: :obj:`kwargs`, and the current default of each option
    not given. Two configurations that build the same readout give the
    same options, and a changed default changes them (the comparison
    engine keys its cache of finished runs on them).

    Raises:
        ValueError: For an option the readout does not take or a value not
            of the option's type.
    """
    spec = _spec(readout)
    spec.check(readout, kwargs)
    out: Dict[str, Any] = {}
    for fn in (spec.build, *spec.defaults_from):
        for p in inspect.signature(fn).parameters.values():
            if p.name in spec.options and p.default is not p.empty:
                out.setdefault(p.name, p.default)
    out.update(kwargs)
    return dict(sorted(out.items()))


def readout_size(readout: str, channels: int,
                 **kwargs: Any) -> Tuple[int, int]:
    r"""Returns the number of parameters (buffers included) and the
    output width of a named readout without allocating it: it is built on
    the :obj:`meta` device, so that a readout too large for memory is
    found before it is built for real.

    Args:
        readout (str): A registered name.
        channels (int): Width of the node embeddings to pool.
        **kwargs (optional): Options of the readout, as for
            :func:`resolve_readout`.
    """
    with torch.device('meta'):
        module, width = resolve_readout(readout, channels, **kwargs)
    tensors = itertools.chain(module.parameters(), module.buffers())
    return sum(t.numel() for t in tensors), width


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
            readout does not take, and values not of the option's type
            (see :obj:`READOUTS`), raise a :class:`ValueError`.
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
    spec.check(readout, kwargs)
    return spec.build(channels, **kwargs)

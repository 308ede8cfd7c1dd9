r"""The message passing layers of :class:`~sap_graph.experiments.models.
GraphClassifier` beyond PyG's own: the GIN MLP and OGB's edge-aware GIN
layer with its bond encoder."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, ReLU, Sequential
from torch_geometric.nn import GINEConv


def require_ogb_encoders() -> Any:
    r"""OGB's :mod:`ogb.graphproppred.mol_encoder`, or an
    :class:`ImportError` naming the extra to install."""
    try:
        from ogb.graphproppred import mol_encoder
    except ImportError as e:  # pragma: no cover - depends on the env.
        raise ImportError(
            "The OGB atom/bond encoders need the 'ogb' package: "
            "pip install 'sap-graph[ogb]' (or pip install ogb)") from e
    return mol_encoder


def gin_mlp(in_channels: int, hidden_channels: int,
            out_channels: int) -> Sequential:
    r"""The two-layer MLP of a GIN layer, without biases."""
    # Both Linear layers feed a BatchNorm (the second one the norm after the
    # convolution), which cancels any bias: a bias there only learns from
    # rounding noise, which Adam rescales into real, run-dependent steps.
    return Sequential(
        Linear(in_channels, hidden_channels, bias=False),
        BatchNorm1d(hidden_channels),
        ReLU(),
        Linear(hidden_channels, out_channels, bias=False),
    )


class BondGINEConv(Module):
    r"""The edge-aware GIN layer of the OGB reference models
    (`ogb/examples/graphproppred/mol/conv.py`), *i.e.* a
    :class:`~torch_geometric.nn.conv.GINEConv` with a learnable
    :math:`\epsilon` whose categorical bond features are embedded by a
    layer-specific OGB :class:`BondEncoder`:

    .. math::
        \mathbf{x}^{\prime}_i = \mathrm{MLP} \Big( (1 + \epsilon)
        \mathbf{x}_i + \sum_{j \in \mathcal{N}(i)} \mathrm{ReLU}
        (\mathbf{x}_j + \mathrm{BondEncoder}(\mathbf{e}_{j,i})) \Big)

    Args:
        channels (int): Width of the node embeddings.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        mol_encoder = require_ogb_encoders()
        self.channels = channels
        self.bond_encoder = mol_encoder.BondEncoder(emb_dim=channels)
        self.conv = GINEConv(gin_mlp(channels, 2 * channels, channels),
                             train_eps=True)

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        for emb in self.bond_encoder.bond_embedding_list:
            torch.nn.init.xavier_uniform_(emb.weight.data)
        self.conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor) -> Tensor:
        return self.conv(x, edge_index, self.bond_encoder(edge_attr))

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.channels})'

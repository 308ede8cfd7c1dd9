r"""Graph classification models with a pluggable readout."""
from __future__ import annotations

import copy
from typing import Any, Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, Linear, Module, ModuleList
from torch_geometric.nn import GCNConv, GINConv, GINEConv, JumpingKnowledge
from torch_geometric.nn.aggr import Aggregation

from sap_graph.experiments.convs import (
    BondGINEConv,
    gin_mlp,
    require_ogb_encoders,
)
from sap_graph.experiments.errors import one_line
from sap_graph.experiments.readouts import resolve_readout
from sap_graph.nn.checks import check_batch
from sap_graph.ops.layout import capturing, index_from_ptr

CONVS = ('gin', 'gcn', 'gine')
JK_MODES = ('last', 'cat', 'max')
NODE_ENCODERS = (None, 'atom')
EDGE_ENCODERS = (None, 'bond')


class GraphClassifier(Module):
    r"""A message passing graph classifier: node encoder, :obj:`num_layers`
    GIN (`"How Powerful are Graph Neural Networks?"
    <https://arxiv.org/abs/1810.00826>`_), GCN or GINE layers each followed
    by batch normalisation and ReLU, an optional jumping knowledge
    combination, a readout from :mod:`sap_graph.experiments.readouts` and a
    two-layer
    MLP head:

    .. math::
        \mathbf{h}_G = \mathrm{readout}\big(\{\mathbf{h}^{(L)}_i :
        i \in G\}\big), \qquad
        \hat{\mathbf{y}}_G = \mathbf{W}_2 \, \mathrm{dropout}(\mathrm{ReLU}
        (\mathbf{W}_1 \mathbf{h}_G)).

    The head reads the width of :math:`\mathbf{h}_G` from the readout, so
    any readout (or :class:`Aggregation` instance) fits.

    With :obj:`node_encoder='atom'`, :obj:`conv='gine'` and
    :obj:`edge_encoder='bond'` it is the GIN of the OGB molecule reference
    models (OGB's :class:`AtomEncoder`/:class:`BondEncoder` for
    categorical atom and bond features).

    Args:
        in_channels (int): Number of node features (ignored with
            :obj:`node_encoder='atom'`).
        hidden_channels (int): Width of the node embeddings.
        out_channels (int): Number of classes (or tasks).
        num_layers (int, optional): Number of message passing layers.
            (default: :obj:`5`)
        conv (str, optional): :obj:`'gin'`, :obj:`'gcn'` or :obj:`'gine'`
            (GIN with edge features, needs :obj:`edge_dim` or
            :obj:`edge_encoder='bond'`). (default: :obj:`'gin'`)
        readout (str or Aggregation, optional): Readout name or instance.
            (default: :obj:`'sap'`)
        readout_kwargs (dict, optional): Options of the named readout,
            *e.g.* :obj:`{'heads': 4}`. (default: :obj:`None`)
        dropout (float, optional): Dropout before the last linear layer.
            (default: :obj:`0.5`)
        layer_dropout (float, optional): Dropout after every message
            passing layer (OGB's :obj:`drop_ratio`). (default: :obj:`0.0`)
        jk (str, optional): Jumping knowledge mode, :obj:`'last'` (none),
            :obj:`'cat'` or :obj:`'max'`. (default: :obj:`'last'`)
        edge_dim (int, optional): Number of edge features for
            :obj:`conv='gine'`. (default: :obj:`None`)
        node_encoder (str, optional): :obj:`'atom'` embeds categorical
            atom features with OGB's :class:`AtomEncoder`.
            (default: :obj:`None`)
        edge_encoder (str, optional): :obj:`'bond'` embeds categorical bond
            features with OGB's :class:`BondEncoder` in every layer.
            (default: :obj:`None`)
        train_eps (bool, optional): Learnable :math:`\epsilon` in GIN.
            (default: :obj:`False`)
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        out_channels: int,
        num_layers: int = 5,
        conv: str = 'gin',
        readout: Union[str, Aggregation] = 'sap',
        readout_kwargs: Optional[Dict[str, Any]] = None,
        dropout: float = 0.5,
        layer_dropout: float = 0.0,
        jk: str = 'last',
        edge_dim: Optional[int] = None,
        node_encoder: Optional[str] = None,
        edge_encoder: Optional[str] = None,
        train_eps: bool = False,
    ) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"Unknown conv '{conv}' (expected one of "
                             f"{', '.join(CONVS)})")
        if jk not in JK_MODES:
            raise ValueError(f"Unknown jk mode '{jk}' (expected one of "
                             f"{', '.join(JK_MODES)})")
        if node_encoder not in NODE_ENCODERS:
            raise ValueError(f"Unknown node_encoder '{node_encoder}' "
                             f"(expected None or 'atom')")
        if edge_encoder not in EDGE_ENCODERS:
            raise ValueError(f"Unknown edge_encoder '{edge_encoder}' "
                             f"(expected None or 'bond')")
        if edge_encoder is not None and conv != 'gine':
            raise ValueError(f"edge_encoder='{edge_encoder}' needs "
                             f"conv='gine' (got conv='{conv}')")
        if conv == 'gine' and edge_encoder is None and not edge_dim:
            raise ValueError("conv='gine' needs 'edge_dim' (the number of "
                             "edge features) or edge_encoder='bond'")
        if num_layers < 1:
            raise ValueError(f"'num_layers' must be positive "
                             f"(got {num_layers})")

        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.num_layers = num_layers
        self.conv_type = conv
        self.dropout = dropout
        self.layer_dropout = layer_dropout
        self.jk_mode = jk
        self.edge_dim = edge_dim
        self.node_encoder_type = node_encoder
        self.edge_encoder_type = edge_encoder
        self.train_eps = train_eps
        self.uses_edge_attr = conv == 'gine'
        self.config: Optional[Dict[str, Any]] = None
        if isinstance(readout, str):
            self.config = dict(
                in_channels=in_channels, hidden_channels=hidden_channels,
                out_channels=out_channels, num_layers=num_layers, conv=conv,
                readout=readout, readout_kwargs=dict(readout_kwargs or {}),
                dropout=dropout, layer_dropout=layer_dropout, jk=jk,
                edge_dim=edge_dim, node_encoder=node_encoder,
                edge_encoder=edge_encoder, train_eps=train_eps)

        self.node_encoder: Optional[Module] = None
        if node_encoder == 'atom':
            mol_encoder = require_ogb_encoders()
            self.node_encoder = mol_encoder.AtomEncoder(emb_dim=hidden_channels)
            in_channels = hidden_channels

        self.convs = ModuleList()
        self.norms = ModuleList()
        for layer in range(num_layers):
            channels = in_channels if layer == 0 else hidden_channels
            self.convs.append(self._make_conv(channels))
            self.norms.append(BatchNorm1d(hidden_channels))

        self.jk: Optional[JumpingKnowledge] = None
        readout_in = hidden_channels
        if jk == 'cat':
            self.jk = JumpingKnowledge('cat')
            readout_in = num_layers * hidden_channels
        elif jk == 'max':
            self.jk = JumpingKnowledge('max')

        self.readout, self.readout_channels = resolve_readout(
            readout, readout_in, **(readout_kwargs or {}))
        self.lin1 = Linear(self.readout_channels, hidden_channels)
        self.lin2 = Linear(hidden_channels, out_channels)

        self.reset_parameters()

    def _make_conv(self, channels: int) -> Module:
        hidden = self.hidden_channels
        if self.conv_type == 'gcn':
            return GCNConv(channels, hidden, bias=False)  # BatchNorm next.
        if self.conv_type == 'gin':
            return GINConv(gin_mlp(channels, hidden, hidden),
                           train_eps=self.train_eps)
        if self.edge_encoder_type == 'bond':
            return BondGINEConv(channels)
        return GINEConv(gin_mlp(channels, hidden, hidden),
                        train_eps=self.train_eps, edge_dim=self.edge_dim)

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        if self.node_encoder is not None:
            for emb in self.node_encoder.atom_embedding_list:
                torch.nn.init.xavier_uniform_(emb.weight.data)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            conv.reset_parameters()
            norm.reset_parameters()
        if hasattr(self.readout, 'reset_parameters'):
            self.readout.reset_parameters()
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def node_embeddings(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Optional[Tensor] = None,
    ) -> Tensor:
        r"""Returns the node embeddings that the readout pools, *i.e.* the
        output of the message passing layers after the jumping knowledge
        combination: :obj:`[num_nodes, hidden_channels]`, or
        :obj:`[num_nodes, num_layers * hidden_channels]` with
        :obj:`jk='cat'`.

        Args:
            x (torch.Tensor): Node features.
            edge_index (torch.Tensor): Edge indices :obj:`[2, E]`.
            edge_attr (torch.Tensor, optional): Edge features, needed by
                :obj:`conv='gine'`. (default: :obj:`None`)
        """
        if self.uses_edge_attr and edge_attr is None:
            raise ValueError(f"conv='{self.conv_type}' needs 'edge_attr'")
        if self.node_encoder is not None:
            x = self.node_encoder(x)
        elif not x.is_floating_point():
            x = x.float()
        if edge_attr is not None and self.edge_encoder_type is None:
            edge_attr = edge_attr.float()

        xs: List[Tensor] = []
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if self.uses_edge_attr:
                x = conv(x, edge_index, edge_attr)
            else:
                x = conv(x, edge_index)
            x = F.relu(norm(x))
            x = F.dropout(x, p=self.layer_dropout, training=self.training)
            xs.append(x)
        return self.jk(xs) if self.jk is not None else xs[-1]

    def embed(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        edge_attr: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        num_graphs: Optional[int] = None,
    ) -> Tensor:
        r"""Returns the graph embeddings :obj:`[num_graphs,
        readout_channels]` (the readout output, before the head)."""
        x = self.node_embeddings(x, edge_index, edge_attr)

        if batch is None and ptr is not None:
            # A sorted batch given by its CSR pointer alone.
            if not capturing():
                check_batch(None, ptr, x.size(0), ptr.numel() - 1)
            batch = index_from_ptr(ptr.to(torch.long), x.size(0))
            if num_graphs is None:
                num_graphs = ptr.numel() - 1
        if batch is None:
            batch = x.new_zeros(x.size(0), dtype=torch.long)
            num_graphs = 1
        if num_graphs is None:
            num_graphs = (ptr.numel() - 1 if ptr is not None else
                          int(batch.max()) + 1 if batch.numel() > 0 else 0)
        return self.readout(x, batch, ptr=ptr, dim_size=num_graphs)

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor,
        batch: Optional[Tensor] = None,
        edge_attr: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        num_graphs: Optional[int] = None,
    ) -> Tensor:
        r"""Returns the logits :obj:`[num_graphs, out_channels]`.

        Args:
            x (torch.Tensor): Node features.
            edge_index (torch.Tensor): Edge indices :obj:`[2, E]`.
            batch (torch.Tensor, optional): Graph of each node, sorted as
                in PyG batches. (default: :obj:`None`, *i.e.* the graphs
                of :obj:`ptr`, else one graph)
            edge_attr (torch.Tensor, optional): Edge features, needed by
                :obj:`conv='gine'`. (default: :obj:`None`)
            ptr (torch.Tensor, optional): CSR boundaries of the batch
                (:obj:`batch.ptr`); alone, it gives the graph of each
                node. (default: :obj:`None`)
            num_graphs (int, optional): Number of graphs; pass it to avoid
                a device sync. (default: :obj:`None`)
        """
        x = self.embed(x, edge_index, batch, edge_attr, ptr, num_graphs)
        x = F.relu(self.lin1(x))
        x = F.dropout(x, p=self.dropout, training=self.training)
        return self.lin2(x)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.hidden_channels}, {self.out_channels}, '
                f'num_layers={self.num_layers}, conv={self.conv_type!r}, '
                f'readout={self.readout}, jk={self.jk_mode!r})')

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> 'GraphClassifier':
        r"""Builds a model from :attr:`config` (plain Python values)."""
        return cls(**copy.deepcopy(config))


def load_checkpoint(path: str,
                    map_location: Union[str, torch.device] = 'cpu'
                    ) -> GraphClassifier:
    r"""Rebuilds the model saved by :obj:`sap-graph train --checkpoint`.

    The file is a dict with :obj:`'state_dict'` and :obj:`'config'`
    (:obj:`'config'['model']` holds the constructor arguments) and loads
    with :obj:`torch.load(path, weights_only=True)` only (see
    :func:`sap_graph.experiments.checkpoint.safe_load`): a missing, truncated or
    tampered file raises
    :class:`~sap_graph.experiments.checkpoint.CheckpointError`,
    and nothing in it is ever executed.

    Args:
        path (str): The checkpoint file.
        map_location (str or torch.device, optional): Where to load the
            weights. (default: :obj:`'cpu'`)
    """
    from sap_graph.experiments.checkpoint import read_checkpoint
    return model_from_checkpoint(read_checkpoint(path, map_location), path)


def model_from_checkpoint(state: Dict[str, Any],
                          path: str = 'checkpoint') -> GraphClassifier:
    r"""Rebuilds the model of a checkpoint already read with
    :func:`~sap_graph.experiments.checkpoint.read_checkpoint` (:obj:`path`
    names it in errors)."""
    from sap_graph.experiments.checkpoint import CheckpointError
    try:
        model = GraphClassifier.from_config(state['config']['model'])
        model.load_state_dict(state['state_dict'])
    except (TypeError, RuntimeError, KeyError) as e:
        raise CheckpointError(f"checkpoint '{path}' does not match its "
                              f"model config ({type(e).__name__}: "
                              f"{one_line(e, 200)})") from None
    model.eval()
    return model

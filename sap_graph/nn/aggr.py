"""Self-attention pooling (SAP) as a PyG :class:`Aggregation`."""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import is_compiling
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.dense.linear import Linear

from sap_graph.nn.functional import (
    check_batch,
    check_conv_width,
    check_dtype,
    check_inputs,
    check_options,
    check_removed,
    kept_batch,
    project_values,
    repeat_batch,
    sap_pool,
    sap_pool_padded,
)


class SAPAggregation(Aggregation):
    r"""Multi-head self-attention pooling with learnable queries, in the
    spirit of the structured self-attentive embedding of `"A Structured
    Self-attentive Sentence Embedding" <https://arxiv.org/abs/1703.03130>`_
    and pooling by multihead attention of `"Set Transformer"
    <https://arxiv.org/abs/1810.00825>`_, as a linear-time readout.

    For every set (graph) :math:`b` with elements (nodes) :math:`i \in b`
    and every head :math:`h`:

    .. math::
        e_{ih} &= \frac{\mathbf{q}_h^{\top} \mathbf{W}^{K}_h
        \mathbf{x}_i}{\sqrt{d_k}}, \qquad
        \alpha_{ih} = \mathrm{softmax}_{i \in b}(e_{ih}),

        \mathbf{z}_{bh} &= \sum_{i \in b} \alpha_{ih}
        (\mathbf{W}^{V}_h \mathbf{x}_i + \mathbf{b}^{V}_h),

    where :math:`\mathbf{q}_h \in \mathbb{R}^{d_k}` is a learnable query,
    :math:`\mathbf{W}^{K}_h` and :math:`\mathbf{W}^{V}_h` are the
    :math:`h`-th row blocks of :obj:`lin_key` and :obj:`lin_value`, and the
    softmax runs over the nodes of graph :math:`b` only. The heads are
    concatenated (:obj:`concat=True`) or averaged.

    Since the weights of a graph sum to one, the value projection runs once
    per graph after pooling and the key projection folds into an
    :math:`F_{in} \times H` score matrix: the cost is :math:`O(N H F_{in})`
    plus :math:`O(B H F_{in} F_{out})`, no :math:`[N, H, F]` tensor is
    allocated, and a graph without nodes yields exactly zero.

    .. note::
        This is a global readout (one vector per graph), not PyG's
        hierarchical top-:math:`k` :class:`~torch_geometric.nn.pool.SAGPooling`.
        The :obj:`index` vector may be unsorted; passing :obj:`ptr` selects
        the CSR path for sorted batches (as produced by PyG's
        :class:`~torch_geometric.loader.DataLoader`).

    .. note::
        Inside a convolution (``SAGEConv(16, 32, aggr=...)``,
        ``MultiAggregation([...], mode='cat')``) PyG expects an output of
        :obj:`in_channels`: use :obj:`concat=False`, or
        :obj:`heads * out_channels == in_channels`; another width fails in
        the convolution's linear layer, after a warning that says so.
        Node features must have the parameters' dtype, except under
        :func:`torch.autocast`.

    Args:
        in_channels (int): Size of each input element :math:`F_{in}`.
        out_channels (int, optional): Value width of one head
            :math:`F_{out}`. (default: :obj:`None`, *i.e.*
            :obj:`in_channels`)
        heads (int, optional): Number of attention heads :math:`H`.
            (default: :obj:`4`)
        concat (bool, optional): If :obj:`True`, head outputs are
            concatenated, else averaged (keeping the width).
            (default: :obj:`False`)
        key_channels (int, optional): Key/query width of one head
            :math:`d_k`. (default: :obj:`None`, *i.e.* :obj:`out_channels`)
        dropout (float, optional): Dropout probability of the normalised
            attention weights, applied in training mode only.
            (default: :obj:`0.0`)
        temperature (float, optional): Softmax temperature :math:`\tau`.
            (default: :obj:`1.0`)
        learn_temperature (bool, optional): Learn :math:`\tau` (as its
            logarithm). (default: :obj:`False`)
        gated (bool, optional): Scale each head's values by a per-node gate
            :math:`\sigma(\mathbf{w}_h^{\top}\mathbf{x}_i + c_h)`.
            (default: :obj:`False`)
        residual (str, optional): Adds :obj:`'sum'`, :obj:`'mean'` or
            :obj:`'max'` pooling of the node features (projected when
            :obj:`output_channels != in_channels`), or nothing (:obj:`None`);
            :obj:`'sum'` makes the readout size-aware. (default: :obj:`'max'`)
        query_init (str, optional): :obj:`'zeros'` (an untrained layer is
            mean pooling of the values) or :obj:`'normal'` (before 0.2).
            (default: :obj:`'zeros'`)
        size_scaler (str, optional): :obj:`'log'` scales the attention
            output by :math:`\log(1 + n_b)`. (default: :obj:`None`)
        rezero (bool, optional): Scales the attention output by a learned
            per-channel :math:`\boldsymbol{\gamma}` initialised to zero
            (ReZero, Bachlechner et al. 2021), so an untrained layer is its
            :obj:`residual` pooling alone; needs a :obj:`residual`.
            (default: :obj:`False`)

    Attributes:
        output_channels (int): Output width (:obj:`heads * out_channels`
            if :obj:`concat` else :obj:`out_channels`).

    Shapes:
        - **input:** node features :math:`(*, |\mathcal{V}|, F_{in})`,
          index :math:`(|\mathcal{V}|)`, pointer :math:`(|\mathcal{G}|+1)`
        - **output:** :math:`(*, |\mathcal{G}|, \text{output\_channels})`,
          and the weights :math:`(*, |\mathcal{V}|, H)` if asked for
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: Optional[int] = None,
        heads: int = 4,
        concat: bool = False,
        key_channels: Optional[int] = None,
        dropout: float = 0.0,
        temperature: float = 1.0,
        learn_temperature: bool = False,
        gated: bool = False,
        residual: Union[str, bool, None] = 'max',
        query_init: str = 'zeros',
        size_scaler: Optional[str] = None,
        rezero: bool = False,
        **removed: float,
    ) -> None:
        super().__init__()
        check_removed(removed)
        check_options(in_channels, out_channels, heads, key_channels,
                      dropout, temperature, residual, query_init,
                      size_scaler, dict(concat=concat,
                                        learn_temperature=learn_temperature,
                                        gated=gated, rezero=rezero))

        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.heads = heads
        self.concat = concat
        self.key_channels = key_channels or self.out_channels
        self.dropout = dropout
        self.output_channels = (heads * self.out_channels
                                if concat else self.out_channels)
        self._width_warned = False  # See check_conv_width.
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.gated = gated
        self.residual = residual
        self.query_init = query_init
        self.size_scaler = size_scaler
        self.rezero = rezero

        self.lin_key = Linear(in_channels, heads * self.key_channels,
                              bias=False, weight_initializer='glorot')
        self.lin_value = Linear(in_channels, heads * self.out_channels,
                                bias=True, weight_initializer='glorot')
        self.query = Parameter(torch.empty(heads, self.key_channels))
        self.log_temperature: Optional[Parameter] = None
        if learn_temperature:
            self.log_temperature = Parameter(torch.empty(()))
        self.lin_gate: Optional[Linear] = None
        if gated:
            self.lin_gate = Linear(in_channels, heads, bias=True,
                                   weight_initializer='glorot')
        self.gamma: Optional[Parameter] = None
        if rezero:
            self.gamma = Parameter(torch.empty(self.output_channels))
        self.lin_residual: Optional[Linear] = None
        if residual is not None and self.output_channels != in_channels:
            self.lin_residual = Linear(in_channels, self.output_channels,
                                       False, weight_initializer='glorot')

        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Resets all learnable parameters of the module."""
        self.lin_key.reset_parameters()
        self.lin_value.reset_parameters()
        if self.query_init == 'zeros':
            torch.nn.init.zeros_(self.query)
        else:
            torch.nn.init.normal_(self.query, std=1.0)
        if self.log_temperature is not None:
            self.log_temperature.data.fill_(math.log(self.temperature))
        if self.lin_gate is not None:
            self.lin_gate.reset_parameters()
        if self.lin_residual is not None:
            self.lin_residual.reset_parameters()
        if self.gamma is not None:
            torch.nn.init.zeros_(self.gamma)

    def score_weight(self) -> Tensor:
        r"""The scores are ``x @ score_weight().t()``: row :math:`h` is
        :math:`\mathbf{q}_h^{\top} \mathbf{W}^{K}_h / (\tau \sqrt{d_k})`."""
        w_key = self.lin_key.weight.view(self.heads, self.key_channels,
                                         self.in_channels)
        w = torch.bmm(self.query.unsqueeze(1), w_key).squeeze(1)
        w = w / math.sqrt(self.key_channels)
        if self.log_temperature is not None:
            return w * torch.exp(-self.log_temperature)
        if self.temperature != 1.0:
            return w / self.temperature
        return w

    def __call__(self, x: Tensor, index: Optional[Tensor] = None,
                 ptr: Optional[Tensor] = None,
                 dim_size: Optional[int] = None, dim: int = -2,
                 **kwargs) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        if index is None and ptr is None and dim_size is None:
            # No batch vector: all elements form one set, also when there
            # are none (one zero row, as for an empty set of a batch). PyG
            # would infer 'dim_size' from an index of zeros (a sync, and 0
            # for no element).
            dim_size = 1
        return super().__call__(x, index, ptr, dim_size, dim, **kwargs)

    def forward(
        self,
        x: Tensor,
        index: Optional[Tensor] = None,
        ptr: Optional[Tensor] = None,
        dim_size: Optional[int] = None,
        dim: int = -2,
        return_attention_weights: bool = False,
        mask: Optional[Tensor] = None,
        lengths: Optional[Tensor] = None,
    ) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        r"""Pools :obj:`x` per set.

        Args:
            x (torch.Tensor): Node features :obj:`[*, N, in_channels]`.
            index (torch.Tensor, optional): Set (graph) of each node
                :obj:`[N]`, not necessarily sorted. (default: :obj:`None`)
            ptr (torch.Tensor, optional): CSR boundaries of a sorted batch
                :obj:`[B + 1]`. With :obj:`index` too, both must describe
                the same batch (checked on the CPU, and on GPUs under
                :func:`torch_geometric.debug`). (default: :obj:`None`)
            dim_size (int, optional): Number of sets :math:`B` (empty sets
                give zero rows); avoids a device sync and graph breaks under
                :func:`torch.compile`. (default: :obj:`None`)
            dim (int, optional): The node dimension, the second-to-last.
                (default: :obj:`-2`)
            return_attention_weights (bool, optional): Also return the
                weights :obj:`[*, N, heads]`. (default: :obj:`False`)
            mask (torch.Tensor, optional): Boolean node mask :obj:`[*, N]`;
                masked nodes get zero weight and skip the residual.
                (default: :obj:`None`)
            lengths (torch.Tensor, optional): Instead of :obj:`mask`, the
                kept leading positions :obj:`[*]` of a padded batch.
                (default: :obj:`None`)

        A padded batch :obj:`[*, L, in_channels]` with :obj:`mask` or
        :obj:`lengths` and no :obj:`index`/:obj:`ptr` is pooled in place
        (:mod:`sap_graph.ops.padded`).
        """
        assert dim_size is not None  # Set by `Aggregation.__call__`.
        mask = check_inputs(x, self.in_channels, dim, index, mask, lengths)
        if not is_compiling():
            check_dtype(x, self.lin_value.weight.dtype)
            if self.output_channels != self.in_channels and not (
                    self._width_warned):
                # Every eager call until it warns: the same layer may be
                # called outside a convolution first and inside one later.
                self._width_warned = check_conv_width(self)
        lead, num_nodes = x.shape[:-2], x.size(-2)

        if len(lead) > 0 and mask is not None and ptr is None and (
                dim_size == 1):  # A padded batch: one set per row.
            if not is_compiling():
                check_batch(index, ptr, num_nodes, dim_size)
            out, alpha = self._pool_padded(
                x.reshape(math.prod(lead), num_nodes, self.in_channels),
                mask.reshape(math.prod(lead), num_nodes),
                None if lengths is None else lengths.reshape(-1))
            out = out.view(*lead, 1, self.output_channels)
            alpha = alpha.view(*lead, num_nodes, self.heads)
            return (out, alpha) if return_attention_weights else out

        if mask is not None:
            mask = mask.reshape(-1)
        if len(lead) > 0:  # Independent sets per leading position.
            copies = math.prod(lead)
            index, ptr = repeat_batch(index, ptr, copies, num_nodes,
                                      dim_size)
            x = x.reshape(-1, self.in_channels)
            out, alpha = self._pool(x, index, ptr, copies * dim_size, mask)
            out = out.view(*lead, dim_size, self.output_channels)
            alpha = alpha.view(*lead, num_nodes, self.heads)
        else:
            out, alpha = self._pool(x, index, ptr, dim_size, mask)

        if return_attention_weights:
            return out, alpha
        return out

    def _pool(self, x: Tensor, index: Optional[Tensor], ptr: Optional[Tensor],
              dim_size: int, mask: Optional[Tensor] = None
              ) -> Tuple[Tensor, Tensor]:
        num_nodes = x.size(0)
        if not is_compiling():
            check_batch(index, ptr, num_nodes, dim_size)
        x, index, ptr = kept_batch(x, index, ptr, mask)

        gate = None
        if self.lin_gate is not None:
            gate = torch.sigmoid(self.lin_gate(x))
        core = sap_pool(
            x, self.score_weight(), index, ptr, dim_size, self.heads,
            dropout=self.dropout if self.training else 0.0, gate=gate,
            residual=self.residual)
        pooled, alpha, weight_sum = core[:3]
        res = core[3] if self.residual is not None else None

        count = None
        if self.size_scaler is not None:
            count = x.new_zeros(dim_size).index_add_(
                0, index, x.new_ones(index.numel()))
        out = self._combine(pooled, weight_sum, count, res)

        if mask is not None:
            alpha = alpha.new_zeros(num_nodes, self.heads).index_put(
                (mask, ), alpha)
        return out, alpha

    def _pool_padded(self, x: Tensor, mask: Tensor, lengths: Optional[Tensor]
                     ) -> Tuple[Tensor, Tensor]:
        # x [B, L, F], mask [B, L] (see sap_graph.ops.padded). Masked
        # positions take no part, whatever they hold (NaN, inf): zeroed
        # here, they reach neither the output nor any gradient.
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        gate = None
        if self.lin_gate is not None:
            gate = torch.sigmoid(self.lin_gate(x))
        pooled, alpha, weight_sum, res = sap_pool_padded(
            x, self.score_weight(), mask, lengths, self.dropout,
            self.training, gate, self.residual)
        count = mask.sum(1)
        out = self._combine(pooled, weight_sum, count, res)
        return out, alpha

    def _combine(self, pooled: Tensor, weight_sum: Tensor,
                 count: Optional[Tensor], res: Optional[Tensor]) -> Tensor:
        # Value projection, size scaler and residual.
        out = self.project(pooled, weight_sum)
        if self.size_scaler == 'log':
            assert count is not None
            out = out * torch.log1p(count.to(out.dtype)).unsqueeze(-1)
        if self.gamma is not None:
            out = out * self.gamma
        if res is not None:
            if self.lin_residual is not None:
                res = self.lin_residual(res)
            out = out + res
        return out

    def project(self, pooled: Tensor, weight_sum: Tensor) -> Tensor:
        r"""Value projection of :obj:`pooled` :obj:`[H, B, F_in]`, heads
        concatenated or averaged (see :func:`project_values`)."""
        return project_values(pooled, weight_sum, self.lin_value.weight,
                              self.lin_value.bias, self.concat)

    def __repr__(self) -> str:
        extra = ''
        if self.key_channels != self.out_channels:
            extra += f', key_channels={self.key_channels}'
        if self.dropout > 0:
            extra += f', dropout={self.dropout}'
        for name, default in (('temperature', 1.0),
                              ('learn_temperature', False),
                              ('gated', False), ('residual', 'max'),
                              ('query_init', 'zeros'),
                              ('size_scaler', None), ('rezero', False)):
            if getattr(self, name) != default:
                extra += f', {name}={getattr(self, name)!r}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads}, '
                f'concat={self.concat}{extra})')

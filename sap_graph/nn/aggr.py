"""Self-attention pooling (SAP) as a PyG :class:`Aggregation`."""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.dense.linear import Linear

from sap_graph.nn.checks import (
    check_call,
    check_call_inputs,
    check_options,
    check_removed,
)
from sap_graph.nn.conv_width import check_conv_width
from sap_graph.ops.dispatch import pool
from sap_graph.ops.layout import Core, capturing


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
        the convolution's linear layer, after a warning that says so (for
        the convolution that holds this layer, on its first such call).
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
        temperature (float, optional): Softmax temperature :math:`\tau`,
            at least :obj:`1e-6` (float32's bound; float16 scores overflow
            at larger ones). (default: :obj:`1.0`)
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
            output by :math:`\log(1 + n_b)`, so that the readout counts
            nodes; :obj:`None` keeps a weighted mean. (default: :obj:`None`)
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
        residual: Optional[str] = 'max',
        query_init: str = 'zeros',
        size_scaler: Optional[str] = None,
        rezero: bool = False,
        **removed: object,
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
        check_call(x, index, ptr, dim,
                   kwargs.get('return_attention_weights', False))
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
                the same batch: a :class:`ValueError` naming the first
                node that differs on the CPU (and on GPUs under
                :func:`torch_geometric.debug`), an assertion that reads
                nothing back on GPUs and under :func:`torch.compile`.
                (default: :obj:`None`)
            dim_size (int, optional): Number of sets :math:`B` (empty sets
                give zero rows); avoids a device sync and graph breaks under
                :func:`torch.compile`. (default: :obj:`None`)
            dim (int, optional): The node dimension, any but the last
                (the channels): the others lead, *e.g.* :obj:`dim=0` for
                the messages :obj:`[E, heads, C]` of
                :class:`~torch_geometric.nn.conv.GATConv` (each GAT head
                pooled by the same layer). (default: :obj:`-2`)
            return_attention_weights (bool, optional): Also return the
                weights :obj:`[*, N, heads]` (nodes at :obj:`dim`).
                (default: :obj:`False`)
            mask (torch.Tensor, optional): Boolean node mask :obj:`[*, N]`
                (:obj:`x.shape[:-1]`, nodes at :obj:`dim`);
                masked nodes get zero weight and skip the residual.
                (default: :obj:`None`)
            lengths (torch.Tensor, optional): Instead of :obj:`mask`, the
                kept leading positions :obj:`[*]` of a padded batch.
                (default: :obj:`None`)

        A padded batch :obj:`[*, L, in_channels]` with :obj:`mask` or
        :obj:`lengths` and no :obj:`index`/:obj:`ptr` is one set per row
        (output :obj:`[*, 1, output_channels]`); whatever its masked
        positions hold (NaN, inf, huge values) reaches no output and no
        gradient.
        Without :obj:`index` and :obj:`ptr`, all elements form one set.
        """
        check_call(x, index, ptr, dim, return_attention_weights)
        if dim_size is None:  # Called as forward(): the call sets it.
            return self(x, index, ptr, None, dim, mask=mask, lengths=lengths,
                        return_attention_weights=return_attention_weights)
        x, mask, moved = check_call_inputs(
            x, self.in_channels, self.lin_value.weight.dtype, index, ptr,
            dim_size, dim, mask, lengths)
        if self.output_channels != self.in_channels and not (
                self._width_warned or capturing()):
            # Every eager call until it warns: the same layer may be
            # called outside a convolution first and inside one later.
            self._width_warned = check_conv_width(self)
        core = pool(x, self.score_weight(), index, ptr, dim_size, mask,
                    lengths, dropout=self.dropout if self.training else 0.0,
                    gate=None if self.lin_gate is None else self._gate,
                    residual=self.residual)
        out = self._combine(core).view(*core.shape, self.output_channels)
        alpha = core.alpha
        if moved is not None:  # Back, contiguous (GATConv views it).
            out = out.movedim(-2, moved).contiguous()
            alpha = alpha.movedim(-2, moved).contiguous()
        if return_attention_weights:
            return out, alpha
        return out

    def _gate(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.lin_gate(x))

    def _combine(self, core: Core) -> Tensor:
        # Value projection, size scaler, rezero scale and residual.
        out = self.project(core.pooled, core.weight_sum)
        if self.size_scaler == 'log':
            out = out * torch.log1p(core.count.to(out.dtype)).unsqueeze(-1)
        if self.gamma is not None:
            out = out * self.gamma
        if core.res is not None:
            res = core.res
            if self.lin_residual is not None:
                res = self.lin_residual(res)
            out = out + res
        return out

    def project(self, pooled: Tensor, weight_sum: Tensor) -> Tensor:
        r"""The value projection, applied after pooling (the weights of a
        set sum to one, so it runs once per set and head): :obj:`pooled`
        :obj:`[H, B, F_in]` times head :math:`h`'s block of
        :obj:`lin_value`, plus its bias weighted by :obj:`weight_sum`
        :obj:`[H, B]` (zero for an empty set); heads concatenated
        :obj:`[B, H * F_out]` or averaged :obj:`[B, F_out]`."""
        heads, dim_size = weight_sum.shape
        weight, bias = self.lin_value.weight, self.lin_value.bias
        w_value = weight.view(heads, -1, weight.size(-1))
        out = torch.baddbmm(
            weight_sum.unsqueeze(-1) * bias.view(heads, 1, -1), pooled,
            w_value.transpose(1, 2))
        if self.concat:  # The width named: no sets (B = 0) keep it too.
            return out.transpose(0, 1).reshape(dim_size,
                                               heads * out.size(-1))
        return out.mean(dim=0)

    def __prepare_scriptable__(self) -> 'SAPAggregation':
        # Called by torch.jit.script (also for a model that holds the
        # layer): fail with what works instead of TorchScript's first
        # complaint about the Python code of the dispatch.
        raise RuntimeError(
            "'SAPAggregation' does not support torch.jit.script (its core "
            "is dispatched in Python to custom autograd functions): use "
            "torch.compile or torch.export instead, which trace it into "
            "plain differentiable ops")

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

"""Self-attention pooling (SAP) as a PyG :class:`Aggregation`."""
from __future__ import annotations

import math
import warnings
from typing import Optional, Tuple, Union

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric import is_compiling, is_debug_enabled
from torch_geometric.nn.aggr import Aggregation
from torch_geometric.nn.dense.linear import Linear

from sap_graph._ops import Segments, index_from_ptr, sap_pool, sap_pool_dense
from sap_graph._padded import (
    lengths_to_mask,
    mask_runs,
    masked_reduce,
    pool_dense,
    pool_runs,
)
from sap_graph.regularizers import attention_entropy, diversity_penalty


def _head(values: Tensor, count: int = 8) -> str:
    """The first :obj:`count` entries of a 1-D tensor, for messages."""
    items = ', '.join(str(v) for v in values[:count].tolist())
    return f"[{items}{', ...' if values.numel() > count else ''}]"


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

    The layer is computed as

    .. math::
        e_{ih} = \mathbf{x}_i^{\top} \big(\mathbf{W}^{K\top}_h
        \mathbf{q}_h\big) / \sqrt{d_k}, \qquad
        \mathbf{z}_{bh} = \mathbf{W}^{V}_h \Big(\sum_{i \in b} \alpha_{ih}
        \mathbf{x}_i\Big) + \mathbf{b}^{V}_h,

    (the weights of a graph sum to one), so its cost is
    :math:`O(N H F_{in})` plus :math:`O(B H F_{in} F_{out})`, and no
    :math:`[N, H, F]` tensor is ever allocated. A graph without nodes
    yields exactly zero.

    .. note::
        This is a global readout (one vector per graph), not PyG's
        hierarchical top-:math:`k` :class:`~torch_geometric.nn.pool.SAGPooling`.
        The :obj:`index` vector may be unsorted; passing :obj:`ptr` selects
        the CSR path for sorted batches (as produced by PyG's
        :class:`~torch_geometric.loader.DataLoader`).

    .. note::
        Inside a convolution, as in
        ``SAGEConv(16, 32, aggr=SAPAggregation(16, ...))`` or through
        ``MultiAggregation([SAPAggregation(16, ...), 'mean'], mode='cat')``,
        PyG sizes the layer that follows the aggregation for an output of
        :obj:`in_channels` per aggregation. Use a form that keeps the width,
        :obj:`output_channels == in_channels`: :obj:`concat=False` (heads
        averaged, :obj:`out_channels` defaults to :obj:`in_channels`) or
        :obj:`out_channels=in_channels // heads` with :obj:`concat=True`,
        *e.g.* ``SAPAggregation(16, heads=4, out_channels=4)``. A wider
        output (``SAPAggregation(16, heads=4)`` is 64 wide) fails there
        with a shape error in the convolution's linear layer, which this
        layer cannot see. As a readout any width works: size the next layer
        with :obj:`output_channels`.

        Node features must have the parameters' dtype (as for
        :class:`torch.nn.Linear`); under :func:`torch.autocast` a
        half-precision batch into a float32 layer works.

    Args:
        in_channels (int): Size of each input element :math:`F_{in}`.
        out_channels (int, optional): Value width of one head
            :math:`F_{out}`. (default: :obj:`None`, *i.e.*
            :obj:`in_channels`)
        heads (int, optional): Number of attention heads :math:`H`.
            (default: :obj:`1`)
        concat (bool, optional): If :obj:`True`, head outputs are
            concatenated, else averaged. (default: :obj:`True`)
        key_channels (int, optional): Key/query width of one head
            :math:`d_k`. (default: :obj:`None`, *i.e.* :obj:`out_channels`)
        dropout (float, optional): Dropout probability of the normalised
            attention weights, applied in training mode only.
            (default: :obj:`0.0`)
        temperature (float, optional): Softmax temperature :math:`\tau`; the
            scores are divided by it. (default: :obj:`1.0`)
        learn_temperature (bool, optional): If :obj:`True`, :math:`\tau` is
            learnable (stored as its logarithm, initialised at
            :obj:`temperature`). (default: :obj:`False`)
        gated (bool, optional): If :obj:`True`, each head's value is scaled
            by a per-node sigmoid gate
            :math:`\sigma(\mathbf{w}_h^{\top}\mathbf{x}_i + c_h)`, so a
            graph can also pool "nothing" (the weights no longer sum to
            one). (default: :obj:`False`)
        residual (str, optional): Adds a classic pooling of the node
            features to the output, :math:`\mathbf{z}_b +
            \mathrm{Pool}_{i \in b}(\mathbf{x}_i)`, with :obj:`'sum'`,
            :obj:`'mean'` or :obj:`'max'` (:obj:`None` for none). When
            :obj:`output_channels != in_channels` the pooled features go
            through a bias-free linear projection first. :obj:`'sum'` makes
            the readout size-aware (the weights of a graph sum to one, so the
            attention part alone is a weighted mean and cannot count nodes).
            (default: :obj:`None`)
        query_init (str, optional): Initialisation of the queries:
            :obj:`'zeros'` (an untrained layer gives every node of a graph
            the same weight, *i.e.* starts as mean pooling of the values, and
            departs from it as the queries learn) or :obj:`'normal'`
            (standard normal, the behaviour before version 0.2).
            (default: :obj:`'zeros'`)
        size_scaler (str, optional): If :obj:`'log'`, the attention output
            of graph :math:`b` is scaled by :math:`\log(1 + n_b)`, a
            size-aware form in the spirit of PNA's amplification scaler.
            (default: :obj:`None`)
        diversity (float, optional): Weight of the head-diversity penalty
            (:func:`~sap_graph.regularizers.diversity_penalty`) stored as
            :obj:`aux_loss` on every training forward; add
            :func:`sap_graph.aux_loss` to the task loss.
            (default: :obj:`0.0`)
        entropy (float, optional): Weight of the attention entropy
            (:func:`~sap_graph.regularizers.attention_entropy`) added to
            :obj:`aux_loss` the same way. (default: :obj:`0.0`)

    Attributes:
        output_channels (int): Width of the output,
            :obj:`heads * out_channels` if :obj:`concat` else
            :obj:`out_channels`. Read it to size the next layer.

    Shapes:
        - **input:**
          node features :math:`(*, |\mathcal{V}|, F_{in})`,
          index vector :math:`(|\mathcal{V}|)` (optional),
          pointer :math:`(|\mathcal{G}| + 1)` (optional)
        - **output:** graph features :math:`(*, |\mathcal{G}|, H F_{out})`
          or :math:`(*, |\mathcal{G}|, F_{out})`, and with
          :obj:`return_attention_weights=True` also the attention weights
          :math:`(*, |\mathcal{V}|, H)`
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: Optional[int] = None,
        heads: int = 1,
        concat: bool = True,
        key_channels: Optional[int] = None,
        dropout: float = 0.0,
        temperature: float = 1.0,
        learn_temperature: bool = False,
        gated: bool = False,
        residual: Union[str, bool, None] = None,
        query_init: str = 'zeros',
        size_scaler: Optional[str] = None,
        diversity: float = 0.0,
        entropy: float = 0.0,
    ) -> None:
        super().__init__()
        if in_channels <= 0:
            raise ValueError(f"'in_channels' must be positive "
                             f"(got {in_channels})")
        if heads <= 0:
            raise ValueError(f"'heads' must be positive (got {heads})")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"'dropout' must be in [0, 1) (got {dropout})")
        if not temperature > 0.0:
            raise ValueError(f"'temperature' must be positive "
                             f"(got {temperature})")
        if residual is True:
            warnings.warn(
                "SAPAggregation(residual=True) is deprecated; it means "
                "residual='mean' (use residual='mean', 'sum' or 'max')",
                FutureWarning, stacklevel=2)
            residual = 'mean'
        elif residual is False:
            residual = None
        if residual not in (None, 'sum', 'mean', 'max'):
            raise ValueError(f"'residual' must be one of 'sum', 'mean', "
                             f"'max' or None (got {residual!r})")
        if query_init not in ('zeros', 'normal'):
            raise ValueError(f"'query_init' must be 'zeros' or 'normal' "
                             f"(got {query_init!r})")
        if size_scaler not in (None, 'log'):
            raise ValueError(f"'size_scaler' must be 'log' or None "
                             f"(got {size_scaler!r})")

        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.heads = heads
        self.concat = concat
        self.key_channels = key_channels or self.out_channels
        self.dropout = dropout
        self.output_channels = (heads * self.out_channels
                                if concat else self.out_channels)
        self.temperature = temperature
        self.learn_temperature = learn_temperature
        self.gated = gated
        self.residual = residual
        self.query_init = query_init
        self.size_scaler = size_scaler
        self.diversity = diversity
        self.entropy = entropy
        #: Weighted regularisers of the last training forward (or None).
        self.aux_loss: Optional[Tensor] = None

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
        self.lin_residual: Optional[Linear] = None
        if residual is not None and self.output_channels != in_channels:
            self.lin_residual = Linear(in_channels, self.output_channels,
                                       bias=False,
                                       weight_initializer='glorot')

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

    def score_weight(self) -> Tensor:
        r"""Returns the :obj:`[heads, in_channels]` matrix whose row
        :math:`h` is :math:`\mathbf{q}_h^{\top} \mathbf{W}^{K}_h /
        (\tau \sqrt{d_k})`, so that the scores are
        ``x @ score_weight().t()``."""
        w_key = self.lin_key.weight.view(self.heads, self.key_channels,
                                         self.in_channels)
        w = torch.bmm(self.query.unsqueeze(1), w_key).squeeze(1)
        w = w / math.sqrt(self.key_channels)
        if self.log_temperature is not None:
            return w * torch.exp(-self.log_temperature)
        if self.temperature != 1.0:
            return w / self.temperature
        return w

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
            dim_size (int, optional): Number of sets :math:`B`; sets without
                nodes yield zero rows. Pass it to avoid a device sync and
                graph breaks under :func:`torch.compile`.
                (default: :obj:`None`)
            dim (int, optional): The node dimension; must be the
                second-to-last one. (default: :obj:`-2`)
            return_attention_weights (bool, optional): If :obj:`True`, also
                returns the attention weights :obj:`[*, N, heads]` (before
                dropout and gate). (default: :obj:`False`)
            mask (torch.Tensor, optional): Boolean node mask :obj:`[*, N]`;
                nodes with :obj:`False` get zero weight and do not enter the
                residual mean; a graph with every node masked yields zero.
                (default: :obj:`None`)
            lengths (torch.Tensor, optional): Instead of :obj:`mask`, the
                number of kept (leading) positions of every set of a padded
                batch :obj:`[*]`, for :obj:`x` :obj:`[*, L, in_channels]`.
                (default: :obj:`None`)

        A padded batch, :obj:`x` :obj:`[*, L, in_channels]` without
        :obj:`index` and :obj:`ptr` (one set per leading position) and
        with :obj:`mask` or :obj:`lengths`, is pooled in place (see
        :mod:`sap_graph._padded`): the kept positions are not copied.
        """
        if x.dim() < 2 or dim % x.dim() != x.dim() - 2:
            raise ValueError(f"'SAPAggregation' pools over the second-to-last "
                             f"dimension of a [*, N, {self.in_channels}] "
                             f"tensor (got dim={dim} for a tensor of shape "
                             f"{tuple(x.shape)})")
        if x.size(-1) != self.in_channels:
            raise ValueError(f"Expected node features with {self.in_channels} "
                             f"channels in the last dimension (got "
                             f"{x.size(-1)})")
        assert dim_size is not None  # Set by `Aggregation.__call__`.

        lead = x.shape[:-2]
        num_nodes = x.size(-2)
        if index is not None and index.numel() != num_nodes:
            raise ValueError(f"Expected 'index' with {num_nodes} entries, "
                             f"one per node (got {index.numel()})")
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != x.shape[:-1]:
                raise ValueError(f"Expected a boolean 'mask' of shape "
                                 f"{list(x.shape[:-1])} (got {mask.dtype} "
                                 f"{list(mask.shape)})")
        if lengths is not None:
            if mask is not None or lengths.shape != lead:
                raise ValueError(f"Expected 'lengths' of shape {list(lead)} "
                                 f"instead of a 'mask' (got "
                                 f"{list(lengths.shape)})")
            if lengths.device.type == 'cpu' and lengths.numel() > 0 and (
                    lengths.min() < 0 or lengths.max() > num_nodes):
                raise ValueError(f"Expected 'lengths' in [0, {num_nodes}] "
                                 f"(got values in [{int(lengths.min())}, "
                                 f"{int(lengths.max())}])")
            mask = lengths_to_mask(lengths, num_nodes)

        if len(lead) > 0 and mask is not None and ptr is None and (
                dim_size == 1):  # A padded batch: one set per row.
            if not is_compiling():
                self._check_batch(index, ptr, num_nodes, dim_size)
            out, alpha = self._pool_padded(
                x.reshape(-1, num_nodes, self.in_channels),
                mask.reshape(-1, num_nodes),
                None if lengths is None else lengths.reshape(-1))
            out = out.view(*lead, 1, self.output_channels)
            alpha = alpha.view(*lead, num_nodes, self.heads)
            return (out, alpha) if return_attention_weights else out

        if mask is not None:
            mask = mask.reshape(-1)
        if len(lead) > 0:  # Independent sets per leading position.
            copies = math.prod(lead)
            if index is None:
                assert ptr is not None
                index = index_from_ptr(ptr, num_nodes)
            offset = torch.arange(copies, device=x.device) * dim_size
            index = (offset.unsqueeze(1) + index.unsqueeze(0)).view(-1)
            if ptr is not None:
                ptr = torch.cat([
                    ptr.new_zeros(1),
                    (ptr[1:].unsqueeze(0) +
                     num_nodes * torch.arange(copies, device=x.device)
                     .unsqueeze(1)).view(-1)
                ])
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
            self._check_batch(index, ptr, num_nodes, dim_size)
            self._check_dtype(x)
        # int32 batch vectors become int64 once, here (no sync, and a no-op
        # for int64 ones): the fused kernels read an int64 'ptr', and
        # torch 2.13's CPU gather with an expanded int32 index, behind the
        # backward of every scatter, returns wrong gradients.
        if index is not None:
            index = index.to(torch.long)
        if ptr is not None:
            ptr = ptr.to(torch.long)
        if index is None:
            assert ptr is not None
            index = index_from_ptr(ptr, num_nodes)
        if mask is not None:  # Masked nodes leave the batch altogether.
            x, index = x[mask], index[mask]
            if ptr is not None:  # Still sorted: recount.
                count = torch.zeros_like(ptr[1:]).index_add_(
                    0, index, torch.ones_like(index))
                ptr = torch.cat([ptr.new_zeros(1), count.cumsum(0)])

        score_weight = self.score_weight()
        gate = None
        if self.lin_gate is not None:
            gate = torch.sigmoid(self.lin_gate(x))
        if is_compiling():
            pooled, alpha, weight_sum = sap_pool_dense(
                x, score_weight.to(x.dtype), index, dim_size, self.dropout,
                self.training, gate)
        else:
            seg = Segments(index, ptr, dim_size, self.heads)
            dropout = self.dropout if self.training else 0.0
            pooled, alpha, weight_sum = sap_pool(x, score_weight, seg,
                                                 dropout, gate)

        out = self.project(pooled, weight_sum)
        if self.size_scaler == 'log':
            count = x.new_zeros(dim_size).index_add_(
                0, index, x.new_ones(index.numel()))
            out = out * torch.log1p(count).unsqueeze(-1)
        if self.residual is not None:
            res = self.reduce(x, index, None, dim_size, reduce=self.residual)
            if self.lin_residual is not None:
                res = self.lin_residual(res)
            out = out + res

        self.aux_loss = None
        if self.training and (self.diversity or self.entropy):
            aux = out.new_zeros(())
            if self.diversity:
                aux = aux + self.diversity * diversity_penalty(
                    alpha, index, dim_size)
            if self.entropy:
                aux = aux + self.entropy * attention_entropy(
                    alpha, index, dim_size)
            self.aux_loss = aux

        if mask is not None:
            alpha = alpha.new_zeros(num_nodes, self.heads).index_put(
                (mask, ), alpha)
        return out, alpha

    def _pool_padded(self, x: Tensor, mask: Tensor, lengths: Optional[Tensor]
                     ) -> Tuple[Tensor, Tensor]:
        # x [B, L, F], mask [B, L]: kept runs through the segment kernels,
        # any other mask densely (see sap_graph._padded).
        batch, length = mask.shape
        runs = None
        if not is_compiling():
            if lengths is not None:
                runs = (torch.zeros_like(lengths), lengths)
            elif mask.device.type == 'cpu':
                runs = mask_runs(mask)
        score_weight = self.score_weight()
        gate = None
        if self.lin_gate is not None:
            gate = torch.sigmoid(self.lin_gate(x))
        ptr = None
        if runs is not None:
            dropout = self.dropout if self.training else 0.0
            pooled, alpha, weight_sum, ptr = pool_runs(
                x, score_weight, *runs, dropout=dropout, gate=gate)
        else:
            pooled, alpha, weight_sum = pool_dense(
                x, score_weight, mask, self.dropout, self.training, gate)

        out = self.project(pooled, weight_sum)
        count = mask.sum(1)
        if self.size_scaler == 'log':
            out = out * torch.log1p(count.to(out.dtype)).unsqueeze(-1)
        if self.residual is not None:
            if ptr is not None:  # Segment reduce over the kept runs.
                res = self.reduce(x.reshape(batch * length, -1), None, ptr,
                                  3 * batch, reduce=self.residual)[1::3]
            else:
                res = masked_reduce(x, mask, self.residual)
            if self.lin_residual is not None:
                res = self.lin_residual(res)
            out = out + res

        self.aux_loss = None
        if self.training and (self.diversity or self.entropy):
            # The regularisers see the kept positions only ([N, H], small).
            kept = alpha.reshape(batch * length, -1)[mask.reshape(-1)]
            index = torch.repeat_interleave(
                torch.arange(batch, device=x.device), count,
                output_size=kept.size(0))
            aux = out.new_zeros(())
            if self.diversity:
                aux = aux + self.diversity * diversity_penalty(
                    kept, index, batch)
            if self.entropy:
                aux = aux + self.entropy * attention_entropy(
                    kept, index, batch)
            self.aux_loss = aux
        return out, alpha

    def project(self, pooled: Tensor, weight_sum: Tensor) -> Tensor:
        r"""The value projection after pooling, head by head, and the
        concatenation or mean of the heads: :obj:`pooled` :obj:`[H, B, F_in]`
        (:math:`\sum_i w_{ih} \mathbf{x}_i`) and :obj:`weight_sum`
        :obj:`[H, B]` (:math:`\sum_i w_{ih}`: 1, or 0 for an empty graph,
        with which the bias enters) give :obj:`[B, output_channels]`."""
        heads, dim_size = weight_sum.shape
        w_value = self.lin_value.weight.view(heads, self.out_channels,
                                             self.in_channels)
        out = torch.baddbmm(
            weight_sum.unsqueeze(-1) *
            self.lin_value.bias.view(heads, 1, self.out_channels),
            pooled, w_value.transpose(1, 2))
        if self.concat:
            return out.transpose(0, 1).reshape(dim_size,
                                               self.output_channels)
        return out.mean(dim=0)

    def _check_dtype(self, x: Tensor) -> None:
        # Like torch.nn.Linear, features and parameters share one dtype
        # outside autocast (a half-precision batch into a float32 layer
        # failed deep inside the value projection).
        dtype = self.lin_value.weight.dtype
        if x.dtype != dtype and not torch.is_autocast_enabled(
                x.device.type):
            raise ValueError(
                f"'SAPAggregation' got {x.dtype} node features but its "
                f"parameters are {dtype}: convert one to the other "
                f"(x.to({dtype}) or aggr.to({x.dtype})), or run the model "
                f"under torch.autocast")

    @staticmethod
    def _check_batch(index: Optional[Tensor], ptr: Optional[Tensor],
                     num_nodes: int, dim_size: int) -> None:
        if ptr is not None and (ptr.dim() != 1 or
                                ptr.numel() != dim_size + 1):
            raise ValueError(f"Expected 'ptr' of shape [{dim_size + 1}] "
                             f"(got {list(ptr.shape)})")
        device = (ptr if ptr is not None else index).device
        if device.type != 'cpu' and not is_debug_enabled():
            # Reading values back would stall the GPU stream once per
            # forward (PyG's aggregations do not check either); a bad
            # index then fails in a device-side assert. Under
            # ``torch_geometric.debug()`` the checks below run everywhere.
            return
        if ptr is not None:
            first, last = ptr[[0, -1]].tolist()
            if first != 0 or last != num_nodes:
                raise ValueError(f"Expected 'ptr' to run from 0 to "
                                 f"{num_nodes} (got {first} to {last})")
            if bool((ptr[1:] < ptr[:-1]).any()):
                raise ValueError("Expected a non-decreasing 'ptr'")
        if index is not None and index.numel() > 0:
            low, high = (int(v) for v in torch.aminmax(index))
            if low < 0 or high >= dim_size:
                raise ValueError(f"Encountered invalid 'dim_size' (got "
                                 f"'{dim_size}' but 'index' holds values in "
                                 f"[{low}, {high}], expected values in "
                                 f"[0, {dim_size - 1}])")
        if index is not None and ptr is not None:
            # Both given: they must describe the same batch (the fused
            # kernels follow 'ptr', the other paths mostly 'index').
            expected = index_from_ptr(ptr, num_nodes)
            wrong = (index != expected).nonzero()
            if wrong.numel() > 0:
                node = int(wrong[0])
                raise ValueError(
                    f"'index' and 'ptr' disagree: 'ptr' "
                    f"{_head(ptr)} puts node {node} in graph "
                    f"{int(expected[node])} but 'index' holds "
                    f"{int(index[node])} there ({wrong.numel()} of "
                    f"{num_nodes} nodes differ; got 'index' "
                    f"{_head(index)}, expected {_head(expected)}). Pass "
                    f"only one of them, or 'ptr' of a sorted 'index'")

    def __repr__(self) -> str:
        extra = ''
        if self.key_channels != self.out_channels:
            extra += f', key_channels={self.key_channels}'
        if self.dropout > 0:
            extra += f', dropout={self.dropout}'
        for name, default in (('temperature', 1.0),
                              ('learn_temperature', False),
                              ('gated', False), ('residual', None),
                              ('query_init', 'zeros'),
                              ('size_scaler', None),
                              ('diversity', 0.0), ('entropy', 0.0)):
            if getattr(self, name) != default:
                extra += f', {name}={getattr(self, name)!r}'
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads}, '
                f'concat={self.concat}{extra})')

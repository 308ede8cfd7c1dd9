r"""The ``torch`` path of the SAP core: pure PyTorch, any device; the
reference for the fused kernels.

For a batch of :math:`N` nodes with features :math:`\mathbf{X}` split into
:math:`B` graphs and :math:`H` heads with score matrix
:math:`\mathbf{W}_q \in \mathbb{R}^{F \times H}` (stored transposed,
:obj:`[H, F]`), the readout core is

.. math::
    \mathbf{E} = \mathbf{X}\mathbf{W}_q, \qquad
    \alpha_{ih} = \mathrm{softmax}_{i \in b}(e_{ih}), \qquad
    \mathbf{P}_{b,h} = \sum_{i \in b} \alpha_{ih} \mathbf{x}_i.

The weighted sum is the sparse-dense product :math:`\mathbf{A}\mathbf{X}`
(:math:`\mathbf{A} \in \mathbb{R}^{BH \times N}` holds the weights).
:class:`SAPPoolFunction` computes it in PyTorch with a hand-written backward
(weighted :func:`~torch.nn.functional.embedding_bag` forward; a sampled
product, the softmax backward and one :math:`[N, F]` gradient buffer
backward), never allocating an :math:`[N, H, F]` tensor.
:mod:`sap_graph.ops.dispatch` picks this path or another.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

# We only build CSR tensors with valid, sorted indices ourselves.
warnings.filterwarnings('ignore', message='Sparse CSR tensor support')

# The sampled product has CPU kernels for float32 and float64 only; lower
# precisions are computed in float32.
_KERNEL_DTYPES = (torch.float32, torch.float64)

#: Whether the backward's sampled product runs as one gather per head on
#: GPUs (:meth:`Segments.sampled_gather`) instead of cuSPARSE's SDDMM.
GATHER_SAMPLED_ON_GPU = True


def index_from_ptr(ptr: Tensor, num_nodes: int) -> Tensor:
    """Expands a CSR pointer :obj:`[B + 1]` into a sorted batch vector."""
    count = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(
        torch.arange(count.numel(), device=ptr.device), count,
        output_size=num_nodes)


class Segments:
    r"""Index structures of one batch, built once per forward in
    :math:`O(N H)` and shared by the forward and backward passes.

    Args:
        index (torch.Tensor): Graph of each node :obj:`[N]`, entries in
            :obj:`[0, dim_size)`.
        ptr (torch.Tensor, optional): CSR pointer :obj:`[B + 1]`. When given,
            :obj:`index` is sorted and consistent with it; when :obj:`None`,
            :obj:`index` may be unsorted.
        dim_size (int): Number of graphs :math:`B`.
        heads (int): Number of heads :math:`H`.
    """

    def __init__(self, index: Tensor, ptr: Optional[Tensor], dim_size: int,
                 heads: int) -> None:
        self.index = index
        self.dim_size = dim_size
        self.heads = heads
        self.num_nodes = index.numel()
        self.sorted = ptr is not None
        if ptr is not None:
            self.ptr = ptr.to(torch.long)
            self.count = self.ptr[1:] - self.ptr[:-1]
        else:
            # No host-device sync here (``bincount`` would wait for the GPU).
            # The pointer is int64 whatever the index (an int32 one as
            # well): the fused kernels and ``segment_reduce`` read it so.
            self.count = torch.zeros(
                dim_size, dtype=torch.long, device=index.device).index_add_(
                    0, index, torch.ones_like(index, dtype=torch.long))
            self.ptr = self.count.new_zeros(dim_size + 1)
            torch.cumsum(self.count, 0, out=self.ptr[1:])
            # A sorted index (as PyG's loaders produce) takes the CSR paths
            # and the fused kernels. Finding out needs a sync, which is free
            # on the CPU; on a GPU the index-only batch takes the paths that
            # work for any order instead.
            self.sorted = (index.device.type == 'cpu' and
                           bool((index[1:] >= index[:-1]).all()))

    def softmax(self, score: Tensor) -> Tensor:
        """Softmax of :obj:`score` :obj:`[N, H]` within every graph,
        computed in place (:obj:`score` is overwritten)."""
        if self.sorted:
            score_max = torch.segment_reduce(score, 'max', offsets=self.ptr)
        else:
            score_max = score.new_full((self.dim_size, self.heads),
                                       float('-inf')).scatter_reduce_(
                                           0, self._expanded(score), score,
                                           'amax')
        out = score.sub_(score_max.index_select(0, self.index)).exp_()
        total = self.sum(out)
        return out.div_(total.index_select(0, self.index))

    def _expanded(self, src: Tensor) -> Tensor:
        return self.index.unsqueeze(1).expand_as(src)  # A view, no copy.

    def sum(self, src: Tensor) -> Tensor:
        """Per-graph sums :obj:`[B, H]` of :obj:`src` :obj:`[N, H]`."""
        out = src.new_zeros(self.dim_size, src.size(1))
        return out.index_add_(0, self.index, src)

    def pool(self, weight: Tensor, x: Tensor) -> Tensor:
        r""":math:`\mathbf{P} = \mathbf{A}\mathbf{X}`, head-major
        :obj:`[H, B, F]`, as one weighted
        :func:`~torch.nn.functional.embedding_bag` over :math:`\mathbf{X}`.

        With the weights laid out head-major (:obj:`[H, N]`), the nodes of
        graph :math:`b` under head :math:`h` form the contiguous bag
        starting at :math:`hN + \mathrm{ptr}_b`: the bag layout needs no
        index arithmetic beyond an :obj:`arange`.
        """
        num_nodes, heads = weight.shape
        device = x.device
        dtype = (torch.int32 if num_nodes * heads < 2**31 - 1 else
                 torch.long)
        if self.sorted:
            nodes = torch.arange(num_nodes, device=device, dtype=dtype)
            values = weight.t().contiguous()
        else:
            nodes = torch.argsort(self.index, stable=True).to(dtype)
            values = weight.t()[:, nodes]
        if heads > 1:
            nodes = nodes.repeat(heads)
        offsets = (torch.arange(heads, device=device).unsqueeze(1) *
                   num_nodes + self.ptr[:-1]).view(-1).to(dtype)
        out = F.embedding_bag(nodes, x, offsets, mode='sum',
                              per_sample_weights=values.view(-1))
        return out.view(heads, self.dim_size, x.size(1))

    def node_bags(self) -> Tensor:
        r"""Rows :math:`hB + b(i)` of the head-major :math:`[HB, F]`
        gradient that node :math:`i` reads, :obj:`[N, H]` (the columns of
        :math:`\mathbf{A}^{\top}`, ascending in every row)."""
        heads, index = self.heads, self.index
        dtype = (torch.int32 if max(self.num_nodes, self.dim_size) * heads <
                 2**31 - 1 else torch.long)
        return (index.to(dtype).unsqueeze(1) + self.dim_size * torch.arange(
            heads, device=index.device, dtype=dtype))

    def sampled(self, grad: Tensor, x: Tensor, cols: Tensor,
                finite: Tensor) -> Tensor:
        r""":math:`\langle\mathbf{x}_i, \partial\mathbf{P}_{h,b(i)}\rangle`
        as :obj:`[N, H]`, for :obj:`grad` :obj:`[H * B, F]`: a sampled
        sparse product on the CPU, a gather per head on other devices (see
        :meth:`sampled_sparse` and :meth:`sampled_gather`)."""
        if x.device.type == 'cpu' or not GATHER_SAMPLED_ON_GPU:
            return self.sampled_sparse(grad, x, cols, finite)
        return self.sampled_gather(grad, x, cols)

    @staticmethod
    def sampled_gather(grad: Tensor, x: Tensor, cols: Tensor) -> Tensor:
        r"""Same as :meth:`sampled_sparse` with one row gather, product and
        row sum per head: an :math:`[N, F]` temporary, no sparse library
        call."""
        out = x.new_empty(cols.shape)
        for h in range(cols.size(1)):
            out[:, h] = torch.linalg.vecdot(
                x, grad.index_select(0, cols[:, h]))
        return out

    def sampled_sparse(self, grad: Tensor, x: Tensor, cols: Tensor,
                       finite: Tensor) -> Tensor:
        r""":math:`\langle\mathbf{x}_i, \partial\mathbf{P}_{h,b(i)}\rangle`
        as :obj:`[N, H]`, for :obj:`grad` :obj:`[H * B, F]`. :obj:`finite`
        is any finite :obj:`[N, H]` tensor (the sampled product scales the
        pattern's values by zero, and ``0 * nan`` would leak uninitialised
        memory)."""
        num_nodes, heads = cols.shape
        pattern = torch.sparse_csr_tensor(
            torch.arange(0, num_nodes * heads + 1, heads,
                         device=cols.device, dtype=cols.dtype),
            cols.view(-1), finite.reshape(-1),
            (num_nodes, grad.size(0)), check_invariants=False)
        out = torch.sparse.sampled_addmm(pattern, x, grad.t(), beta=0.0)
        return out.values().view(num_nodes, heads)


class SAPPoolFunction(torch.autograd.Function):
    r"""Fused scores, segment softmax, attention dropout, optional value
    gate and weighted sum.

    With node weights :math:`w_{ih} = \alpha_{ih} m_{ih} g_{ih}`
    (:math:`m`: dropout mask, :math:`g`: optional gate), returns
    ``(pooled [H, B, F], alpha [N, H], weight_sum [H, B])`` where
    :obj:`pooled` holds :math:`\sum_{i \in b} w_{ih} \mathbf{x}_i` and
    :obj:`weight_sum` :math:`\sum_{i \in b} w_{ih}` (one for a non-empty
    graph without dropout and gate, zero for an empty one). All three are
    differentiable: a loss on :obj:`alpha`, such as a head-diversity
    penalty, flows back into :obj:`x` and :obj:`score_weight`.
    """

    @staticmethod
    def forward(ctx, x: Tensor, score_weight: Tensor,  # type: ignore
                gate: Optional[Tensor], seg: Segments,
                dropout: float) -> Tuple[Tensor, Tensor, Tensor]:
        alpha = seg.softmax(F.linear(x, score_weight))
        mask = None
        if dropout > 0.0:
            mask = torch.empty_like(alpha).bernoulli_(1.0 - dropout)
            mask.div_(1.0 - dropout)
        weight = alpha if mask is None else alpha * mask
        if gate is not None:
            weight = weight * gate
        pooled = seg.pool(weight, x)
        weight_sum = seg.sum(weight).t()
        ctx.seg = seg
        ctx.save_for_backward(x, score_weight, alpha, weight, mask, gate)
        return pooled, alpha, weight_sum

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled: Optional[Tensor],  # type: ignore
                 grad_alpha: Optional[Tensor],
                 grad_weight_sum: Optional[Tensor]):
        x, score_weight, alpha, weight, mask, gate = ctx.saved_tensors
        seg: Segments = ctx.seg
        cols = seg.node_bags()
        channels = x.size(1)

        # Gradient of the node weights w = alpha * mask * gate.
        grad_weight: Optional[Tensor] = None
        if grad_pooled is not None:
            grad_pooled = grad_pooled.reshape(-1, channels).contiguous()
            grad_weight = seg.sampled(grad_pooled, x, cols, alpha)
        if grad_weight_sum is not None:
            spread = grad_weight_sum.t().index_select(0, seg.index)
            grad_weight = (spread if grad_weight is None else
                           grad_weight.add_(spread))
        if grad_weight is None and grad_alpha is None:
            return None, None, None, None, None

        grad_gate = None
        if grad_weight is None:
            grad_alpha_total = grad_alpha.clone()
        else:
            if gate is not None and ctx.needs_input_grad[2]:
                grad_gate = grad_weight * alpha
                if mask is not None:
                    grad_gate.mul_(mask)
            grad_alpha_total = grad_weight
            if mask is not None:
                grad_alpha_total.mul_(mask)
            if gate is not None:
                grad_alpha_total.mul_(gate)
            if grad_alpha is not None:
                grad_alpha_total.add_(grad_alpha)

        # Softmax backward, in place: alpha * (g - sum_b(alpha * g)).
        dot = seg.sum(alpha * grad_alpha_total)
        grad_score = grad_alpha_total.sub_(dot.index_select(0, seg.index))
        grad_score.mul_(alpha)

        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            if grad_pooled is not None:
                # dX = A^T dP + dE W_q: one weighted bag sum writes the
                # buffer, a rank-H update adds the score path in place.
                grad_x = F.embedding_bag(cols, grad_pooled, mode='sum',
                                         per_sample_weights=weight)
                grad_x.addmm_(grad_score, score_weight)
            else:
                grad_x = grad_score @ score_weight
        if ctx.needs_input_grad[1]:
            grad_w = grad_score.t() @ x
        return grad_x, grad_w, grad_gate, None, None


def pool_torch(x: Tensor, score_weight: Tensor, seg: Segments,
               dropout: float = 0.0, gate: Optional[Tensor] = None
               ) -> Tuple[Tensor, Tensor, Tensor]:
    r"""The ``torch`` path: :class:`SAPPoolFunction` in the inputs' dtype
    when its kernels have one (float32, float64), else in float32 (or the
    promoted dtype) and cast back."""
    dtype = x.dtype
    if dtype in _KERNEL_DTYPES and score_weight.dtype == dtype and (
            gate is None or gate.dtype == dtype):
        return SAPPoolFunction.apply(x, score_weight, gate, seg, dropout)
    work = torch.promote_types(torch.promote_types(dtype, score_weight.dtype),
                               torch.float32)
    pooled, alpha, weight_sum = SAPPoolFunction.apply(
        x.to(work), score_weight.to(work),
        None if gate is None else gate.to(work), seg, dropout)
    return pooled.to(dtype), alpha.to(dtype), weight_sum.to(dtype)

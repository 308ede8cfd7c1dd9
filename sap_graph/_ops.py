r"""Segment kernels behind :class:`sap_graph.SAPAggregation`.

The readout needs two segment operations over a batch of :math:`N` nodes
split into :math:`B` graphs, with :math:`H` attention heads:

* a segment softmax of scores :math:`\mathbf{E} \in \mathbb{R}^{N \times H}`,
* the attention-weighted sum of node features
  :math:`\mathbf{P}_{b,h} = \sum_{i \in b} \alpha_{ih} \mathbf{x}_i`, which
  gives a :math:`[B, H, F]` tensor.

The weighted sum is a sparse-dense matrix product
:math:`\mathbf{P} = \mathbf{A} \mathbf{X}` with a block sparse matrix
:math:`\mathbf{A} \in \mathbb{R}^{BH \times N}` that holds
:math:`\alpha_{ih}` at row :math:`bH + h`, column :math:`i`. Written this
way neither pass builds the :math:`[N, H, F]` tensor that a broadcast
``alpha[:, :, None] * x[:, None, :]`` followed by a scatter would allocate:

* forward: :math:`\mathbf{P} = \mathbf{A}\mathbf{X}` (CSR times dense),
* backward: :math:`\partial\mathbf{X} = \mathbf{A}^{\top}\partial\mathbf{P}`
  (CSR times dense, :math:`\mathbf{A}^{\top}` in CSR form is node-major and
  free to build) and :math:`\partial\alpha_{ih} = \langle\mathbf{x}_i,
  \partial\mathbf{P}_{b(i),h}\rangle`, a sampled dense-dense product on the
  sparsity pattern of :math:`\mathbf{A}`.

Every intermediate is :math:`O(N H)` or :math:`O(B H F)`.
"""
from __future__ import annotations

import warnings
from typing import NamedTuple, Optional

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

# We only build CSR tensors with valid, sorted indices ourselves.
warnings.filterwarnings('ignore', message='Sparse CSR tensor support')
warnings.filterwarnings('ignore', message=r'index_reduce\(\) is in beta')

# Sparse CSR kernels on CPU exist for float32 and float64 only; lower
# precisions are accumulated in float32.
_SPARSE_DTYPES = (torch.float32, torch.float64)


class Segments(NamedTuple):
    r"""Sparsity pattern of the attention matrix of one batch.

    Attributes:
        index (torch.Tensor): Graph of each node, shape :obj:`[N]`.
        count (torch.Tensor): Number of nodes per graph, shape :obj:`[B]`.
        crow (torch.Tensor): CSR row pointer of :math:`\mathbf{A}`, shape
            :obj:`[B * H + 1]`.
        col (torch.Tensor): CSR column (node) indices of :math:`\mathbf{A}`,
            shape :obj:`[N * H]`.
        pos (torch.Tensor): For every flattened node-major entry ``(i, h)``
            its position among the CSR values of :math:`\mathbf{A}`, shape
            :obj:`[N * H]`.
        heads (int): Number of heads :math:`H`.
    """

    index: Tensor
    count: Tensor
    crow: Tensor
    col: Tensor
    pos: Tensor
    heads: int

    @property
    def num_segments(self) -> int:
        """Number of graphs :math:`B`."""
        return self.count.numel()


def index_from_ptr(ptr: Tensor, num_nodes: int) -> Tensor:
    """Expands a CSR pointer :obj:`[B + 1]` into a sorted batch vector."""
    count = ptr[1:] - ptr[:-1]
    return torch.repeat_interleave(
        torch.arange(count.numel(), device=ptr.device), count,
        output_size=num_nodes)


def build_segments(index: Tensor, ptr: Optional[Tensor], dim_size: int,
                   heads: int) -> Segments:
    r"""Builds the CSR pattern of :math:`\mathbf{A}` in :math:`O(NH)`.

    The entries of graph :math:`b` occupy the contiguous block of values
    starting at :math:`H \cdot \mathrm{ptr}_b`; head :math:`h` of node
    :math:`i`, the :math:`r`-th node of its graph, sits at
    :math:`H \mathrm{ptr}_b + h n_b + r`.

    Args:
        index (torch.Tensor): Graph of each node, :obj:`[N]`, entries in
            :obj:`[0, dim_size)`.
        ptr (torch.Tensor, optional): CSR pointer :obj:`[B + 1]`. When given,
            :obj:`index` is sorted and consistent with it; when
            :obj:`None`, :obj:`index` may be unsorted.
        dim_size (int): Number of graphs :math:`B`.
        heads (int): Number of heads :math:`H`.
    """
    num_nodes = index.numel()
    device = index.device
    node = torch.arange(num_nodes, device=device)
    if ptr is not None:
        ptr = ptr.to(torch.long)
        count = ptr[1:] - ptr[:-1]
        rank = node - ptr[index]
    else:
        count = torch.bincount(index, minlength=dim_size)
        ptr = torch.zeros(dim_size + 1, dtype=torch.long, device=device)
        torch.cumsum(count, 0, out=ptr[1:])
        # Rank of every node inside its graph, in input order:
        order = torch.argsort(index, stable=True)
        rank = torch.empty_like(node)
        rank[order] = node - ptr[index[order]]

    arange_h = torch.arange(heads, device=device)
    start = (heads * ptr[index] + rank).unsqueeze(1)  # [N, 1]
    pos = (start + count[index].unsqueeze(1) * arange_h).view(-1)  # [N * H]
    col = torch.empty(num_nodes * heads, dtype=torch.long, device=device)
    col[pos] = node.repeat_interleave(heads)
    crow = torch.zeros(dim_size * heads + 1, dtype=torch.long, device=device)
    torch.cumsum(count.repeat_interleave(heads), 0, out=crow[1:])
    return Segments(index, count, crow, col, pos, heads)


def _matrix(seg: Segments, alpha: Tensor, num_nodes: int) -> Tensor:
    """:math:`\\mathbf{A}` as a sparse CSR tensor of shape ``[B*H, N]``."""
    values = alpha.new_empty(alpha.numel())
    values[seg.pos] = alpha.reshape(-1)
    return torch.sparse_csr_tensor(
        seg.crow, seg.col, values,
        (seg.num_segments * seg.heads, num_nodes), check_invariants=False)


def _matrix_t(seg: Segments, alpha: Tensor) -> Tensor:
    """:math:`\\mathbf{A}^{\\top}` as a sparse CSR tensor ``[N, B*H]``."""
    num_nodes, heads = alpha.shape
    crow = torch.arange(0, num_nodes * heads + 1, heads,
                        device=alpha.device)
    col = (seg.index.unsqueeze(1) * heads +
           torch.arange(heads, device=alpha.device)).view(-1)
    return torch.sparse_csr_tensor(
        crow, col, alpha.reshape(-1),
        (num_nodes, seg.num_segments * heads), check_invariants=False)


class _WeightedSegmentSum(torch.autograd.Function):
    r"""Differentiable :math:`\mathbf{P}_{b,h} = \sum_{i\in b}\alpha_{ih}
    \mathbf{x}_i` without an :math:`[N, H, F]` intermediate."""

    @staticmethod
    def forward(ctx, alpha: Tensor, x: Tensor,  # type: ignore[override]
                seg: Segments) -> Tensor:
        ctx.seg = seg
        ctx.save_for_backward(alpha, x)
        out = torch.sparse.mm(_matrix(seg, alpha, x.size(0)), x)
        return out.view(seg.num_segments, seg.heads, x.size(1))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        alpha, x = ctx.saved_tensors
        seg: Segments = ctx.seg
        grad_out = grad_out.reshape(-1, x.size(1)).contiguous()
        grad_alpha = grad_x = None
        if ctx.needs_input_grad[0]:
            pattern = _matrix(seg, alpha, x.size(0))
            sampled = torch.sparse.sampled_addmm(pattern, grad_out, x.t(),
                                                 beta=0.0)
            grad_alpha = sampled.values()[seg.pos].view_as(alpha)
        if ctx.needs_input_grad[1]:
            grad_x = torch.sparse.mm(_matrix_t(seg, alpha), grad_out)
        return grad_alpha, grad_x, None


def weighted_segment_sum(alpha: Tensor, x: Tensor, seg: Segments) -> Tensor:
    r"""Returns :math:`[B, H, F]` sums :math:`\sum_{i\in b}\alpha_{ih}
    \mathbf{x}_i` for node weights :obj:`alpha` :obj:`[N, H]` and node
    features :obj:`x` :obj:`[N, F]`."""
    dtype = x.dtype
    if dtype not in _SPARSE_DTYPES or alpha.dtype != dtype:
        work = torch.promote_types(torch.promote_types(dtype, alpha.dtype),
                                   torch.float32)
        out = _WeightedSegmentSum.apply(alpha.to(work), x.to(work), seg)
        return out.to(dtype)
    return _WeightedSegmentSum.apply(alpha, x, seg)


def weighted_segment_sum_dense(alpha: Tensor, x: Tensor, index: Tensor,
                               dim_size: int) -> Tensor:
    r"""Same result as :func:`weighted_segment_sum` built from plain scatter
    ops, for :func:`torch.compile` (Inductor fuses the broadcast product
    into the scatter, so no :math:`[N, H, F]` buffer is materialised
    there)."""
    src = alpha.unsqueeze(-1) * x.unsqueeze(-2)  # [N, H, F]
    out = src.new_zeros(dim_size, alpha.size(1), x.size(1))
    return out.index_add_(0, index, src)


def segment_softmax(src: Tensor, index: Tensor, dim_size: int) -> Tensor:
    r"""Softmax of :obj:`src` :obj:`[N, H]` over the rows that share an
    :obj:`index` entry, computed in :obj:`[N, H]` and :obj:`[B, H]`
    buffers only (no index broadcasting).

    Groups without rows are never read, so empty graphs give no NaN.
    """
    heads = src.size(1)
    src_max = src.new_full((dim_size, heads), float('-inf'))
    src_max = src_max.index_reduce_(0, index, src.detach(), 'amax')
    out = (src - src_max.index_select(0, index)).exp()
    out_sum = out.new_zeros(dim_size, heads).index_add_(0, index, out)
    return out / out_sum.index_select(0, index)

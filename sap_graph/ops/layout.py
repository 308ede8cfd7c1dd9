r"""A checked batch as the implementations of the SAP core read it.

:class:`Layout` holds the rows the kernels pool, their sets, the gate of
those rows and what turns the kernels' outputs into the :class:`Core` of
the batch (:meth:`Layout.core`). Three kinds:

* ``'flat'`` (:func:`lay_out_flat`): ``x [*, N, F]`` with an index or a
  CSR pointer; leading positions become independent copies of the sets,
  masked nodes leave the batch;
* ``'runs'`` (:func:`sap_graph.ops.padded.lay_out_padded`): a padded
  ``[B, L, F]`` batch whose kept positions are one run per row, as the
  :math:`3B` CSR segments of all :math:`BL` positions;
* ``'rows'`` (the same function): any other padded batch, kept as
  ``[B, L, F]`` with its mask.

:class:`Segments` are the index structures of the ``'flat'`` and
``'runs'`` kinds, shared by the kernels' forward and backward passes.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# We only build CSR tensors with valid, sorted indices ourselves.
warnings.filterwarnings('ignore', message='Sparse CSR tensor support')

#: A value gate: maps rows of features :obj:`[*, F]` to :obj:`[*, H]`.
Gate = Optional[Callable[[Tensor], Tensor]]


def transforming() -> bool:
    r"""Whether a :mod:`torch.func` transform (:func:`~torch.func.vmap`,
    :func:`~torch.func.grad`, :func:`~torch.func.jacrev`, ...) is active
    (:obj:`False` where torch cannot tell)."""
    active = getattr(torch._C, '_are_functorch_transforms_active', None)
    return active is not None and bool(active())


def capturing() -> bool:
    r"""Whether a graph is being captured, by :func:`torch.compile` or
    :func:`torch.jit.trace`, or transformed by :mod:`torch.func`: no value
    may be read back and no branch may depend on the data (a trace would
    bake it in; a batched tensor has no one value), and no custom autograd
    function with a hand-written backward may run (they do not support
    the transforms), so the layouts and paths of plain differentiable ops
    are taken."""
    return (torch.compiler.is_compiling() or torch.jit.is_tracing()
            or transforming())


def readable(*tensors: Optional[Tensor]) -> bool:
    r"""Whether the values of :obj:`tensors` (:obj:`None` entries
    ignored) can be read back now: not while :func:`torch.compile` or
    :func:`torch.jit.trace` captures, nor for a tensor that a
    :mod:`torch.func` transform wraps (an index mapped over by
    :func:`~torch.func.vmap`); the plain tensors of a transformed call
    can."""
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    if not transforming():
        return True
    wrapped = getattr(torch._C._functorch, 'is_functorch_wrapped_tensor',
                      None)
    return wrapped is not None and not any(
        t is not None and wrapped(t) for t in tensors)


def dropout_runs(dropout: float) -> bool:
    r"""Whether attention dropout with probability :obj:`dropout` runs (the
    :obj:`training` flag of :func:`torch.nn.functional.dropout` on the
    capture paths), as a Python :obj:`bool` also when :obj:`dropout` is
    symbolic: :func:`torch.compile` with :obj:`dynamic=True` makes a
    module's float attribute a :class:`torch.SymFloat`, ``dropout > 0.0``
    a :class:`torch.SymBool`, which :func:`~torch.nn.functional.dropout`
    refuses (a graph break, or an error with :obj:`fullgraph=True`), and
    so does ``bool()`` of it under Dynamo. A branch on it is decided
    while tracing instead, behind a guard (a new probability on either
    side of zero recompiles)."""
    if dropout > 0.0:
        return True
    return False


def infer_dim_size(index: Optional[Tensor], ptr: Optional[Tensor]) -> int:
    r"""The number of sets of a batch given without :obj:`dim_size`, as
    PyG's aggregations infer it: from :obj:`ptr`, else the largest
    :obj:`index` + 1 (0 for no node), else one set."""
    if ptr is not None:
        return ptr.numel() - 1
    if index is not None:
        return int(index.max()) + 1 if index.numel() > 0 else 0
    return 1


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


class Core(NamedTuple):
    r"""The SAP core of :math:`S` sets (all differentiable):
    :obj:`pooled` :obj:`[H, S, F]` (attention-weighted sums of the
    features), :obj:`alpha` :obj:`[*, N, H]` (zero at masked positions),
    :obj:`weight_sum` :obj:`[H, S]`, :obj:`res` :obj:`[S, F]` (the residual
    pooling, or :obj:`None`), :obj:`count` :obj:`[S]` (elements per set)
    and :obj:`shape`, the leading shape of the :math:`S` output rows."""
    pooled: Tensor
    alpha: Tensor
    weight_sum: Tensor
    res: Optional[Tensor]
    count: Tensor
    shape: Tuple[int, ...]


class Layout(NamedTuple):
    r"""One batch laid out for the kernels: :obj:`kind` (``'flat'``,
    ``'runs'`` or ``'rows'``), the rows :obj:`x` (``[M, F]``, the kept
    nodes; ``[BL, F]``, all positions; ``[B, L, F]``), their
    :obj:`gate` (or :obj:`None`), their :class:`Segments` :obj:`seg`
    (:obj:`None` for ``'rows'`` and under :func:`torch.compile`), the int64
    set :obj:`index` of each row (``'flat'``), the number of :obj:`sets`
    pooled, the :obj:`mask` (the node mask ``[*, N]`` of ``'flat'``, the
    row mask ``[B, L]`` of the padded kinds), the element :obj:`count` of
    each output set, the leading :obj:`shape` of the output rows and the
    :obj:`alpha_shape` :obj:`[*, N, H]` of the weights."""
    kind: str
    x: Tensor
    gate: Optional[Tensor]
    seg: Optional[Segments]
    index: Optional[Tensor]
    sets: int
    mask: Optional[Tensor]
    count: Tensor
    shape: Tuple[int, ...]
    alpha_shape: Tuple[int, ...]

    def core(self, pooled: Tensor, alpha: Tensor, weight_sum: Tensor,
             res: Optional[Tensor] = None) -> Core:
        r"""The :class:`Core` of the batch from what a kernel returns for
        the rows: ``pooled [H, sets, F]``, ``alpha`` (one row per row of
        :obj:`x`), ``weight_sum [H, sets]`` and ``res [sets, F]``."""
        heads = self.alpha_shape[-1]
        mask = self.mask
        if self.kind == 'runs':
            alpha = alpha.view(*mask.shape, heads).masked_fill(
                ~mask.unsqueeze(-1), 0.0)
            # Sets 3b + 1 are the rows; the padding sets are discarded.
            pooled, weight_sum = pooled[:, 1::3], weight_sum[:, 1::3]
            res = None if res is None else res[1::3]
        elif self.kind == 'flat' and mask is not None:
            # Zero weight at masked positions.
            alpha = alpha.new_zeros(mask.numel(), heads).index_put(
                (mask.reshape(-1), ), alpha)
        return Core(pooled, alpha.view(self.alpha_shape), weight_sum, res,
                    self.count, self.shape)


def flat_batch(x: Tensor, index: Optional[Tensor], ptr: Optional[Tensor],
               dim_size: int, mask: Optional[Tensor]
               ) -> Tuple[Tensor, Tensor, Optional[Tensor], int]:
    """The flat batch ``(x [N', F], index, ptr, sets)``: leading positions
    as independent copies of the sets, masked nodes dropped, int64
    :obj:`index` and :obj:`ptr`."""
    lead, num_nodes = x.shape[:-2], x.size(-2)
    if ptr is not None:
        ptr = ptr.to(torch.long)
    if index is None:
        index = index_from_ptr(ptr, num_nodes)
    index = index.to(torch.long)
    copies = math.prod(lead)
    if len(lead) > 0:  # Copy c of set b becomes set c * dim_size + b.
        offset = torch.arange(copies, device=index.device) * dim_size
        index = (offset.unsqueeze(1) + index.unsqueeze(0)).view(-1)
        if ptr is not None:
            steps = num_nodes * torch.arange(copies, device=ptr.device)
            ptr = torch.cat([ptr.new_zeros(1), (
                ptr[1:].unsqueeze(0) + steps.unsqueeze(1)).view(-1)])
        x = x.reshape(-1, x.size(-1))
    sets = copies * dim_size
    if mask is not None:  # Masked nodes leave the batch altogether.
        mask = mask.reshape(-1)
        x, index = x[mask], index[mask]
        if ptr is not None:  # Still sorted: recount.
            count = torch.zeros_like(ptr[1:]).index_add_(
                0, index, torch.ones_like(index))
            ptr = torch.cat([ptr.new_zeros(1), count.cumsum(0)])
    return x, index, ptr, sets


def lay_out_flat(x: Tensor, index: Optional[Tensor], ptr: Optional[Tensor],
                 dim_size: int, mask: Optional[Tensor], heads: int,
                 gate: Gate = None) -> Layout:
    r"""The ``'flat'`` :class:`Layout` of :obj:`x` :obj:`[*, N, F]` with
    :obj:`index` or :obj:`ptr` (one of them given), :obj:`dim_size` sets per
    leading position and an optional node :obj:`mask` :obj:`[*, N]`; under
    :func:`torch.compile` without :class:`Segments` (no device sync).
    :obj:`gate` (a callable, optional) maps the kept rows to their gate."""
    lead, num_nodes = x.shape[:-2], x.size(-2)
    xs, index, ptr, sets = flat_batch(x, index, ptr, dim_size, mask)
    if capturing():
        seg = None
        count = torch.zeros(sets, dtype=torch.long,
                            device=xs.device).index_add(
                                0, index, torch.ones_like(index))
    else:
        seg = Segments(index, ptr, sets, heads)
        count = seg.count
    return Layout('flat', xs, None if gate is None else gate(xs), seg, index,
                  sets, mask, count, (*lead, dim_size),
                  (*lead, num_nodes, heads))

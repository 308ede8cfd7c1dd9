r"""The one dispatch of the SAP core: which implementation pools a batch.

:func:`pool` lays the batch out (padded rows, leading dimensions, a node
mask), decides the path with :func:`choose_path` and runs it. The paths,
each a sibling module:

* ``'native'`` (:mod:`sap_graph.ops.native`): fused C++ kernels, for
  sorted CPU batches (``ptr``, a sorted ``index``, or padded rows with
  lengths) without attention dropout or gate, float32/float64; unless
  ``SAP_GRAPH_NATIVE=0`` or the kernels cannot be built, and except for a
  few huge graphs (the kernels give each graph to one thread).
* ``'triton'`` (:mod:`sap_graph.ops.triton`): fused Triton kernels, for
  sorted CUDA batches (``ptr`` given) without dropout or gate, **only with
  ``SAP_GRAPH_TRITON=1``**: no GPU has run them yet, so a CUDA tensor takes
  the ``'torch'`` path by default.
* ``'torch'`` (:mod:`sap_graph.ops.torch`): PyTorch ops with a hand-written
  backward; any device, any batch; the reference for the others.
* ``'dense'`` (:func:`sap_graph.ops.padded.pool_dense`): a padded
  ``[B, L, F]`` batch whose mask is not one run per row (or any mask on a
  GPU, or under :func:`torch.compile`), from differentiable ops.
* ``'compiled'`` (:mod:`sap_graph.ops.compiled`): a flat batch under
  :func:`torch.compile`, from differentiable ops.

The switches are read by :mod:`sap_graph.ops.env`. :func:`paths_used`
lists the paths this process has run (eager calls), for run provenance.
"""
from __future__ import annotations

import importlib.util
import math
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

from sap_graph.ops import native as _native
from sap_graph.ops.compiled import pool_compiled
from sap_graph.ops.env import switch
from sap_graph.ops.padded import (
    RunSegments,
    mask_runs,
    masked_reduce,
    pool_dense,
    run_ptr,
)
from sap_graph.ops.residual import residual_pool
from sap_graph.ops.torch import Segments, index_from_ptr, pool_torch

#: Every path name :func:`choose_path` can return.
PATHS = ('native', 'triton', 'torch', 'dense', 'compiled')

_used: set = set()

Gate = Optional[Callable[[Tensor], Tensor]]


class Core(NamedTuple):
    r"""What :func:`pool` returns for :math:`S` sets (all differentiable):
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


def device_type(x: Tensor) -> str:
    """The device type of :obj:`x` as the dispatch sees it (a function of
    its own so that tests can present a CPU tensor as a CUDA one)."""
    return x.device.type


def paths_used() -> List[str]:
    """The paths this process has run so far (eager calls), sorted."""
    return sorted(_used)


def is_padded(x: Tensor, ptr: Optional[Tensor], dim_size: int,
              mask: Optional[Tensor]) -> bool:
    """Whether :obj:`x` :obj:`[*, L, F]` is a padded batch, one set per
    row (leading dimensions, a mask, no :obj:`ptr`, one set)."""
    return (x.dim() > 2 and mask is not None and ptr is None
            and dim_size == 1)


def _may_hold_nonfinite(x: Tensor) -> bool:
    # Whether a padded batch must be zero-filled at its masked positions
    # so that NaN or inf there reaches no output and no gradient: always
    # on GPUs and under torch.compile (no sync; Inductor fuses the fill);
    # on the CPU only when the sum of all features is not finite (one
    # read, where the fill would cost a write of x and its gradient).
    if torch.compiler.is_compiling() or x.device.type != 'cpu':
        return True
    return not bool(torch.isfinite(x.detach().sum()))


def _segment_path(x: Tensor, score_weight: Tensor, seg: Segments,
                  dropout: float, gated: bool) -> str:
    if not seg.sorted or dropout > 0.0 or gated:
        return 'torch'
    device = device_type(x)
    if device == 'cpu':
        # The kernels give each graph to one thread: a batch of a few huge
        # graphs keeps the (multi-threaded) torch path.
        if ((seg.num_nodes < 2**16
             or seg.dim_size >= 4 * torch.get_num_threads())
                and x.dtype in (torch.float32, torch.float64)
                and score_weight.dtype == x.dtype
                and _native.native() is not None):
            return 'native'
    elif device == 'cuda' and switch('triton') == 'on' and (
            importlib.util.find_spec('triton') is not None):
        from sap_graph.ops import triton as _triton  # Only here.
        if _triton.supports(x, score_weight):
            return 'triton'
    return 'torch'


def _runs(mask: Tensor, lengths: Optional[Tensor]
          ) -> Optional[Tuple[Tensor, Tensor]]:
    # One kept run per row: from lengths, or read off a CPU mask (on a GPU
    # that would wait for the device).
    if torch.compiler.is_compiling():
        return None
    if lengths is not None:
        return torch.zeros_like(lengths), lengths
    if mask.device.type == 'cpu':
        return mask_runs(mask)
    return None


def _flat_batch(x: Tensor, index: Optional[Tensor], ptr: Optional[Tensor],
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


def choose_path(x: Tensor, score_weight: Tensor,
                index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: int = 1, mask: Optional[Tensor] = None,
                lengths: Optional[Tensor] = None, dropout: float = 0.0,
                gated: bool = False) -> str:
    r"""The path (one of :data:`PATHS`) that :func:`pool` takes for these
    inputs and the current switches, without running it."""
    return _plan(x, score_weight, index, ptr, dim_size, mask, lengths,
                 dropout, gated)[0]


def _plan(x, score_weight, index, ptr, dim_size, mask, lengths, dropout,
          gated):
    heads = score_weight.size(0)
    if is_padded(x, ptr, dim_size, mask):
        length = x.size(-2)
        mask = mask.reshape(math.prod(x.shape[:-2]), length)
        runs = _runs(mask, None if lengths is None else lengths.reshape(-1))
        if runs is None:
            return 'dense', None, mask
        seg = RunSegments(run_ptr(runs[0].to(torch.long),
                                  runs[1].to(torch.long), length),
                          mask.numel(), heads)
        xs = x.reshape(-1, x.size(-1))
        return _segment_path(xs, score_weight, seg, dropout, gated), seg, mask
    if torch.compiler.is_compiling():
        return 'compiled', None, None
    xs, index, ptr, sets = _flat_batch(x, index, ptr, dim_size, mask)
    seg = Segments(index, ptr, sets, heads)
    return (_segment_path(xs, score_weight, seg, dropout, gated), seg,
            (xs, index))


def _run_segments(path: str, x: Tensor, score_weight: Tensor, seg: Segments,
                  dropout: float, gate: Optional[Tensor],
                  residual: Optional[str]):
    if torch.is_autocast_enabled(x.device.type):
        # Under autocast the core would get half-precision scores next to
        # full-precision features; it runs in the inputs' own (promoted)
        # precision instead, like a softmax under autocast.
        with torch.autocast(x.device.type, enabled=False):
            return _run_segments(path, x, score_weight, seg, dropout, gate,
                                 residual)
    if path == 'native':
        return _native.SAPNativeFunction.apply(x, score_weight, seg.ptr,
                                               residual)
    res = residual_pool(x, seg.index, seg.dim_size, residual)
    if path == 'triton':
        from sap_graph.ops import triton as _triton
        return (*_triton.SAPTritonFunction.apply(x, score_weight, seg), res)
    return (*pool_torch(x, score_weight, seg, dropout, gate), res)


def pool(x: Tensor, score_weight: Tensor, index: Optional[Tensor],
         ptr: Optional[Tensor], dim_size: int,
         mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
         dropout: float = 0.0, gate: Gate = None,
         residual: Optional[str] = None) -> Core:
    r"""The SAP core of one checked batch, on the path of
    :func:`choose_path`.

    Args:
        x (torch.Tensor): Features :obj:`[*, N, F]`.
        score_weight (torch.Tensor): Score matrix :obj:`[H, F]` (scores
            are ``x @ score_weight.t()``).
        index (torch.Tensor, optional): Set of each element :obj:`[N]`.
        ptr (torch.Tensor, optional): CSR pointer of a sorted batch.
        dim_size (int): Number of sets :math:`B` per leading position.
        mask (torch.Tensor, optional): Boolean element mask :obj:`[*, N]`;
            with leading dimensions, no :obj:`ptr` and one set, a padded
            batch (one set per row; masked positions are zero-filled first
            where they may hold NaN or inf, so that whatever they hold
            reaches no output and no gradient).
        lengths (torch.Tensor, optional): The lengths behind :obj:`mask`
            (the kept leading positions), when the caller has them.
        dropout (float, optional): Attention dropout probability (pass
            :obj:`0.0` in evaluation).
        gate (callable, optional): Maps the (kept) features :obj:`[M, F]`
            to a value gate :obj:`[M, H]`.
        residual (str, optional): :obj:`'sum'`, :obj:`'mean'` or
            :obj:`'max'` pooling of the features to return beside.
    """
    gated = gate is not None
    if is_padded(x, ptr, dim_size, mask) and _may_hold_nonfinite(x):
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
    path, seg, layout = _plan(x, score_weight, index, ptr, dim_size, mask,
                              lengths, dropout, gated)
    if not torch.compiler.is_compiling():
        _used.add(path)
    heads = score_weight.size(0)
    lead, num_nodes, channels = x.shape[:-2], x.size(-2), x.size(-1)

    if is_padded(x, ptr, dim_size, mask):
        mask = layout
        batch = mask.size(0)
        x = x.reshape(batch, num_nodes, channels)
        g = None if gate is None else gate(x)
        count = mask.sum(1)
        if path == 'dense':
            training = dropout > 0.0
            pooled, alpha, weight_sum = pool_dense(x, score_weight, mask,
                                                   dropout, training, g)
            res = (None if residual is None else
                   masked_reduce(x, mask, residual))
        else:
            pooled, alpha, weight_sum, res = _run_segments(
                path, x.reshape(batch * num_nodes, channels), score_weight,
                seg, dropout, None if g is None else g.reshape(-1, heads),
                residual)
            alpha = alpha.view(batch, num_nodes, heads).masked_fill(
                ~mask.unsqueeze(-1), 0.0)
            # Sets 3b + 1 are the rows; the padding sets are discarded.
            pooled, weight_sum = pooled[:, 1::3], weight_sum[:, 1::3]
            res = None if res is None else res[1::3]
        return Core(pooled, alpha.view(*lead, num_nodes, heads), weight_sum,
                    res, count, (*lead, 1))

    if path == 'compiled':
        xs, index, _, sets = _flat_batch(x, index, ptr, dim_size, mask)
        g = None if gate is None else gate(xs)
        pooled, alpha, weight_sum = pool_compiled(
            xs, score_weight.to(xs.dtype), index, sets, dropout,
            dropout > 0.0, g)
        res = residual_pool(xs, index, sets, residual)
        count = torch.zeros(sets, dtype=torch.long,
                            device=xs.device).index_add(
                                0, index, torch.ones_like(index))
    else:
        xs, index = layout
        g = None if gate is None else gate(xs)
        pooled, alpha, weight_sum, res = _run_segments(
            path, xs, score_weight, seg, dropout, g, residual)
        count = seg.count
    if mask is not None:  # Zero weight at masked positions.
        alpha = alpha.new_zeros(mask.numel(), heads).index_put(
            (mask.reshape(-1), ), alpha)
    return Core(pooled, alpha.view(*lead, num_nodes, heads), weight_sum, res,
                count, (*lead, dim_size))

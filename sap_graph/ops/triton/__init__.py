r"""Fused Triton kernels of the SAP core on CUDA tensors (issue 15).

Same function as :class:`sap_graph.ops.native.SAPNativeFunction` (the
fused C++ CPU kernels), for a sorted batch given by its CSR pointer
:math:`\mathrm{ptr}` :obj:`[B + 1]`, node features
:math:`\mathbf{X} \in \mathbb{R}^{N \times F}` and score matrix
:math:`\mathbf{W} \in \mathbb{R}^{H \times F}`:

.. math::
    e_{ih} = \langle \mathbf{x}_i, \mathbf{w}_h \rangle, \qquad
    \alpha_{ih} = \frac{\exp(e_{ih} - m_{bh})}{s_{bh}}, \qquad
    \mathbf{P}_{hb} = \sum_{i \in b} \alpha_{ih}\mathbf{x}_i, \qquad
    S_{hb} = \sum_{i \in b} \alpha_{ih},

with :math:`m_{bh} = \max_{i \in b} e_{ih}` and :math:`s_{bh} = \sum_{i \in
b} \exp(e_{ih} - m_{bh})`. Backward, for cotangents
:math:`\partial\mathbf{P}`, :math:`\partial\alpha` and :math:`\partial S`
(each optional):

.. math::
    g_{ih} = \langle \mathbf{x}_i, \partial\mathbf{P}_{hb} \rangle
        + \partial S_{hb} + \partial\alpha_{ih}, \qquad
    \bar g_{bh} = \sum_{i \in b} \alpha_{ih} g_{ih}, \qquad
    \partial e_{ih} = \alpha_{ih}(g_{ih} - \bar g_{bh}),

.. math::
    \partial\mathbf{x}_i = \sum_h \alpha_{ih}\partial\mathbf{P}_{hb}
        + \sum_h \partial e_{ih}\mathbf{w}_h, \qquad
    \partial\mathbf{w}_h = \sum_i \partial e_{ih}\mathbf{x}_i.

The work split and the shared building blocks are in
:mod:`sap_graph.ops.triton.kernels`, the kernels in
:mod:`~sap_graph.ops.triton.forward` and :mod:`~sap_graph.ops.triton.backward`.

Forward: two launches; backward: two launches and one sum. Accumulation is
in float32 for float16/bfloat16 inputs; :math:`\alpha` is kept in float32
for the backward. Products use :func:`triton.language.dot` on float32
blocks padded to 16, by default with IEEE float32 precision (no TF32; see
:data:`DOT_PRECISION`).

Not handled here (:mod:`sap_graph.ops.dispatch` keeps the PyTorch
path, :class:`~sap_graph.ops.torch.SAPPoolFunction`): attention dropout,
the value gate, unsorted batches (index without ``ptr`` on a GPU), float64,
and :math:`F > 256` (:data:`MAX_CHANNELS`) or :math:`H > 64`. Tested in
Triton's interpreter on CPU and on one NVIDIA H200
(``benchmarks/results/gpu_nvidia-h200/``).

This module imports :mod:`triton`; :mod:`sap_graph.ops.dispatch` imports it
only for CUDA tensors that take this path (by default on GPUs of compute
capability 9.0, elsewhere with ``SAP_GRAPH_TRITON=1``), so CPU-only
installs never need Triton.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sap_graph.ops.layout import Core, Layout
from sap_graph.ops.residual import residual_pool
from sap_graph.ops.triton.backward import _sap_bwd_long, _sap_bwd_main
from sap_graph.ops.triton.forward import _sap_fwd_long, _sap_fwd_main

#: Input dtypes of the Triton path (all accumulate in float32).
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: Widest feature dimension and most heads handled. Wider features take
#: the PyTorch path: on an H200 (benchmarks/gpu_check.sh, 2026-12-04) the
#: backward at F=300 (blocks of 512 channels) asked for 289-292 KiB of
#: shared memory (limit 227 KiB), with or without software pipelining.
MAX_CHANNELS = 256
MAX_HEADS = 64

#: Launch parameters forced by tests (keys of :func:`launch_config`).
OVERRIDE: Optional[Dict[str, int]] = None

#: ``input_precision`` of every :func:`triton.language.dot`: ``'ieee'``
#: (float32 FMA, exact), ``'tf32x3'`` (tensor cores, about float32
#: accuracy) or ``'tf32'`` (tensor cores, about 1e-3 relative error).
#: Blocks are padded to 16 heads, so with ``'ieee'`` the products cost
#: ``16 / H`` times the useful arithmetic; which is faster on a given GPU
#: is not measured yet (``benchmarks/profile_cuda.py`` times both).
DOT_PRECISION = 'ieee'


def supports(x: Tensor, score_weight: Tensor) -> bool:
    """Whether :class:`SAPTritonFunction` handles these inputs (dtype and
    shape; the caller checks device, order, dropout and gate)."""
    return (x.dim() == 2 and x.dtype in DTYPES
            and score_weight.dtype == x.dtype
            and 0 < x.size(1) <= MAX_CHANNELS
            and 0 < score_weight.size(0) <= MAX_HEADS)


def _pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()


def _num_sms(device: torch.device) -> int:
    if device.type == 'cuda':
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # Interpreter on the CPU: any small number.


def launch_config(num_nodes: int, num_graphs: int, channels: int,
                  heads: int, device: torch.device) -> Dict[str, int]:
    """Block sizes and work split, from shapes only (no host sync).

    ``BN`` rows per block (the average graph size, 16 or 32; 16 for wide
    features), ``CH`` nodes per chunk (longer graphs are split;
    about four chunks per multiprocessor, 256 to 4096), ``G`` graphs per
    program of short graphs (up to ``CH`` nodes on average, but keeping
    about four programs per multiprocessor), ``num_warps`` 8, or 16 for
    wide blocks."""
    bf = max(16, _pow2(channels))
    bh = max(16, _pow2(heads))
    avg = max(1, num_nodes // max(1, num_graphs))
    # Register budget (ptxas for sm_90, fp32, padded heads): BN 16 or 32,
    # 8 warps, 16 for the widest blocks; the backward still spills a few
    # hundred bytes at BF >= 128 (not measured on a GPU yet).
    bn = min(max(16, _pow2(avg)), 32 if bf <= 64 else 16)
    sms = _num_sms(device)
    ch = min(4096, max(256, _pow2(-(-num_nodes // (4 * sms)))))
    g = max(1, min(ch // avg, -(-num_graphs // (4 * sms))))
    warps = 8 if bf <= 256 else 16
    cfg = dict(BN=bn, BF=bf, BH=bh, CH=ch, G=g, BC=16, num_warps=warps)
    if OVERRIDE:
        cfg.update(OVERRIDE)
    return cfg


# ---------------------------------------------------------------------------
# Host side


def sap_forward(x: Tensor, score_weight: Tensor, index: Tensor, ptr: Tensor
                ) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""``(pooled [H, B, F], alpha [N, H], weight_sum [H, B], alpha32)``
    for a sorted batch (``index`` consistent with ``ptr``); ``alpha32`` is
    :math:`\alpha` in float32 (``alpha`` itself for float32 inputs)."""
    x = x.contiguous()
    w = score_weight.contiguous()
    ptr = ptr.to(torch.long).contiguous()
    index = index.contiguous()
    num_nodes, channels = x.shape
    heads = w.size(0)
    num_graphs = ptr.numel() - 1
    dev = x.device
    f32 = torch.float32
    if num_nodes == 0 or num_graphs == 0:
        return (x.new_zeros(heads, num_graphs, channels),
                x.new_zeros(num_nodes, heads), x.new_zeros(heads, num_graphs),
                x.new_zeros(num_nodes, heads, dtype=f32))
    cfg = launch_config(num_nodes, num_graphs, channels, heads, dev)
    bh, bf, ch = cfg['BH'], cfg['BF'], cfg['CH']
    num_short = -(-num_graphs // cfg['G'])
    num_chunks = -(-num_nodes // ch)
    alpha32 = torch.empty(num_nodes, heads, device=dev, dtype=f32)
    write_a = x.dtype != f32
    alpha = torch.empty_like(alpha32, dtype=x.dtype) if write_a else alpha32
    pool32 = torch.empty(heads, num_graphs, channels, device=dev, dtype=f32)
    wsum32 = torch.empty(heads, num_graphs, device=dev, dtype=f32)
    part_m = torch.empty(num_chunks * 2 * bh, device=dev, dtype=f32)
    part_s = torch.empty_like(part_m)
    part_acc = torch.empty(num_chunks * 2 * bh * bf, device=dev, dtype=f32)
    _sap_fwd_main[(num_short + num_chunks,)](
        x, w, index, ptr, alpha32, alpha, pool32, wsum32, part_m, part_s,
        part_acc, num_nodes, channels, heads, num_graphs, ch, cfg['G'],
        num_short, BN=cfg['BN'], BF=bf, BH=bh, WRITE_A=write_a,
        PREC=DOT_PRECISION, num_warps=cfg['num_warps'])
    _sap_fwd_long[(num_chunks,)](
        index, ptr, alpha32, alpha, pool32, wsum32, part_m, part_s, part_acc,
        num_nodes, channels, heads, num_graphs, ch, BN=cfg['BN'], BF=bf,
        BH=bh, BC=cfg['BC'], WRITE_A=write_a, num_warps=cfg['num_warps'])
    return (pool32.to(x.dtype), alpha, wsum32.to(x.dtype), alpha32)


def sap_backward(x: Tensor, score_weight: Tensor, index: Tensor,
                 ptr: Tensor, alpha32: Tensor, grad_pooled: Optional[Tensor],
                 grad_alpha: Optional[Tensor],
                 grad_weight_sum: Optional[Tensor], need_x: bool,
                 need_w: bool) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """``(grad_x [N, F], grad_score_weight [H, F])``, either :obj:`None`
    when not needed; any cotangent may be :obj:`None`."""
    num_nodes, channels = x.shape
    heads = score_weight.size(0)
    num_graphs = ptr.numel() - 1
    dev = x.device
    grad_x = torch.empty_like(x) if need_x else None
    if num_nodes == 0 or num_graphs == 0 or not (need_x or need_w):
        if need_x:
            grad_x.zero_()
        grad_w = torch.zeros_like(score_weight) if need_w else None
        return grad_x, grad_w
    cfg = launch_config(num_nodes, num_graphs, channels, heads, dev)
    bh, bf, ch = cfg['BH'], cfg['BF'], cfg['CH']
    num_short = -(-num_graphs // cfg['G'])
    num_chunks = -(-num_nodes // ch)
    f32 = torch.float32
    dw_part = torch.empty((num_short + num_chunks) * bh * bf if need_w else 1,
                          device=dev, dtype=f32)
    part_mean = torch.empty(num_chunks * 2 * bh, device=dev, dtype=f32)
    gp = None if grad_pooled is None else grad_pooled.contiguous()
    ga = None if grad_alpha is None else grad_alpha.contiguous()
    gs = None if grad_weight_sum is None else grad_weight_sum.contiguous()
    dummy = alpha32  # Stands in for absent tensors (never read).
    args = (x, score_weight.contiguous(), index.contiguous(),
            ptr.to(torch.long).contiguous(), alpha32,
            dummy if gp is None else gp, dummy if ga is None else ga,
            dummy if gs is None else gs, x if grad_x is None else grad_x,
            dw_part, part_mean)
    flags = dict(HAS_GP=gp is not None, HAS_GA=ga is not None,
                 HAS_GS=gs is not None, NEED_X=need_x, NEED_W=need_w,
                 PREC=DOT_PRECISION, num_warps=cfg['num_warps'])
    _sap_bwd_main[(num_short + num_chunks,)](
        *args, num_nodes, channels, heads, num_graphs, ch, cfg['G'],
        num_short, BN=cfg['BN'], BF=bf, BH=bh, **flags)
    _sap_bwd_long[(num_chunks,)](
        *args, num_nodes, channels, heads, num_graphs, ch, num_short,
        BN=cfg['BN'], BF=bf, BH=bh, BC=cfg['BC'], **flags)
    grad_w = None
    if need_w:
        grad_w = dw_part.view(-1, bh, bf).sum(0)[:heads, :channels]
        grad_w = grad_w.to(score_weight.dtype)
    return grad_x, grad_w


class SAPTritonFunction(torch.autograd.Function):
    r"""The no-dropout, no-gate case of
    :class:`~sap_graph.ops.torch.SAPPoolFunction` on a sorted batch, with the
    Triton kernels above; the outputs of
    :class:`~sap_graph.ops.native.SAPNativeFunction` without the residual
    (which :meth:`TritonPath.run` computes beside it, with
    :mod:`sap_graph.ops.residual`):
    ``(pooled [H, B, F], alpha [N, H], weight_sum [H, B])``, all three
    differentiable. The batch must be sorted (``seg.sorted``): unsorted
    batches keep the PyTorch path."""

    @staticmethod
    def forward(ctx, x: Tensor, score_weight: Tensor,  # type: ignore
                seg) -> Tuple[Tensor, Tensor, Tensor]:
        pooled, alpha, weight_sum, alpha32 = sap_forward(
            x, score_weight, seg.index, seg.ptr)
        ctx.seg = seg
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, score_weight, alpha32)
        return pooled, alpha, weight_sum

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled: Optional[Tensor],  # type: ignore
                 grad_alpha: Optional[Tensor],
                 grad_weight_sum: Optional[Tensor]):
        x, score_weight, alpha32 = ctx.saved_tensors
        if grad_pooled is None and grad_alpha is None and (
                grad_weight_sum is None):
            return None, None, None
        grad_x, grad_w = sap_backward(
            x.contiguous(), score_weight, ctx.seg.index, ctx.seg.ptr,
            alpha32, grad_pooled, grad_alpha, grad_weight_sum,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_x, grad_w, None


class TritonPath:
    r"""The ``triton`` path of :mod:`sap_graph.ops.dispatch`."""

    @staticmethod
    def run(layout: Layout, score_weight: Tensor, dropout: float = 0.0,
            residual: Optional[str] = None) -> Core:
        r"""The :class:`~sap_graph.ops.layout.Core` of a sorted ``'flat'``
        or ``'runs'`` :class:`~sap_graph.ops.layout.Layout` on a CUDA
        device (no dropout, no gate): :class:`SAPTritonFunction` and the
        :obj:`residual` pooling
        (:func:`~sap_graph.ops.residual.residual_pool`)."""
        seg = layout.seg
        pooled, alpha, weight_sum = SAPTritonFunction.apply(
            layout.x, score_weight, seg)
        res = residual_pool(layout.x, seg.index, layout.sets, residual)
        return layout.core(pooled, alpha, weight_sum, res)

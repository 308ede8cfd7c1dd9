r"""Fused Triton kernels of the SAP core on CUDA tensors (issue 15).

Same function as :class:`sap_graph.ops.segments.SAPNativeFunction` (the
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

Work split (no host-device synchronisation: every grid size follows from
:math:`N`, :math:`B`, :math:`F`, :math:`H`):

* A graph of at most :obj:`CH` nodes (*short*) is handled by one program
  from start to end, in blocks of :obj:`BN` rows with an online softmax
  (running max and sum, the accumulator :math:`[H, F]` rescaled as the
  max grows). A graph of at most :obj:`BN` rows is done in registers: its
  rows of :math:`\mathbf{X}` are read once forward and once backward (a
  longer one is read twice backward, and its scores go through memory).
  One program takes :obj:`G` consecutive graphs, so a batch of many tiny
  graphs does not spend a program on each.
* A longer graph (*long*) is cut at the fixed chunk boundaries
  :math:`cCH` of the node range: the program of chunk :math:`c` handles
  the pieces of the (at most two) long graphs that overlap it and writes
  the partial :math:`(m, s, \mathbf{acc})` of each. A second kernel over
  the chunks combines the partials of each long graph (max and rescaled
  sums over its chunks), normalises the chunk's rows of :math:`\alpha` and
  adds its rescaled accumulator to :math:`\mathbf{P}` and :math:`S` with
  atomics (so the forward of a long graph's pooled row is not bitwise
  deterministic; the rest is).
* Backward: the first kernel does short graphs completely (the softmax
  backward's :math:`\bar g` needs a pass over the graph's rows before the
  gradient pass) and writes partial :math:`\bar g` for the pieces of long
  graphs; the second kernel sums those and writes the pieces' gradients.
  :math:`\partial\mathbf{W}` is summed per program into an :math:`[P, H,
  F]` buffer, then reduced with one :func:`torch.sum`.

Forward: two launches; backward: two launches and one sum. Accumulation is
in float32 for float16/bfloat16 inputs; :math:`\alpha` is kept in float32
for the backward. Products use :func:`triton.language.dot` on float32
blocks padded to 16, by default with IEEE float32 precision (no TF32; see
:data:`DOT_PRECISION`).

Not handled here (:func:`sap_graph.ops.segments.sap_pool` keeps the PyTorch
path, :class:`~sap_graph.ops.segments.SAPPoolFunction`): attention
dropout, the value
gate, unsorted batches (index without ``ptr`` on a GPU), float64, and
:math:`F > 1024` or :math:`H > 64`. GPU speed of this path is not yet
measured (written and tested in Triton's interpreter on CPU only).

This module imports :mod:`triton`; :mod:`sap_graph.ops.segments` imports it only
for CUDA tensors, so CPU-only installs never need Triton.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

#: Input dtypes of the Triton path (all accumulate in float32).
DTYPES = (torch.float16, torch.bfloat16, torch.float32)
#: Widest feature dimension and most heads handled (registers).
MAX_CHANNELS = 1024
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
# Building blocks


@triton.jit
def _load_rows(X, rows, rmask, cols, F):
    offs = rows.to(tl.int64)[:, None] * F + cols[None, :]
    return tl.load(X + offs, mask=rmask[:, None] & (cols[None, :] < F),
                   other=0.0).to(tl.float32)


@triton.jit
def _load_head_rows(P, g, B, F, BH: tl.constexpr, BF: tl.constexpr, H):
    """Rows ``P[h, g, :]`` of an ``[H, B, F]`` tensor, as ``[BH, BF]``."""
    heads = tl.arange(0, BH)
    cols = tl.arange(0, BF)
    offs = (heads.to(tl.int64)[:, None] * B + g) * F + cols[None, :]
    return tl.load(P + offs, mask=(heads[:, None] < H) & (cols[None, :] < F),
                   other=0.0).to(tl.float32)


@triton.jit
def _piece(INDEX, PTR, c_lo, c_hi, CH, K: tl.constexpr):
    """Piece ``K`` (0: the graph of the chunk's first row, 1: of its last
    row) of a long graph in chunk ``[c_lo, c_hi)``: ``(take, g, lo_g, hi_g,
    lo, hi)``."""
    g0 = tl.load(INDEX + c_lo)
    g1 = tl.load(INDEX + c_hi - 1)
    if K == 0:
        g = g0
    else:
        g = g1
    lo_g = tl.load(PTR + g)
    hi_g = tl.load(PTR + g + 1)
    if K == 0:
        take = hi_g - lo_g > CH
    else:
        take = (hi_g - lo_g > CH) & (g1 != g0)
    lo = tl.maximum(lo_g, c_lo)
    hi = tl.minimum(hi_g, c_hi)
    return take, g, lo_g, hi_g, lo, hi


@triton.jit
def _fwd_rows(X, wt, E32, lo, hi, F, H, BN: tl.constexpr, BF: tl.constexpr,
              BH: tl.constexpr, PREC: tl.constexpr):
    """Online softmax over rows ``[lo, hi)``: writes the raw scores to
    ``E32`` and returns the running max, sum and accumulator
    ``sum_i exp(e_ih - m_h) x_i``."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    m = tl.full([BH], float('-inf'), tl.float32)
    s = tl.zeros([BH], dtype=tl.float32)
    acc = tl.zeros([BH, BF], dtype=tl.float32)
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        rmask = rows < hi
        x = _load_rows(X, rows, rmask, cols, F)
        e = tl.dot(x, wt, input_precision=PREC)
        eoff = rows.to(tl.int64)[:, None] * H + heads[None, :]
        tl.store(E32 + eoff, e, mask=rmask[:, None] & (heads[None, :] < H))
        e = tl.where(rmask[:, None], e, float('-inf'))
        m_new = tl.maximum(m, tl.max(e, axis=0))
        scale = tl.exp(m - m_new)
        p = tl.exp(e - m_new[None, :])
        s = s * scale + tl.sum(p, axis=0)
        acc = acc * scale[:, None] + tl.dot(tl.trans(p), x,
                                            input_precision=PREC)
        m = m_new
    return m, s, acc


@triton.jit
def _normalize_rows(E32, A, lo, hi, m, s, H, BN: tl.constexpr,
                    BH: tl.constexpr, WRITE_A: tl.constexpr):
    """``alpha = exp(e - m) / s`` in place of the scores of rows ``[lo,
    hi)`` (and into ``A`` in its dtype); returns the sum of ``alpha``."""
    heads = tl.arange(0, BH)
    hmask = heads < H
    inv = 1.0 / s
    total = tl.zeros([BH], dtype=tl.float32)
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        mask = (rows < hi)[:, None] & hmask[None, :]
        offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
        e = tl.load(E32 + offs, mask=mask, other=float('-inf'))
        a = tl.exp(e - m[None, :]) * inv[None, :]
        tl.store(E32 + offs, a, mask=mask)
        if WRITE_A:
            tl.store(A + offs, a.to(A.dtype.element_ty), mask=mask)
        total += tl.sum(a, axis=0)
    return total


@triton.jit
def _fwd_one_block(X, wt, E32, A, lo, hi, F, H, BN: tl.constexpr,
                   BF: tl.constexpr, BH: tl.constexpr, WRITE_A: tl.constexpr,
                   PREC: tl.constexpr):
    """A graph of at most ``BN`` rows ``[lo, hi)``, in registers: writes
    ``alpha``, returns the pooled rows ``[BH, BF]`` and ``sum alpha``."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    rows = lo + tl.arange(0, BN)
    rmask = rows < hi
    x = _load_rows(X, rows, rmask, cols, F)
    e = tl.dot(x, wt, input_precision=PREC)
    e = tl.where(rmask[:, None], e, float('-inf'))
    p = tl.exp(e - tl.max(e, axis=0)[None, :])
    a = p / tl.sum(p, axis=0)[None, :]
    mask = rmask[:, None] & (heads[None, :] < H)
    offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
    tl.store(E32 + offs, a, mask=mask)
    if WRITE_A:
        tl.store(A + offs, a.to(A.dtype.element_ty), mask=mask)
    return tl.dot(tl.trans(a), x, input_precision=PREC), tl.sum(a, axis=0)


# ---------------------------------------------------------------------------
# Forward


@triton.jit
def _sap_fwd_main(X, W, INDEX, PTR, E32, A, POOL, WSUM, PM, PS, PACC,
                  N, F, H, B, CH, G, NUM_SHORT,
                  BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                  WRITE_A: tl.constexpr, PREC: tl.constexpr):
    """Programs ``[0, NUM_SHORT)``: ``G`` graphs each, the short ones
    completely (empty ones as zeros). Programs ``NUM_SHORT + c``: partials
    of the long graphs' pieces in chunk ``c``."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    hmask = heads < H
    out_mask = hmask[:, None] & (cols[None, :] < F)
    wt = tl.load(W + heads[None, :] * F + cols[:, None],
                 mask=hmask[None, :] & (cols[:, None] < F),
                 other=0.0).to(tl.float32)  # [BF, BH]
    if pid < NUM_SHORT:
        g_lo = pid * G
        g_hi = tl.minimum(g_lo + G, B)
        for g in range(g_lo, g_hi):
            lo = tl.load(PTR + g)
            hi = tl.load(PTR + g + 1)
            n = hi - lo
            pool_off = (heads.to(tl.int64)[:, None] * B + g) * F + cols[None, :]
            if n <= CH:
                if n > 0:
                    if n <= BN:
                        pooled, total = _fwd_one_block(
                            X, wt, E32, A, lo, hi, F, H, BN, BF, BH,
                            WRITE_A, PREC)
                    else:
                        m, s, acc = _fwd_rows(X, wt, E32, lo, hi, F, H, BN,
                                              BF, BH, PREC)
                        tl.debug_barrier()  # Scores written, read below.
                        total = _normalize_rows(E32, A, lo, hi, m, s, H, BN,
                                                BH, WRITE_A)
                        pooled = acc / s[:, None]
                    tl.store(POOL + pool_off, pooled, mask=out_mask)
                    tl.store(WSUM + heads * B + g, total, mask=hmask)
                else:
                    tl.store(POOL + pool_off,
                             tl.zeros([BH, BF], dtype=tl.float32),
                             mask=out_mask)
                    tl.store(WSUM + heads * B + g,
                             tl.zeros([BH], dtype=tl.float32), mask=hmask)
    else:
        c = pid - NUM_SHORT
        c_lo = c.to(tl.int64) * CH
        c_hi = tl.minimum(c_lo + CH, N)
        # Names differ from the branch above: the compiler merges names
        # bound in both branches of an ``if`` and wants equal types.
        for k in tl.static_range(2):
            take, gl, lo_g, hi_g, plo, phi = _piece(INDEX, PTR, c_lo, c_hi,
                                                    CH, k)
            if take:
                pm, ps, pacc = _fwd_rows(X, wt, E32, plo, phi, F, H, BN, BF,
                                         BH, PREC)
                slot = c * 2 + k
                tl.store(PM + slot * BH + heads, pm)
                tl.store(PS + slot * BH + heads, ps)
                tl.store(PACC + (slot * BH + heads[:, None]).to(tl.int64) * BF
                         + cols[None, :], pacc)
                if plo == lo_g:  # Zero the outputs the atomics add into.
                    loff = ((heads.to(tl.int64)[:, None] * B + gl) * F
                            + cols[None, :])
                    tl.store(POOL + loff,
                             tl.zeros([BH, BF], dtype=tl.float32),
                             mask=out_mask)
                    tl.store(WSUM + heads * B + gl,
                             tl.zeros([BH], dtype=tl.float32), mask=hmask)


@triton.jit
def _combine_stats(INDEX, PM, PS, g, lo_g, hi_g, CH, BH: tl.constexpr,
                   BC: tl.constexpr):
    """Max and sum of a long graph from the partials of its chunks
    (``BC`` chunks at a time)."""
    heads = tl.arange(0, BH)
    c_first = lo_g // CH
    c_last = (hi_g - 1) // CH
    big_m = tl.full([BH], float('-inf'), tl.float32)
    big_s = tl.zeros([BH], dtype=tl.float32)
    for cc0 in range(c_first, c_last + 1, BC):
        ccs = cc0 + tl.arange(0, BC)
        cmask = ccs <= c_last
        first = tl.load(INDEX + ccs.to(tl.int64) * CH, mask=cmask, other=0)
        slot = ccs * 2 + (first != g).to(ccs.dtype)
        offs = slot[:, None] * BH + heads[None, :]
        pm = tl.load(PM + offs, mask=cmask[:, None], other=float('-inf'))
        ps = tl.load(PS + offs, mask=cmask[:, None], other=0.0)
        m_new = tl.maximum(big_m, tl.max(pm, axis=0))
        big_s = big_s * tl.exp(big_m - m_new) + tl.sum(
            ps * tl.exp(pm - m_new[None, :]), axis=0)
        big_m = m_new
    return big_m, big_s


@triton.jit
def _sap_fwd_long(INDEX, PTR, E32, A, POOL, WSUM, PM, PS, PACC,
                  N, F, H, B, CH,
                  BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                  BC: tl.constexpr, WRITE_A: tl.constexpr):
    """Chunk ``c``: combines the partials of its long graphs, normalises
    their rows of ``alpha`` here and adds this chunk's share to the pooled
    rows and weight sums."""
    c = tl.program_id(0)
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    hmask = heads < H
    out_mask = hmask[:, None] & (cols[None, :] < F)
    c_lo = c.to(tl.int64) * CH
    c_hi = tl.minimum(c_lo + CH, N)
    for k in tl.static_range(2):
        take, g, lo_g, hi_g, lo, hi = _piece(INDEX, PTR, c_lo, c_hi, CH, k)
        if take:
            big_m, big_s = _combine_stats(INDEX, PM, PS, g, lo_g, hi_g, CH,
                                          BH, BC)
            total = _normalize_rows(E32, A, lo, hi, big_m, big_s, H, BN, BH,
                                    WRITE_A)
            slot = c * 2 + k
            pm = tl.load(PM + slot * BH + heads)
            acc = tl.load(PACC + (slot * BH + heads[:, None]).to(tl.int64) * BF
                          + cols[None, :])
            scale = tl.exp(pm - big_m) / big_s
            pool_off = ((heads.to(tl.int64)[:, None] * B + g) * F
                        + cols[None, :])
            tl.atomic_add(POOL + pool_off, acc * scale[:, None],
                          mask=out_mask)
            tl.atomic_add(WSUM + heads * B + g, total, mask=hmask)


# ---------------------------------------------------------------------------
# Backward


@triton.jit
def _bwd_mean_rows(X, A32, GA, lo, hi, dpt, gsv, F, H, BN: tl.constexpr,
                   BF: tl.constexpr, BH: tl.constexpr, HAS_GP: tl.constexpr,
                   HAS_GA: tl.constexpr, PREC: tl.constexpr):
    """``sum_i alpha_ih g_ih`` over rows ``[lo, hi)``."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    hmask = heads < H
    mean = tl.zeros([BH], dtype=tl.float32)
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        rmask = rows < hi
        mask = rmask[:, None] & hmask[None, :]
        offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
        a = tl.load(A32 + offs, mask=mask, other=0.0)
        g = tl.zeros([BN, BH], dtype=tl.float32) + gsv[None, :]
        if HAS_GP:
            x = _load_rows(X, rows, rmask, cols, F)
            g += tl.dot(x, dpt, input_precision=PREC)
        if HAS_GA:
            g += tl.load(GA + offs, mask=mask, other=0.0).to(tl.float32)
        mean += tl.sum(a * g, axis=0)
    return mean


@triton.jit
def _bwd_grad_rows(X, A32, GA, GX, lo, hi, w, dp, dpt, gsv, mean, dw, F, H,
                   BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                   HAS_GP: tl.constexpr, HAS_GA: tl.constexpr,
                   NEED_X: tl.constexpr, NEED_W: tl.constexpr,
                   PREC: tl.constexpr):
    """Softmax backward ``de = alpha (g - mean)``, ``dx`` of rows ``[lo,
    hi)`` and ``dw += de^T x``."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    hmask = heads < H
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        rmask = rows < hi
        mask = rmask[:, None] & hmask[None, :]
        offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
        a = tl.load(A32 + offs, mask=mask, other=0.0)
        g = tl.zeros([BN, BH], dtype=tl.float32) + gsv[None, :]
        if HAS_GP or NEED_W:
            x = _load_rows(X, rows, rmask, cols, F)
        else:
            x = tl.zeros([BN, BF], dtype=tl.float32)
        if HAS_GP:
            g += tl.dot(x, dpt, input_precision=PREC)
        if HAS_GA:
            g += tl.load(GA + offs, mask=mask, other=0.0).to(tl.float32)
        de = a * (g - mean[None, :])
        if NEED_X:
            gx = tl.dot(de, w, input_precision=PREC)
            if HAS_GP:
                gx += tl.dot(a, dp, input_precision=PREC)
            xoffs = rows.to(tl.int64)[:, None] * F + cols[None, :]
            tl.store(GX + xoffs, gx.to(GX.dtype.element_ty),
                     mask=rmask[:, None] & (cols[None, :] < F))
        if NEED_W:
            dw += tl.dot(tl.trans(de), x, input_precision=PREC)
    return dw


@triton.jit
def _bwd_one_block(X, A32, GA, GX, lo, hi, w, dp, dpt, gsv, dw, F, H,
                   BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                   HAS_GP: tl.constexpr, HAS_GA: tl.constexpr,
                   NEED_X: tl.constexpr, NEED_W: tl.constexpr,
                   PREC: tl.constexpr):
    """:func:`_bwd_mean_rows` and :func:`_bwd_grad_rows` for a graph of at
    most ``BN`` rows, reading its rows once."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    rows = lo + tl.arange(0, BN)
    rmask = rows < hi
    mask = rmask[:, None] & (heads[None, :] < H)
    offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
    a = tl.load(A32 + offs, mask=mask, other=0.0)
    g = tl.zeros([BN, BH], dtype=tl.float32) + gsv[None, :]
    if HAS_GP or NEED_W:
        x = _load_rows(X, rows, rmask, cols, F)
    else:
        x = tl.zeros([BN, BF], dtype=tl.float32)
    if HAS_GP:
        g += tl.dot(x, dpt, input_precision=PREC)
    if HAS_GA:
        g += tl.load(GA + offs, mask=mask, other=0.0).to(tl.float32)
    de = a * (g - tl.sum(a * g, axis=0)[None, :])
    if NEED_X:
        gx = tl.dot(de, w, input_precision=PREC)
        if HAS_GP:
            gx += tl.dot(a, dp, input_precision=PREC)
        xoffs = rows.to(tl.int64)[:, None] * F + cols[None, :]
        tl.store(GX + xoffs, gx.to(GX.dtype.element_ty),
                 mask=rmask[:, None] & (cols[None, :] < F))
    if NEED_W:
        dw += tl.dot(tl.trans(de), x, input_precision=PREC)
    return dw


@triton.jit
def _load_cotangents(GP, GS, g, B, F, H, BH: tl.constexpr, BF: tl.constexpr,
                     HAS_GP: tl.constexpr, HAS_GS: tl.constexpr):
    heads = tl.arange(0, BH)
    if HAS_GP:
        dp = _load_head_rows(GP, g, B, F, BH, BF, H)
    else:
        dp = tl.zeros([BH, BF], dtype=tl.float32)
    if HAS_GS:
        gsv = tl.load(GS + heads * B + g, mask=heads < H,
                      other=0.0).to(tl.float32)
    else:
        gsv = tl.zeros([BH], dtype=tl.float32)
    return dp, tl.trans(dp), gsv


@triton.jit
def _sap_bwd_main(X, W, INDEX, PTR, A32, GP, GA, GS, GX, DWP, PMEAN,
                  N, F, H, B, CH, G, NUM_SHORT,
                  BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                  HAS_GP: tl.constexpr, HAS_GA: tl.constexpr,
                  HAS_GS: tl.constexpr, NEED_X: tl.constexpr,
                  NEED_W: tl.constexpr, PREC: tl.constexpr):
    """Short graphs completely (``dw`` partial in row ``pid`` of
    ``DWP``); partial ``sum_i alpha_ih g_ih`` of long graphs' pieces."""
    pid = tl.program_id(0)
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    w = tl.load(W + heads[:, None] * F + cols[None, :],
                mask=(heads[:, None] < H) & (cols[None, :] < F),
                other=0.0).to(tl.float32)  # [BH, BF]
    if pid < NUM_SHORT:
        dw = tl.zeros([BH, BF], dtype=tl.float32)
        g_lo = pid * G
        g_hi = tl.minimum(g_lo + G, B)
        for g in range(g_lo, g_hi):
            lo = tl.load(PTR + g)
            hi = tl.load(PTR + g + 1)
            if hi - lo <= CH:
                dp, dpt, gsv = _load_cotangents(GP, GS, g, B, F, H, BH, BF,
                                                HAS_GP, HAS_GS)
                if hi - lo <= BN:
                    dw = _bwd_one_block(X, A32, GA, GX, lo, hi, w, dp, dpt,
                                        gsv, dw, F, H, BN, BF, BH, HAS_GP,
                                        HAS_GA, NEED_X, NEED_W, PREC)
                else:
                    mean = _bwd_mean_rows(X, A32, GA, lo, hi, dpt, gsv, F, H,
                                          BN, BF, BH, HAS_GP, HAS_GA, PREC)
                    dw = _bwd_grad_rows(X, A32, GA, GX, lo, hi, w, dp, dpt,
                                        gsv, mean, dw, F, H, BN, BF, BH,
                                        HAS_GP, HAS_GA, NEED_X, NEED_W, PREC)
        if NEED_W:
            tl.store(DWP + (pid * BH + heads[:, None]).to(tl.int64) * BF
                     + cols[None, :], dw)
    else:
        c = pid - NUM_SHORT
        c_lo = c.to(tl.int64) * CH
        c_hi = tl.minimum(c_lo + CH, N)
        for k in tl.static_range(2):  # Names differ from above's.
            take, gl, lo_g, hi_g, plo, phi = _piece(INDEX, PTR, c_lo, c_hi,
                                                    CH, k)
            if take:
                pdp, pdpt, pgsv = _load_cotangents(GP, GS, gl, B, F, H, BH,
                                                   BF, HAS_GP, HAS_GS)
                pmean = _bwd_mean_rows(X, A32, GA, plo, phi, pdpt, pgsv, F,
                                       H, BN, BF, BH, HAS_GP, HAS_GA, PREC)
                tl.store(PMEAN + (c * 2 + k) * BH + heads, pmean)


@triton.jit
def _sap_bwd_long(X, W, INDEX, PTR, A32, GP, GA, GS, GX, DWP, PMEAN,
                  N, F, H, B, CH, NUM_SHORT,
                  BN: tl.constexpr, BF: tl.constexpr, BH: tl.constexpr,
                  BC: tl.constexpr, HAS_GP: tl.constexpr,
                  HAS_GA: tl.constexpr, HAS_GS: tl.constexpr,
                  NEED_X: tl.constexpr, NEED_W: tl.constexpr,
                  PREC: tl.constexpr):
    """Chunk ``c``: sums the partial means of its long graphs and writes
    the gradients of their rows here (``dw`` partial in row ``NUM_SHORT +
    c`` of ``DWP``)."""
    c = tl.program_id(0)
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    w = tl.load(W + heads[:, None] * F + cols[None, :],
                mask=(heads[:, None] < H) & (cols[None, :] < F),
                other=0.0).to(tl.float32)
    c_lo = c.to(tl.int64) * CH
    c_hi = tl.minimum(c_lo + CH, N)
    dw = tl.zeros([BH, BF], dtype=tl.float32)
    for k in tl.static_range(2):
        take, g, lo_g, hi_g, lo, hi = _piece(INDEX, PTR, c_lo, c_hi, CH, k)
        if take:
            c_first = lo_g // CH
            c_last = (hi_g - 1) // CH
            mean = tl.zeros([BH], dtype=tl.float32)
            for cc0 in range(c_first, c_last + 1, BC):
                ccs = cc0 + tl.arange(0, BC)
                cmask = ccs <= c_last
                first = tl.load(INDEX + ccs.to(tl.int64) * CH, mask=cmask,
                                other=0)
                slot = ccs * 2 + (first != g).to(ccs.dtype)
                mean += tl.sum(tl.load(PMEAN + slot[:, None] * BH
                                       + heads[None, :],
                                       mask=cmask[:, None], other=0.0),
                               axis=0)
            dp, dpt, gsv = _load_cotangents(GP, GS, g, B, F, H, BH, BF,
                                            HAS_GP, HAS_GS)
            dw = _bwd_grad_rows(X, A32, GA, GX, lo, hi, w, dp, dpt, gsv,
                                mean, dw, F, H, BN, BF, BH, HAS_GP, HAS_GA,
                                NEED_X, NEED_W, PREC)
    if NEED_W:
        tl.store(DWP + ((NUM_SHORT + c) * BH + heads[:, None]).to(tl.int64)
                 * BF + cols[None, :], dw)


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
    :class:`~sap_graph.ops.segments.SAPPoolFunction` on a sorted batch, with the
    Triton kernels above; same signature and outputs as
    :class:`~sap_graph.ops.segments.SAPNativeFunction`:
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

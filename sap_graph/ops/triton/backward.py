r"""Backward kernels of the Triton path: softmax backward, input and
score-matrix gradients (work split in :mod:`sap_graph.ops.triton.kernels`)."""
import triton
import triton.language as tl

from sap_graph.ops.triton.kernels import _load_head_rows, _load_rows, _piece


@triton.jit
def _write_grads(GX, de, a, x, rows, rmask, cols, w, dp, dw, F,
                 HAS_GP: tl.constexpr, NEED_X: tl.constexpr,
                 NEED_W: tl.constexpr, PREC: tl.constexpr):
    """Stores ``dx = de w + alpha dP`` of a block of rows and returns
    ``dw + de^T x``."""
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
def _block_g(X, A32, GA, rows, rmask, dpt, gsv, F, H, BN: tl.constexpr,
             BF: tl.constexpr, BH: tl.constexpr, LOAD_X: tl.constexpr,
             HAS_GP: tl.constexpr, HAS_GA: tl.constexpr,
             PREC: tl.constexpr):
    """``(alpha, x, g)`` of a block of rows: their weights, their features
    (zeros unless ``LOAD_X``) and ``g = <x, dP> + dS + dalpha``."""
    cols = tl.arange(0, BF)
    heads = tl.arange(0, BH)
    mask = rmask[:, None] & (heads[None, :] < H)
    offs = rows.to(tl.int64)[:, None] * H + heads[None, :]
    a = tl.load(A32 + offs, mask=mask, other=0.0)
    g = tl.zeros([BN, BH], dtype=tl.float32) + gsv[None, :]
    if LOAD_X:
        x = _load_rows(X, rows, rmask, cols, F)
    else:
        x = tl.zeros([BN, BF], dtype=tl.float32)
    if HAS_GP:
        g += tl.dot(x, dpt, input_precision=PREC)
    if HAS_GA:
        g += tl.load(GA + offs, mask=mask, other=0.0).to(tl.float32)
    return a, x, g


@triton.jit
def _bwd_mean_rows(X, A32, GA, lo, hi, dpt, gsv, F, H, BN: tl.constexpr,
                   BF: tl.constexpr, BH: tl.constexpr, HAS_GP: tl.constexpr,
                   HAS_GA: tl.constexpr, PREC: tl.constexpr):
    """``sum_i alpha_ih g_ih`` over rows ``[lo, hi)``."""
    mean = tl.zeros([BH], dtype=tl.float32)
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        a, x, g = _block_g(X, A32, GA, rows, rows < hi, dpt, gsv, F, H, BN,
                           BF, BH, HAS_GP, HAS_GP, HAS_GA, PREC)
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
    for r0 in range(lo, hi, BN):
        rows = r0 + tl.arange(0, BN)
        rmask = rows < hi
        a, x, g = _block_g(X, A32, GA, rows, rmask, dpt, gsv, F, H, BN, BF,
                           BH, HAS_GP or NEED_W, HAS_GP, HAS_GA, PREC)
        de = a * (g - mean[None, :])
        dw = _write_grads(GX, de, a, x, rows, rmask, cols, w, dp, dw, F,
                          HAS_GP, NEED_X, NEED_W, PREC)
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
    rows = lo + tl.arange(0, BN)
    rmask = rows < hi
    a, x, g = _block_g(X, A32, GA, rows, rmask, dpt, gsv, F, H, BN, BF, BH,
                       HAS_GP or NEED_W, HAS_GP, HAS_GA, PREC)
    de = a * (g - tl.sum(a * g, axis=0)[None, :])
    return _write_grads(GX, de, a, x, rows, rmask, cols, w, dp, dw, F,
                        HAS_GP, NEED_X, NEED_W, PREC)


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


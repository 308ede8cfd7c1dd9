r"""Triton kernels of :mod:`sap_graph.ops.triton` (the host side, launch
configuration and autograd :class:`~sap_graph.ops.triton.SAPTritonFunction`
live there; the math is in its docstring).

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

"""
import triton
import triton.language as tl


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

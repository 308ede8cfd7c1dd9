r"""Forward kernels of the Triton path: short graphs whole, long graphs in
chunks combined by :func:`_sap_fwd_long` (work split in
:mod:`sap_graph.ops.triton.kernels`)."""
import triton
import triton.language as tl

from sap_graph.ops.triton.kernels import _load_rows, _piece


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

r"""Building blocks shared by the Triton kernels
(:mod:`~sap_graph.ops.triton.forward`, :mod:`~sap_graph.ops.triton.backward`);
the host side, launch configuration and autograd function are in
:mod:`sap_graph.ops.triton`, with the math.

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

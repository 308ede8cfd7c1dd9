"""Cases for the Triton kernels of :mod:`sap_graph.ops.triton`, run on CPU
tensors in Triton's interpreter.

``TRITON_INTERPRET=1`` must be set before :mod:`triton` is first imported,
so this module is not collected by the main test run (its name does not
match ``test_*``): :func:`tests.ops.test_triton.test_interpreter_cases` runs it
with ``python -m pytest`` in a subprocess with the variable set. To run it
by hand::

    TRITON_INTERPRET=1 python -m pytest tests/triton_interpreter_cases.py

Small launch parameters (16-row blocks, 32-node chunks, 2 or 3 graphs per
program) are forced so that small batches exercise every path: several
graphs per program, graphs split across chunks, two long graphs meeting in
one chunk, and the combine loop over several blocks of chunks.
"""
import os

import pytest
import torch

from tests.reference import sap_core_reference

if os.environ.get('TRITON_INTERPRET') != '1':
    pytest.skip('needs TRITON_INTERPRET=1 before triton is imported (run '
                'by tests/test_triton.py)', allow_module_level=True)
triton = pytest.importorskip('triton')

from sap_graph.ops import triton as _triton  # noqa: E402
from sap_graph.ops.torch import Segments  # noqa: E402

SMALL = dict(BN=16, CH=32, G=3, BC=4)
# Empty graphs first, in between and last; one-node graphs; graphs of one
# block (at most 16 rows, done in registers) and of several (25); graphs
# longer than a chunk (40, 70) and two of them meeting in one chunk (33,
# 40).
SIZES = [0, 3, 1, 0, 40, 7, 0, 70, 1, 25, 0, 33, 40, 5, 0]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(_triton, 'OVERRIDE', dict(SMALL))


def make(sizes, channels, heads, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(sizes, dtype=torch.long)
    index = torch.arange(sizes.numel()).repeat_interleave(sizes)
    ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    x = torch.randn(int(sizes.sum()), channels, generator=gen).to(dtype)
    w = (torch.randn(heads, channels, generator=gen) /
         channels**0.5).to(dtype)
    return x, w, index, ptr


def run(fn, x, w, outputs=(0, 1, 2), need=(True, True), seed=1):
    """Outputs and input gradients of a loss with random cotangents on the
    chosen outputs (0: pooled, 1: alpha, 2: weight_sum)."""
    x = x.detach().clone().requires_grad_(need[0])
    w = w.detach().clone().requires_grad_(need[1])
    outs = fn(x, w)
    gen = torch.Generator().manual_seed(seed)
    cots = [torch.randn(o.shape, generator=gen, dtype=torch.float64)
            for o in outs]
    loss = sum((outs[i].double() * cots[i]).sum() for i in outputs)
    loss.backward()
    return [o.detach() for o in outs], [x.grad, w.grad]


def triton_fn(index, ptr, heads):
    seg = Segments(index, ptr, ptr.numel() - 1, heads)
    return lambda x, w: _triton.SAPTritonFunction.apply(x, w, seg)


def check(x, w, index, ptr, outputs=(0, 1, 2), need=(True, True),
          rtol=1e-5, atol=1e-5):
    heads = w.size(0)
    got, got_grads = run(triton_fn(index, ptr, heads), x, w, outputs, need)
    ref, ref_grads = run(lambda x, w: sap_core_reference(x, w, ptr),
                         x.double(), w.double(), outputs, need)
    for name, a, b in zip(('pooled', 'alpha', 'weight_sum'), got, ref,
                          strict=True):
        assert a.dtype == x.dtype and a.shape == b.shape, name
        torch.testing.assert_close(a.double(), b, rtol=rtol, atol=atol,
                                   msg=name)
    for name, a, b in zip(('x', 'score_weight'), got_grads, ref_grads,
                          strict=True):
        if b is None:
            assert a is None, name
            continue
        assert a.dtype == x.dtype, name
        torch.testing.assert_close(a.double(), b, rtol=rtol, atol=atol,
                                   msg=f'grad {name}')
    return got


@pytest.mark.parametrize('heads,channels', [(1, 7), (4, 33), (8, 16)])
def test_values_and_gradients(heads, channels):
    x, w, index, ptr = make(SIZES, channels, heads)
    pooled, alpha, weight_sum = check(x, w, index, ptr)
    empty = torch.tensor(SIZES) == 0
    assert (pooled[:, empty] == 0).all() and (weight_sum[:, empty] == 0).all()


@pytest.mark.parametrize('outputs,need', [
    ((0, ), (True, True)),        # alpha and weight_sum unused: no cotangent
    ((1, ), (True, True)),        # a loss on alpha only
    ((2, ), (True, False)),       # weight_sum only, grad of x only
    ((0, 1), (False, True)),      # grad of score_weight only
])
def test_partial_cotangents(outputs, need):
    x, w, index, ptr = make(SIZES, 9, 3)
    check(x, w, index, ptr, outputs, need)


def test_one_huge_graph():
    """One graph over nine chunks: nine programs share it, and the combine
    reads their partials in three blocks."""
    x, w, index, ptr = make([1, 280, 2], 5, 2)
    check(x, w, index, ptr)


def test_default_launch_config(monkeypatch):
    """The launch parameters chosen from the shapes (``CH`` 256, ``BN``
    32), with one graph longer than a chunk and one of several blocks."""
    monkeypatch.setattr(_triton, 'OVERRIDE', None)
    x, w, index, ptr = make([0, 12, 300, 3, 0, 20, 100], 20, 4)
    cfg = _triton.launch_config(x.size(0), 7, 20, 4, x.device)
    assert cfg['CH'] == 256 and cfg['BN'] == 32
    check(x, w, index, ptr)


def test_bfloat16():
    """bfloat16 inputs, float32 accumulation: compared with the float64
    reference on the same (rounded) inputs."""
    x, w, index, ptr = make(SIZES, 33, 4, dtype=torch.bfloat16)
    check(x, w, index, ptr, rtol=2e-2, atol=2e-2)


def test_no_nodes():
    x, w, index, ptr = make([0, 0, 0], 6, 2)
    (pooled, alpha, weight_sum), (gx, gw) = run(
        triton_fn(index, ptr, 2), x, w)
    assert pooled.shape == (2, 3, 6) and (pooled == 0).all()
    assert alpha.shape == (0, 2) and (weight_sum == 0).all()
    assert gx.shape == (0, 6) and (gw == 0).all()

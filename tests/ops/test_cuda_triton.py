"""The Triton path on the GPU (:mod:`sap_graph.ops.triton`): values and
gradients of the Triton kernels against the PyTorch path in float64 (with
chosen and small forced block sizes, in half precision, on one huge
graph), when :class:`~sap_graph.SAPAggregation` dispatches to them, and no
host sync in their forward and backward.

Runs only where CUDA is available, and skips where Triton is not
installed; ``benchmarks/gpu_check.sh`` runs this module with
:mod:`tests.ops.test_cuda` (the rest of the GPU path).
"""
import pytest
import torch

from sap_graph.ops import torch as _ops
from tests.helpers import SAP
from tests.ops.test_cuda import make_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device')


TRITON_SIZES = [0, 3, 1, 0, 40, 7, 0, 700, 1, 0, 300, 290, 5, 0]


def triton_module():
    return pytest.importorskip('sap_graph.ops.triton',
                               reason='triton is not installed')


def core_batch(sizes, channels, heads, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(sizes)
    index = torch.arange(sizes.numel()).repeat_interleave(sizes)
    ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    x = torch.randn(int(sizes.sum()), channels, generator=gen)
    w = torch.randn(heads, channels, generator=gen) / channels**0.5
    return (x.to(dtype).cuda(), w.to(dtype).cuda(), index.cuda(),
            ptr.cuda(), sizes.numel())


def core_grads(fn, x, w, outputs=(0, 1, 2), seed=1):
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    outs = fn(x, w)
    gen = torch.Generator().manual_seed(seed)
    loss = sum((outs[i].double() * torch.randn(
        outs[i].shape, generator=gen, dtype=torch.float64).cuda()).sum()
        for i in outputs)
    loss.backward()
    return [o.detach().double().cpu() for o in outs] + [
        x.grad.double().cpu(), w.grad.double().cpu()]


SMALL_BLOCKS = dict(BN=16, CH=64, G=3, BC=4)


# Few combinations: every new set of block sizes and flags is one more
# compilation of the kernels (seconds each).
@pytest.mark.parametrize('heads,channels,config,outputs', [
    (4, 33, None, (0, 1, 2)),
    (4, 33, SMALL_BLOCKS, (0, 1, 2)),
    (1, 7, None, (0, 1, 2)),
    (8, 256, None, (0, 1, 2)),
    (4, 256, None, (0, )),  # widest blocks, pooled rows only
    (4, 33, None, (0, )),
    (4, 33, None, (1, )),
])
def test_triton_matches_torch_path(monkeypatch, heads, channels, config,
                                   outputs):
    """Values and gradients (a loss on all outputs, on the pooled rows
    only, on alpha only) of the Triton kernels against the PyTorch path in
    float64, with the launch parameters chosen from the shapes and with
    small forced ones (graphs split over many chunks)."""
    tri = triton_module()
    monkeypatch.setattr(tri, 'OVERRIDE', config)
    x, w, index, ptr, num_graphs = core_batch(TRITON_SIZES, channels, heads)
    seg = _ops.Segments(index, ptr, num_graphs, heads)
    got = core_grads(lambda x, w: tri.SAPTritonFunction.apply(x, w, seg),
                     x, w, outputs)
    ref = core_grads(lambda x, w: _ops.SAPPoolFunction.apply(
        x, w, None, seg, 0.0), x.double(), w.double(), outputs)
    names = ('pooled', 'alpha', 'weight_sum', 'grad x', 'grad w')
    for name, a, b in zip(names, got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    empty = torch.tensor(TRITON_SIZES) == 0
    assert (got[0][:, empty] == 0).all() and (got[2][:, empty] == 0).all()


def _triton_against_float64(sizes, channels, dtype=torch.float32,
                            tol=(1e-4, 1e-5)):
    """Triton's pooled output, weights, weight sums and gradients against
    the PyTorch path's in float64 on the same batch."""
    tri = triton_module()
    x, w, index, ptr, num_graphs = core_batch(sizes, channels, 4, dtype)
    seg = _ops.Segments(index, ptr, num_graphs, 4)
    got = core_grads(lambda x, w: tri.SAPTritonFunction.apply(x, w, seg),
                     x, w)
    ref = core_grads(lambda x, w: _ops.SAPPoolFunction.apply(
        x, w, None, seg, 0.0), x.double(), w.double())
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=tol[0], atol=tol[1])


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_triton_half_precision(dtype):
    _triton_against_float64(TRITON_SIZES, 33, dtype, tol=(2e-2, 2e-2))


def test_triton_one_huge_graph():
    """200,000 nodes in one graph next to small ones: split over many
    programs, combined with the second kernel."""
    _triton_against_float64([3, 200_000, 0, 5], 64)


def test_triton_is_dispatched(monkeypatch):
    """With ``SAP_GRAPH_TRITON=1``, SAPAggregation with ``ptr`` on CUDA
    takes the Triton path, unless ``SAP_GRAPH_TRITON=0``, dropout or the
    gate is used or the batch comes without ``ptr``; with the switch unset
    only on a GPU of a checked architecture (compute capability 9.0)."""
    tri = triton_module()
    monkeypatch.setenv('SAP_GRAPH_TRITON', '1')
    calls = []
    apply = tri.SAPTritonFunction.apply
    monkeypatch.setattr(tri.SAPTritonFunction, 'apply',
                        lambda *a: calls.append(1) or apply(*a))
    x, index, ptr, num_graphs = make_batch([4, 6, 9])
    xg, ig, pg = x.cuda(), index.cuda(), ptr.cuda()
    aggr = SAP(16, heads=2).cuda()
    aggr(xg, ig, pg, dim_size=num_graphs)
    assert len(calls) == 1
    aggr(xg, ig, dim_size=num_graphs)
    SAP(16, heads=2, gated=True).cuda()(xg, ig, pg,
                                                   dim_size=num_graphs)
    SAP(16, heads=2, dropout=0.5).cuda().train()(
        xg, ig, pg, dim_size=num_graphs)
    monkeypatch.setenv('SAP_GRAPH_TRITON', '0')
    aggr(xg, ig, pg, dim_size=num_graphs)
    assert len(calls) == 1
    monkeypatch.delenv('SAP_GRAPH_TRITON')
    aggr(xg, ig, pg, dim_size=num_graphs)
    triton = pytest.importorskip('triton')
    release = tuple(int(p) for p in triton.__version__.split('.')[:2])
    checked = (torch.cuda.get_device_capability(xg.device) == (9, 0)
               and release >= (3, 6))  # Where the GPU check passed.
    assert len(calls) == 1 + checked


def test_triton_no_host_sync():
    """The Triton forward and backward (a loss on the pooled rows and on
    alpha, a graph split over chunks) never wait for the GPU."""
    tri = triton_module()
    x, w, index, ptr, num_graphs = core_batch(TRITON_SIZES, 33, 4)
    seg = _ops.Segments(index, ptr, num_graphs, 4)
    x.requires_grad_()
    w.requires_grad_()

    def step():
        pooled, alpha, _ = tri.SAPTritonFunction.apply(x, w, seg)
        (pooled.sum() + alpha.square().sum()).backward()

    step()  # Compiles the kernels.
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode('error')
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode('default')

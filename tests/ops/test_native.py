"""The fused C++ kernels of the SAP core (:mod:`sap_graph.ops.native`)
and the pure-PyTorch path (:mod:`sap_graph.ops.torch`) against
each other and against plain autograd, on all three outputs and their
gradients, and the fallback when the kernels cannot be built."""

import pytest
import torch

from sap_graph.ops import native as _native
from sap_graph.ops.compiled import pool_compiled
from sap_graph.ops.native import SAPNativeFunction
from sap_graph.ops.torch import SAPPoolFunction, Segments
from tests.helpers import SAP, core_functions, outputs_and_grads
from tests.helpers import core_batch as batch
from tests.reference import sap_core_reference


@pytest.mark.parametrize('heads,channels', [(1, 5), (4, 37), (8, 64)])
def test_native_equals_torch_and_autograd(heads, channels):
    if _native.native() is None:
        pytest.skip('fused kernels cannot be built here')
    # Empty graphs first, last and in between; one-node graphs; a big one.
    sizes = [0, 3, 1, 0, 40, 7, 0, 1, 0]
    x, w, index, ptr, num_graphs = batch(sizes, channels, heads)
    seg = Segments(index, ptr, num_graphs, heads)
    native = outputs_and_grads(
        lambda x, w: SAPNativeFunction.apply(x, w, seg.ptr), x, w)
    torch_path = outputs_and_grads(
        lambda x, w: SAPPoolFunction.apply(x, w, None, seg, 0.0), x, w)
    autograd = outputs_and_grads(
        lambda x, w: pool_compiled(x, w, index, num_graphs), x, w)
    for a, b, c in zip(native, torch_path, autograd, strict=True):
        torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(b, c, rtol=1e-10, atol=1e-10)
    pooled, alpha, weight_sum = native[:3]
    empty = torch.tensor(sizes) == 0
    assert (pooled[:, empty] == 0).all() and (weight_sum[:, empty] == 0).all()


def residual_reference(x, ptr, residual):
    """Sum, mean or max of every graph's rows in float64, graph by graph
    (zero for an empty graph; :func:`torch.amax` shares the gradient of a
    maximum evenly among the rows that attain it)."""
    pool = {'sum': lambda t: t.sum(0), 'mean': lambda t: t.mean(0),
            'max': lambda t: t.amax(0)}[residual]
    rows = [pool(x[int(a):int(b)]) if b > a else x.new_zeros(x.size(1))
            for a, b in zip(ptr[:-1], ptr[1:], strict=True)]
    return torch.stack(rows)


@pytest.mark.parametrize('residual', ['sum', 'mean', 'max'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
def test_core_residual_equals_reference(sap_backend, residual, dtype):
    """The residual pooling computed with the SAP core (in the same pass on
    the fused path), values and gradients, against float64 per-graph
    pooling; ReLU'd features (ties at zero, where PyG's CPU scatter max
    loses part of the gradient) and duplicated rows give ties for the
    maximum, whose gradient is shared."""
    from sap_graph.nn.functional import sap_pool
    sizes = [0, 3, 1, 0, 40, 7, 0, 1, 2, 0]
    x, w, index, ptr, num_graphs = batch(sizes, 37, 4)
    x = x.relu()
    x[5] = x[4]  # Two equal rows in the 40-node graph.
    ref = outputs_and_grads(
        lambda x, w: (*sap_core_reference(x, w, ptr),
                      residual_reference(x, ptr, residual)), x, w)
    got = outputs_and_grads(
        lambda x, w: sap_pool(x, w, index, ptr, num_graphs,
                              residual=residual), x.to(dtype), w.to(dtype))
    if sap_backend == 'native':
        out = sap_pool(x.to(dtype).requires_grad_(), w.to(dtype), index,
                       ptr, num_graphs, residual=residual)
        assert type(out[3].grad_fn).__name__ == 'SAPNativeFunctionBackward'
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a.double(), b, rtol=tol, atol=tol)


def test_native_float32_and_threads():
    if _native.native() is None:
        pytest.skip('fused kernels cannot be built here')
    sizes = torch.randint(0, 60, (300, ), generator=torch.Generator()
                          .manual_seed(0)).tolist()
    x, w, index, ptr, num_graphs = batch(sizes, 48, 4, dtype=torch.float64)
    seg = Segments(index, ptr, num_graphs, 4)
    ref = outputs_and_grads(
        lambda x, w: pool_compiled(x, w, index, num_graphs), x, w)
    threads = torch.get_num_threads()
    try:
        for n in sorted({1, 2, threads}):
            torch.set_num_threads(n)
            got = outputs_and_grads(
                lambda x, w: SAPNativeFunction.apply(x, w, seg.ptr),
                x.float(), w.float())
            for a, b in zip(got, ref, strict=True):
                torch.testing.assert_close(a.double(), b, rtol=1e-4,
                                           atol=1e-4)
    finally:
        torch.set_num_threads(threads)


def test_sorted_cpu_batches_take_the_native_path(sap_backend):
    aggr = SAP(8, heads=2)
    x, _, index, ptr, num_graphs = batch([3, 0, 4], 8, 2, torch.float32)
    x.requires_grad_()
    expected = {'native': 'SAPNativeFunctionBackward',
                'torch': 'SAPPoolFunctionBackward'}[sap_backend]
    for kwargs in (dict(index=index), dict(ptr=ptr)):
        out = aggr(x, **kwargs, dim_size=num_graphs)
        assert core_functions(out) == {expected}
    # Unsorted batches, attention dropout and the gate use the PyTorch path.
    out = aggr(x, index.flip(0), dim_size=num_graphs)
    assert core_functions(out) == {'SAPPoolFunctionBackward'}
    aggr_drop = SAP(8, heads=2, dropout=0.5).train()
    out = aggr_drop(x, index, ptr=ptr, dim_size=num_graphs)
    assert core_functions(out) == {'SAPPoolFunctionBackward'}


def test_few_huge_graphs_keep_the_threaded_torch_path():
    """The kernels give each graph one thread: a batch of fewer graphs than
    4 per thread with over 2^16 nodes stays on the PyTorch path."""
    if _native.native() is None:
        pytest.skip('fused kernels cannot be built here')
    aggr = SAP(4, heads=2)
    graphs = 4 * torch.get_num_threads() - 1
    x, _, index, ptr, _ = batch([2**16 // graphs + 1] * graphs, 4, 2,
                                torch.float32)
    out = aggr(x.requires_grad_(), index, ptr=ptr, dim_size=graphs)
    assert core_functions(out) == {'SAPPoolFunctionBackward'}
    x, _, index, ptr, _ = batch([3] * graphs, 4, 2, torch.float32)
    out = aggr(x.requires_grad_(), index, ptr=ptr, dim_size=graphs)
    assert core_functions(out) == {'SAPNativeFunctionBackward'}


def test_failed_build_falls_back_or_raises(monkeypatch):
    def broken():
        raise OSError('no compiler here')

    monkeypatch.setattr(_native, '_build', broken)
    monkeypatch.setattr(_native, '_module', None)
    monkeypatch.setattr(_native, '_failed', None)
    monkeypatch.setenv('SAP_GRAPH_NATIVE', 'auto')
    with pytest.warns(RuntimeWarning, match='no compiler here'):
        assert _native.native() is None
    aggr = SAP(4, heads=2)
    x, _, index, ptr, num_graphs = batch([2, 3], 4, 2, torch.float32)
    out = aggr(x, index, ptr=ptr, dim_size=num_graphs)  # Still computes.
    assert out.shape == (2, 8) and torch.isfinite(out).all()
    monkeypatch.setenv('SAP_GRAPH_NATIVE', '1')
    with pytest.raises(RuntimeError, match='no compiler here'):
        _native.native()


@pytest.mark.parametrize('heads', [1, 4])
def test_sampled_gather_equals_sparse(heads):
    """The two forms of the backward's sampled product (cuSPARSE-style
    sampled matrix product, used on the CPU; one gather per head, used on
    GPUs) agree."""
    x, _, index, ptr, num_graphs = batch([0, 3, 1, 0, 40, 7, 0], 37, heads)
    seg = Segments(index, ptr, num_graphs, heads)
    grad = torch.randn(heads * num_graphs, 37, dtype=torch.float64)
    cols = seg.node_bags()
    finite = torch.zeros(x.size(0), heads, dtype=torch.float64)
    torch.testing.assert_close(seg.sampled_gather(grad, x, cols),
                               seg.sampled_sparse(grad, x, cols, finite),
                               rtol=1e-12, atol=1e-12)

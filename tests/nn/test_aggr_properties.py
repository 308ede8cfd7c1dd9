"""Property-based tests of :class:`SAPAggregation` (hypothesis): random
graph sizes (including empty and one-node graphs), unsorted batches,
dtypes, huge and tiny magnitudes and duplicate graphs. Outputs are finite,
invariant to node and graph order, and equal to the independent float64
reference :func:`tests.reference.sap_reference`, graph by graph. Every
example runs on the fused C++ kernels or on the pure-PyTorch path (drawn),
with the batch sorted (the kernels' domain) or shuffled."""
from functools import partial

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sap_graph import SAPAggregation
from tests.reference import backend, sap_reference

# Normally initialised queries, so that the attention under test is not
# uniform (an untrained layer with the default zero queries is mean pooling),
# and the plain layer (1 head, no residual, no size scaler) unless a test
# asks otherwise.
SAP = partial(SAPAggregation, heads=1, concat=True, residual=None,
              size_scaler=None, query_init='normal')

SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)

#: Magnitudes per dtype: the reference comparison of low precision dtypes
#: is only meaningful while the attention scores stay moderate.
MAGNITUDES = {
    torch.float64: [1e-300, 1e-30, 1e-3, 1.0, 1e3, 1e30, 1e150],
    torch.float32: [1e-30, 1e-3, 1.0, 1e2, 1e30],
    torch.bfloat16: [1e-3, 1.0, 4.0],
}
#: (rtol, atol relative to the output scale) of the reference comparison,
#: and the magnitude up to which it applies.
TOLERANCE = {
    torch.float64: (1e-9, 1e-9, float('inf')),
    torch.float32: (1e-4, 1e-4, 1e2),
    torch.bfloat16: (5e-2, 5e-2, 4.0),
}
IN_CHANNELS = 4


@st.composite
def batches(draw):
    dtype = draw(st.sampled_from(list(MAGNITUDES)))
    sizes = draw(st.lists(st.integers(0, 6), min_size=1, max_size=6))
    if draw(st.booleans()) and sizes:  # Duplicate a graph.
        sizes.append(sizes[0])
        duplicate = True
    else:
        duplicate = False
    heads = draw(st.integers(1, 3))
    residual = draw(st.sampled_from([None, 'sum', 'mean', 'max']))
    concat = False if residual is not None else draw(st.booleans())
    options = dict(
        heads=heads, concat=concat, residual=residual,
        out_channels=(IN_CHANNELS if residual is not None else
                      draw(st.integers(1, 5))),
        key_channels=draw(st.integers(1, 4)),
        gated=draw(st.booleans()),
        temperature=draw(st.sampled_from([0.5, 1.0, 2.0])))
    return dict(
        dtype=dtype, sizes=sizes, duplicate=duplicate, options=options,
        magnitude=draw(st.sampled_from(MAGNITUDES[dtype])),
        seed=draw(st.integers(0, 2**31 - 1)),
        extra_graphs=draw(st.integers(0, 2)),
        shuffle=draw(st.booleans()),
        backend=draw(st.sampled_from(['native', 'torch'])))


def build(case):
    gen = torch.Generator().manual_seed(case['seed'])
    torch.manual_seed(case['seed'])
    aggr = SAP(IN_CHANNELS, **case['options']).eval()
    sizes = torch.tensor(case['sizes'])
    num_nodes = int(sizes.sum())
    x = torch.randn(num_nodes, IN_CHANNELS, generator=gen, dtype=torch.float64)
    if case['duplicate']:  # The last graph repeats the first one.
        first, last = int(sizes[0]), int(sizes[-1])
        x[num_nodes - last:] = x[:first]
    x = x * case['magnitude']
    index = torch.arange(sizes.numel()).repeat_interleave(sizes)
    # Shuffle the nodes (an unsorted batch vector) or keep them sorted.
    perm = (torch.randperm(num_nodes, generator=gen) if case['shuffle'] else
            torch.arange(num_nodes))
    dtype = case['dtype']
    aggr = aggr.to(dtype)
    return aggr, x[perm].to(dtype), index[perm], len(case['sizes']) + case[
        'extra_graphs']


def scale(out_ref):
    return max(float(out_ref.abs().max()), 1e-300) if out_ref.numel() else 1


@SETTINGS
@given(batches())
def test_matches_reference_and_is_finite(case):
    aggr, x, index, num_graphs = build(case)
    with torch.no_grad(), backend(case['backend']):
        out = aggr(x, index, dim_size=num_graphs)
    assert out.dtype == case['dtype']
    assert out.shape == (num_graphs, aggr.output_channels)
    assert torch.isfinite(out).all()
    counts = torch.bincount(index, minlength=num_graphs)
    assert (out[counts == 0] == 0).all()  # Empty graphs give exact zeros.
    rtol, atol, upto = TOLERANCE[case['dtype']]
    if case['magnitude'] > upto:
        return
    ref = sap_reference(aggr, x, index, num_graphs)[0].detach()
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(out.double(), ref, rtol=rtol,
                               atol=atol * scale(ref))


@SETTINGS
@given(batches(), st.integers(0, 2**31 - 1))
def test_node_and_graph_order_do_not_matter(case, seed):
    aggr, x, index, num_graphs = build(case)
    gen = torch.Generator().manual_seed(seed)
    node_perm = torch.randperm(x.size(0), generator=gen)
    graph_perm = torch.randperm(num_graphs, generator=gen)
    with torch.no_grad(), backend(case['backend']):
        out = aggr(x, index, dim_size=num_graphs)
        # Node i of graph g becomes a node of graph graph_perm[g].
        moved = aggr(x[node_perm], graph_perm[index[node_perm]],
                     dim_size=num_graphs)
    rtol = {torch.float64: 1e-12, torch.float32: 1e-5,
            torch.bfloat16: 2e-2}[case['dtype']]
    atol = rtol * scale(out.double())
    torch.testing.assert_close(moved[graph_perm].double(), out.double(),
                               rtol=rtol, atol=atol)
    if case['duplicate']:
        first, last = 0, len(case['sizes']) - 1
        torch.testing.assert_close(out[first].double(), out[last].double(),
                                   rtol=rtol, atol=atol)


@SETTINGS
@given(batches())
def test_sorted_paths_agree(case):
    """``index``, ``ptr`` and both together give the same result."""
    aggr, x, index, num_graphs = build(case)
    order = torch.sort(index, stable=True).indices
    x, index = x[order], index[order]
    counts = torch.bincount(index, minlength=num_graphs)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    with torch.no_grad(), backend(case['backend']):
        a = aggr(x, index, dim_size=num_graphs)
        b = aggr(x, ptr=ptr, dim_size=num_graphs)
        c = aggr(x, index, ptr=ptr, dim_size=num_graphs)
    rtol = {torch.float64: 1e-12, torch.float32: 1e-5,
            torch.bfloat16: 2e-2}[case['dtype']]
    for other in (b, c):
        torch.testing.assert_close(other.double(), a.double(), rtol=rtol,
                                   atol=rtol * scale(a.double()))


@pytest.mark.parametrize('index', [[1, 0, 1, 1, 3, 0, 1],
                                   [0, 0, 1, 1, 1, 1, 3]])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64])
def test_gradients_are_finite_at_extreme_magnitudes(dtype, index,
                                                    sap_backend):
    index = torch.tensor(index)
    for magnitude in MAGNITUDES[dtype]:
        torch.manual_seed(0)
        aggr = SAP(IN_CHANNELS, heads=2).to(dtype)
        x = (torch.randn(7, IN_CHANNELS, dtype=dtype) * magnitude
             ).requires_grad_()
        out = aggr(x, index, dim_size=4)
        (out / scale(out.detach().double())).sum().backward()
        assert torch.isfinite(x.grad).all(), magnitude
        for name, param in aggr.named_parameters():
            assert torch.isfinite(param.grad).all(), (magnitude, name)

import copy
import io
import sys

import pytest
import torch
from torch_geometric.nn import SAGEConv
from torch_geometric.utils import scatter

from sap_graph import SAPAggregation
from tests.helpers import SAP, SIZES, make_batch
from tests.reference import sap_reference

# Every test runs on the fused C++ kernels and on the pure-PyTorch path.
pytestmark = pytest.mark.usefixtures('sap_backend')




def test_repr_and_widths():
    aggr = SAPAggregation(64, 32, heads=4, concat=True)
    assert str(aggr) == 'SAPAggregation(64, 32, heads=4, concat=True)'
    assert aggr.output_channels == 128
    assert aggr.key_channels == 32
    aggr = SAPAggregation(64, heads=4, concat=False, key_channels=16,
                          dropout=0.1)
    assert str(aggr) == ('SAPAggregation(64, 64, heads=4, concat=False, '
                         'key_channels=16, dropout=0.1)')
    assert aggr.output_channels == 64
    assert aggr.lin_key.weight.shape == (4 * 16, 64)
    assert aggr.lin_value.weight.shape == (4 * 64, 64)
    assert aggr.query.shape == (4, 16)


def test_reset_parameters_changes_weights():
    torch.manual_seed(0)
    aggr = SAP(8, heads=2)
    before = copy.deepcopy(aggr.state_dict())
    aggr.reset_parameters()
    for key, value in aggr.state_dict().items():
        assert not torch.equal(value, before[key]), key


@pytest.mark.parametrize('heads,concat,out,key', [
    (1, True, None, None),
    (4, True, 6, 5),
    (3, False, 6, None),
])
def test_matches_reference(heads, concat, out, key):
    torch.manual_seed(1)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, out, heads=heads, concat=concat,
               key_channels=key)
    out, alpha = aggr(x, index, dim_size=num_graphs,
                      return_attention_weights=True)
    ref_out, ref_alpha = sap_reference(aggr, x, index, num_graphs)
    assert out.shape == (num_graphs, aggr.output_channels)
    assert torch.allclose(out.double(), ref_out, atol=1e-5)
    assert torch.allclose(alpha.double(), ref_alpha, atol=1e-6)
    # Weights of every non-empty graph sum to one per head:
    sums = scatter(alpha, index, 0, num_graphs, 'sum')
    nonempty = torch.tensor(SIZES) > 0
    assert torch.allclose(sums[nonempty], torch.ones_like(sums[nonempty]))


def test_gradients_match_reference():
    torch.manual_seed(2)
    x, index, _, num_graphs = make_batch(SIZES)
    aggr = SAP(8, 4, heads=3)
    x = x.requires_grad_()
    weight = torch.randn(num_graphs, aggr.output_channels)
    (aggr(x, index, dim_size=num_graphs) * weight).sum().backward()
    grads = [x.grad] + [p.grad for p in aggr.parameters()]

    ref = copy.deepcopy(aggr).double()
    ref.zero_grad()
    x_ref = x.detach().double().requires_grad_()
    (sap_reference(ref, x_ref, index, num_graphs)[0] *
     weight.double()).sum().backward()
    ref_grads = [x_ref.grad] + [p.grad for p in ref.parameters()]
    for grad, ref_grad in zip(grads, ref_grads, strict=True):
        assert torch.allclose(grad.double(), ref_grad, atol=1e-5)


def test_index_ptr_both_and_neither_agree():
    torch.manual_seed(3)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, heads=2)
    out_index = aggr(x, index, dim_size=num_graphs)
    out_ptr = aggr(x, ptr=ptr)
    out_both = aggr(x, index, ptr, dim_size=num_graphs)
    assert torch.allclose(out_index, out_ptr, atol=1e-6)
    assert torch.allclose(out_index, out_both, atol=1e-6)

    # Neither: the whole input is one graph.
    out_one = aggr(x)
    ref, _ = sap_reference(aggr, x, torch.zeros_like(index), 1)
    assert out_one.shape == (1, aggr.output_channels)
    assert torch.allclose(out_one.double(), ref, atol=1e-5)


def test_unsorted_index_and_gaps():
    torch.manual_seed(4)
    x, index, _, num_graphs = make_batch(SIZES)
    perm = torch.randperm(x.size(0))
    aggr = SAP(8, heads=3)
    out, alpha = aggr(x[perm], index[perm], dim_size=num_graphs + 2,
                      return_attention_weights=True)
    ref, ref_alpha = sap_reference(aggr, x[perm], index[perm],
                                   num_graphs + 2)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    assert torch.allclose(alpha.double(), ref_alpha, atol=1e-6)
    # Gradients through the unsorted path equal the sorted path's:
    xs = x.clone().requires_grad_()
    aggr(xs, index, dim_size=num_graphs).pow(2).sum().backward()
    xu = x.clone().requires_grad_()
    aggr(xu[perm], index[perm], dim_size=num_graphs).pow(2).sum().backward()
    assert torch.allclose(xs.grad, xu.grad, atol=1e-5)


def test_empty_graphs_are_zero_with_finite_gradients():
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, heads=2)
    x = x.requires_grad_()
    out = aggr(x, ptr=ptr)
    empty = torch.tensor(SIZES) == 0
    assert torch.equal(out[empty], torch.zeros_like(out[empty]))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    for p in aggr.parameters():
        assert torch.isfinite(p.grad).all()

    # No nodes at all:
    empty_x = torch.zeros(0, 8, requires_grad=True)
    out = aggr(empty_x, torch.zeros(0, dtype=torch.long), dim_size=3)
    assert torch.equal(out, torch.zeros(3, aggr.output_channels))
    out.sum().backward()
    assert empty_x.grad.shape == (0, 8)


def test_single_node_graph_gives_value_vector():
    aggr = SAP(8, 5, heads=3)
    x = torch.randn(1, 8)
    out = aggr(x, torch.zeros(1, dtype=torch.long), dim_size=1)
    assert torch.allclose(out, aggr.lin_value(x), atol=1e-6)


def test_huge_inputs_stay_finite():
    torch.manual_seed(5)
    x, index, _, num_graphs = make_batch(SIZES)
    aggr = SAP(8, heads=4)
    x = (x * 1e4).requires_grad_()
    out = aggr(x, index, dim_size=num_graphs)
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    ref, _ = sap_reference(aggr, x.detach(), index, num_graphs)
    assert torch.allclose(out.double(), ref, rtol=1e-4, atol=1e-1)


def test_permutation_invariance_and_graph_by_graph():
    torch.manual_seed(6)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, heads=2)
    out = aggr(x, ptr=ptr)
    # Permute nodes within each graph, keeping the batch sorted:
    perm = torch.cat([torch.randperm(int(n)) + int(start)
                      for start, n in zip(ptr[:-1], SIZES, strict=True)])
    assert torch.allclose(aggr(x[perm], ptr=ptr), out, atol=1e-6)
    # Each graph on its own gives the batched row:
    for b in range(num_graphs):
        xb = x[ptr[b]:ptr[b + 1]]
        single = aggr(xb, torch.zeros(xb.size(0), dtype=torch.long),
                      dim_size=1)
        assert torch.allclose(single[0], out[b], atol=1e-6)


def test_sage_conv_neighbourhood_aggregation():
    torch.manual_seed(7)
    aggr = SAP(16, heads=4, concat=False)
    conv = SAGEConv(16, 32, aggr=aggr)
    x = torch.randn(10, 16)
    # Nodes 0, 5..9 receive no messages.
    edge_index = torch.tensor([[0, 1, 2, 3, 4, 6, 7, 8],
                               [1, 1, 2, 3, 3, 4, 4, 4]])
    out = conv(x, edge_index)
    assert out.shape == (10, 32)
    agg, _ = sap_reference(aggr, x[edge_index[0]], edge_index[1], 10)
    expected = conv.lin_l(agg.float()) + conv.lin_r(x)
    assert torch.allclose(out, expected, atol=1e-5)
    out.sum().backward()
    assert torch.isfinite(aggr.query.grad).all()


def test_gradcheck_float64():
    torch.manual_seed(8)
    x, index, _, _ = make_batch([2, 0, 3, 1], channels=3)
    aggr = SAP(3, 2, heads=2).double()
    x = x.double().requires_grad_()
    query = aggr.query.detach().clone().requires_grad_()

    def fn(x: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(aggr, {'query': query}, (x, index),
                                          {'dim_size': 4})

    assert torch.autograd.gradcheck(fn, (x, query))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    assert torch.autograd.gradcheck(
        lambda x: aggr(x[perm], index[perm], dim_size=4), (x, ))


def test_bfloat16_close_to_float32():
    torch.manual_seed(9)
    x, index, ptr, num_graphs = make_batch([20, 3, 40, 0, 11], channels=16)
    aggr = SAP(16, heads=4)
    out32 = aggr(x, ptr=ptr)
    aggr_bf = copy.deepcopy(aggr).to(torch.bfloat16)
    x_bf = x.to(torch.bfloat16).requires_grad_()
    out_bf = aggr_bf(x_bf, ptr=ptr)
    assert out_bf.dtype == torch.bfloat16
    rel = (out_bf.float() - out32).norm() / out32.norm()
    assert rel < 0.03
    out_bf.float().sum().backward()
    assert torch.isfinite(x_bf.grad.float()).all()


def test_bad_input_raises_value_error():
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8)
    with pytest.raises(ValueError, match='with 16 entries'):
        aggr(x, index[:-1], dim_size=num_graphs)
    with pytest.raises(ValueError, match="invalid 'dim_size'"):
        aggr(x, index, dim_size=3)
    with pytest.raises(ValueError, match="invalid 'dim_size'"):
        aggr(x, index - 1, dim_size=num_graphs)
    with pytest.raises(ValueError, match='Expected node features with 8'):
        aggr(torch.randn(16, 7), index, dim_size=num_graphs)
    with pytest.raises(ValueError, match="'ptr' to run from 0 to 16"):
        aggr(x, ptr=ptr - 1)
    with pytest.raises(ValueError, match='second-to-last'):
        aggr(x.t(), index, dim_size=num_graphs, dim=-1)
    with pytest.raises(ValueError, match="'heads' must be positive"):
        SAP(8, heads=0)


@pytest.mark.parametrize('kwargs,message', [
    ({'heads': 'x'}, "'heads' must be an integer (got 'x')"),
    ({'heads': 2.0}, "'heads' must be an integer (got 2.0)"),
    ({'heads': True}, "'heads' must be an integer (got True)"),
    ({'dropout': 'x'}, "'dropout' must be a number (got 'x')"),
    ({'dropout': 1.0}, "'dropout' must be in [0, 1) (got 1.0)"),
    ({'temperature': None}, "'temperature' must be a number (got None)"),
    ({'temperature': -1}, "'temperature' must be positive and finite (got -1)"),
    ({'residual': 'min'}, "'residual' must be one of"),
    ({'size_scaler': 'sqrt'}, "'size_scaler' must be 'log' or None"),
    ({'query_init': 'ones'}, "'query_init' must be 'zeros' or 'normal'"),
])
def test_invalid_options_are_named(kwargs, message):
    with pytest.raises(ValueError) as info:
        SAP(8, **kwargs)
    assert message in str(info.value)


def test_numpy_integers_are_integers():
    import numpy as np
    assert SAP(np.int64(8), heads=np.int64(2)).heads == 2


def test_state_dict_round_trip():
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, 4, heads=2)
    buffer = io.BytesIO()
    torch.save(aggr.state_dict(), buffer)
    buffer.seek(0)
    other = SAP(8, 4, heads=2)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(aggr(x, ptr=ptr), other(x, ptr=ptr))


def test_attention_dropout_only_in_training():
    torch.manual_seed(10)
    x, index, ptr, num_graphs = make_batch([30, 40], channels=8)
    aggr = SAP(8, heads=2, dropout=0.5)
    aggr.eval()
    ref, _ = sap_reference(aggr, x, index, num_graphs)
    assert torch.allclose(aggr(x, ptr=ptr).double(), ref, atol=1e-5)
    aggr.train()
    outs = [aggr(x, ptr=ptr) for _ in range(2)]
    assert not torch.allclose(outs[0], outs[1])
    assert not torch.allclose(outs[0].double(), ref, atol=1e-3)
    # Returned weights are the softmax before dropout:
    _, alpha = aggr(x, ptr=ptr, return_attention_weights=True)
    assert torch.allclose(alpha.double(), sap_reference(
        aggr, x, index, num_graphs)[1], atol=1e-6)


@pytest.mark.parametrize('with_index', [True, False])
def test_leading_batch_dimensions(with_index):
    torch.manual_seed(11)
    aggr = SAP(8, heads=2)
    x = torch.randn(3, 12, 8)  # e.g. 3 images x 12 positions
    if with_index:
        index = torch.tensor([0] * 5 + [1] * 7)
        out, alpha = aggr(x, index, dim_size=2, dim=-2,
                          return_attention_weights=True)
        assert out.shape == (3, 2, aggr.output_channels)
    else:
        index = torch.zeros(12, dtype=torch.long)
        out, alpha = aggr(x, dim=1, return_attention_weights=True)
        assert out.shape == (3, 1, aggr.output_channels)
    assert alpha.shape == (3, 12, 2)
    for b in range(3):
        row, row_alpha = aggr(x[b], index, dim_size=out.size(1),
                              return_attention_weights=True)
        assert torch.allclose(out[b], row, atol=1e-6)
        assert torch.allclose(alpha[b], row_alpha, atol=1e-6)


@pytest.mark.compile
@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='torch.compile tested on Linux')
def test_compile_no_graph_breaks():
    import torch._dynamo as dynamo

    torch.manual_seed(12)
    aggr = SAP(8, heads=2)
    x, index, _, num_graphs = make_batch(SIZES)
    explain = dynamo.explain(aggr)(x, index, dim_size=num_graphs)
    assert explain.graph_break_count == 0

    compiled = torch.compile(aggr, dynamic=True)
    for sizes in (SIZES, [4, 9, 2], [1, 0, 0, 6, 3, 3, 8]):
        x, index, _, num_graphs = make_batch(sizes, seed=len(sizes))
        expected = aggr(x, index, dim_size=num_graphs)
        out = compiled(x, index, dim_size=num_graphs)
        assert torch.allclose(out, expected, atol=1e-6)


def test_gradient_through_attention_weights():
    """A loss on the returned weights (e.g. a head-diversity penalty)
    back-propagates like the reference's."""
    torch.manual_seed(13)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, 4, heads=3)
    x = x.requires_grad_()
    out, alpha = aggr(x, ptr=ptr, return_attention_weights=True)
    target = torch.randn_like(alpha)
    ((alpha * target).sum() + out.pow(2).sum()).backward()

    ref = copy.deepcopy(aggr).double()
    ref.zero_grad()
    x_ref = x.detach().double().requires_grad_()
    ref_out, ref_alpha = sap_reference(ref, x_ref, index, num_graphs)
    ((ref_alpha * target.double()).sum() + ref_out.pow(2).sum()).backward()
    assert torch.allclose(x.grad.double(), x_ref.grad, atol=1e-5)
    assert torch.allclose(aggr.query.grad.double(), ref.query.grad,
                          atol=1e-5)


def test_gradcheck_with_attention_dropout():
    torch.manual_seed(14)
    x, index, _, _ = make_batch([4, 0, 5], channels=3)
    aggr = SAP(3, 2, heads=2, dropout=0.4).double().train()
    x = x.double().requires_grad_()

    def fn(x: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(0)  # The same dropout mask on every call.
        out, alpha = aggr(x, index, dim_size=3,
                          return_attention_weights=True)
        return out, alpha

    assert torch.autograd.gradcheck(fn, (x, ))


# Attention controls ######################################################


@pytest.mark.parametrize('kwargs', [
    dict(temperature=0.3),
    dict(temperature=2.0, learn_temperature=True),
    dict(gated=True),
    dict(heads=2, out_channels=4, residual='mean'),
    dict(heads=3, concat=False, residual='mean', gated=True),
])
def test_controls_match_reference(kwargs):
    torch.manual_seed(15)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, **kwargs)
    if aggr.log_temperature is not None:  # Not at its initial value.
        aggr.log_temperature.data.fill_(-0.7)
    x = x.requires_grad_()
    out, alpha = aggr(x, ptr=ptr, return_attention_weights=True)
    ref, ref_alpha = sap_reference(aggr, x.detach(), index, num_graphs)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    assert torch.allclose(alpha.double(), ref_alpha, atol=1e-6)
    # Unsorted path agrees, and gradients match the reference's.
    perm = torch.randperm(x.size(0))
    assert torch.allclose(aggr(x[perm], index[perm], dim_size=num_graphs),
                          out, atol=1e-5)
    weight = torch.randn_like(out)
    (out * weight).sum().backward()
    ref_aggr = copy.deepcopy(aggr).double()
    ref_aggr.zero_grad()
    x_ref = x.detach().double().requires_grad_()
    (sap_reference(ref_aggr, x_ref, index, num_graphs)[0] *
     weight.double()).sum().backward()
    assert torch.allclose(x.grad.double(), x_ref.grad, atol=1e-5)
    for (name, p), p_ref in zip(aggr.named_parameters(),
                                ref_aggr.parameters(), strict=True):
        assert torch.allclose(p.grad.double(), p_ref.grad, atol=1e-5), name


def test_temperature_sharpens_attention():
    x, index, ptr, _ = make_batch([30], channels=8)
    torch.manual_seed(16)
    aggr = SAP(8, heads=2)
    cold = copy.deepcopy(aggr)
    cold.temperature = 0.1
    _, a_warm = aggr(x, ptr=ptr, return_attention_weights=True)
    _, a_cold = cold(x, ptr=ptr, return_attention_weights=True)
    assert (a_cold.max(0).values > a_warm.max(0).values).all()
    with pytest.raises(ValueError, match="'temperature' must be positive"):
        SAP(8, temperature=0.0)


def test_node_mask():
    torch.manual_seed(17)
    x, index, ptr, num_graphs = make_batch(SIZES)
    mask = torch.rand(x.size(0)) > 0.4
    mask[ptr[4]:ptr[5]] = False  # Graph 4 (7 nodes) entirely masked.
    aggr = SAP(8, heads=2, residual=None)
    out, alpha = aggr(x, ptr=ptr, mask=mask, return_attention_weights=True)
    ref, ref_alpha = sap_reference(aggr, x, index, num_graphs, mask=mask)
    assert torch.allclose(out.double(), ref, atol=1e-5)
    assert torch.equal(alpha[~mask], torch.zeros_like(alpha[~mask]))
    assert torch.allclose(alpha.double(), ref_alpha, atol=1e-6)
    assert torch.equal(out[4], torch.zeros_like(out[4]))
    # Same as dropping the masked nodes from the input:
    kept = aggr(x[mask], index[mask], dim_size=num_graphs)
    assert torch.allclose(out, kept, atol=1e-6)
    # Unsorted index path and a mask with leading dimensions:
    assert torch.allclose(aggr(x, index, dim_size=num_graphs, mask=mask),
                          out, atol=1e-6)
    x3 = x.unsqueeze(0).expand(2, -1, -1)
    out3 = aggr(x3, ptr=ptr, mask=mask.unsqueeze(0).expand(2, -1))
    assert torch.allclose(out3[1], out, atol=1e-6)
    with pytest.raises(ValueError, match="boolean 'mask'"):
        aggr(x, ptr=ptr, mask=mask.float())


def test_untrained_layer_is_mean_pooling_of_the_values():
    # Zero queries: every node of a graph gets the same weight, so the
    # output is the value projection of the mean; the queries still learn.
    torch.manual_seed(19)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAPAggregation(8, residual=None)  # 4 averaged heads.
    out, alpha = aggr(x, ptr=ptr, return_attention_weights=True)
    count = torch.bincount(index, minlength=num_graphs)
    assert torch.allclose(alpha, (1.0 / count[index]).unsqueeze(1).expand(
        -1, 4))
    mean = scatter(x, index, 0, num_graphs, 'mean')
    values = aggr.lin_value(mean).view(num_graphs, 4, 8).mean(1)
    nonempty = count > 0
    assert torch.allclose(out[nonempty], values[nonempty], atol=1e-6)
    assert torch.equal(out[~nonempty], torch.zeros_like(out[~nonempty]))
    (out * torch.randn_like(out)).sum().backward()
    assert aggr.query.grad.abs().sum() > 0


@pytest.mark.parametrize('residual', ['sum', 'mean', 'max'])
@pytest.mark.parametrize('heads,concat,out', [
    (4, False, None),  # Same width: no projection.
    (4, True, None),   # 32 wide: the pooled input is projected.
    (2, True, 3),
])
def test_residual_matches_reference(residual, heads, concat, out):
    torch.manual_seed(20)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, out, heads=heads, concat=concat, residual=residual)
    assert (aggr.lin_residual is None) == (aggr.output_channels == 8)
    x = x.requires_grad_()
    weight = torch.randn(num_graphs, aggr.output_channels)
    result = aggr(x, index, ptr=ptr, dim_size=num_graphs)
    (result * weight).sum().backward()
    ref = copy.deepcopy(aggr).double()
    ref.zero_grad()
    x_ref = x.detach().double().requires_grad_()
    ref_out = sap_reference(ref, x_ref, index, num_graphs)[0]
    assert torch.allclose(result.double(), ref_out, atol=1e-5)
    (ref_out * weight.double()).sum().backward()
    assert torch.allclose(x.grad.double(), x_ref.grad, atol=1e-5)
    for p, q in zip(aggr.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p.grad.double(), q.grad, atol=1e-5)


def test_size_scaler_matches_reference():
    torch.manual_seed(21)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, heads=4, concat=False, residual='mean', size_scaler='log')
    out = aggr(x, ptr=ptr)
    ref = sap_reference(aggr, x, index, num_graphs)[0]
    assert torch.allclose(out.double(), ref, atol=1e-5)
    # Two graphs of the same nodes, one repeated: the scaler tells them
    # apart, a plain softmax average does not.
    x2 = torch.cat([x[:3], x[:3], x[:3]])
    index2 = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1, 1])
    plain = SAP(8, heads=4, concat=False)
    same = plain(x2, index2, dim_size=2)
    assert torch.allclose(same[0], same[1], atol=1e-6)
    scaled = aggr(x2, index2, dim_size=2)
    assert not torch.allclose(scaled[0], scaled[1], atol=1e-3)


def test_rezero_starts_as_the_residual_and_matches_reference():
    torch.manual_seed(22)
    x, index, ptr, num_graphs = make_batch(SIZES)
    x.requires_grad_()
    aggr = SAP(8, heads=4, concat=False, residual='max', rezero=True)
    out = aggr(x, ptr=ptr)  # gamma = 0: max pooling exactly.
    expected = scatter(x, index, dim_size=num_graphs, reduce='max')
    torch.testing.assert_close(out, expected)
    out.sum().backward()  # gamma learns first; the attention next.
    assert aggr.gamma.grad.abs().sum() > 0
    assert aggr.query.grad.abs().sum() == 0
    with torch.no_grad():
        aggr.gamma.uniform_(-1, 1)
    ref = sap_reference(aggr, x.detach(), index, num_graphs)[0]
    torch.testing.assert_close(aggr(x, ptr=ptr).double(), ref, atol=1e-5,
                               rtol=1e-5)
    assert 'rezero=True' in repr(aggr)
    aggr.reset_parameters()
    assert aggr.gamma.abs().sum() == 0
    with pytest.raises(ValueError, match="'rezero' .* set 'residual'"):
        SAPAggregation(8, residual=None, rezero=True)


def test_gradcheck_rezero():
    torch.manual_seed(23)
    x, index, ptr, num_graphs = make_batch([3, 0, 5], channels=4)
    aggr = SAP(4, heads=2, residual='mean', rezero=True).double()
    with torch.no_grad():
        aggr.gamma.uniform_(-1, 1)
    x = x.double().requires_grad_()
    # gamma is an input so that gradcheck perturbs it; the layer reads it
    # as its own parameter.
    assert torch.autograd.gradcheck(
        lambda x, gamma: aggr(x, ptr=ptr), (x, aggr.gamma))


def test_option_errors():
    with pytest.raises(ValueError, match="'residual' must be one of"):
        SAPAggregation(8, residual='min')
    with pytest.raises(ValueError, match="'query_init' must be"):
        SAPAggregation(8, query_init='uniform')
    with pytest.raises(ValueError, match="'size_scaler' must be"):
        SAPAggregation(8, size_scaler='sqrt')


def test_gradcheck_gated():
    torch.manual_seed(18)
    x, index, _, _ = make_batch([3, 0, 4], channels=3)
    aggr = SAP(3, 2, heads=2, gated=True).double()
    x = x.double().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x: aggr(x, index, dim_size=3, return_attention_weights=True),
        (x, ))


def test_autocast_bfloat16():
    """Under CPU autocast the projections run in bfloat16 while the segment
    softmax keeps the features' precision (a mixed-dtype core failed)."""
    torch.manual_seed(5)
    x, index, ptr, num_graphs = make_batch(SIZES)
    aggr = SAP(8, 4, heads=4)
    ref, _ = sap_reference(aggr, x, index, num_graphs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = aggr(x, index, ptr, dim_size=num_graphs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=0.05, atol=0.05)
    x = x.requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        aggr(x, index, ptr, dim_size=num_graphs).float().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0

"""The options of :class:`~sap_graph.SAPAggregation` (temperature, gate,
residual, size scaler, rezero, mask) against the float64 reference, and
the errors for invalid ones."""
import copy

import pytest
import torch
from torch_geometric.utils import scatter

from sap_graph import SAPAggregation
from tests.helpers import SAP, SIZES, make_batch
from tests.reference import sap_reference

# Every test runs on the fused C++ kernels and on the pure-PyTorch path.
pytestmark = pytest.mark.usefixtures('sap_backend')


@pytest.mark.parametrize('kwargs,message', [
    ({'heads': 'x'}, "'heads' must be an integer (got 'x')"),
    ({'heads': 2.0}, "'heads' must be an integer (got 2.0)"),
    ({'heads': True}, "'heads' must be an integer (got True)"),
    ({'dropout': 'x'}, "'dropout' must be a number (got 'x')"),
    ({'dropout': 1.0}, "'dropout' must be in [0, 1) (got 1.0)"),
    ({'temperature': None}, "'temperature' must be a number (got None)"),
    ({'temperature': -1}, "'temperature' must be positive and finite (got -1)"),
    ({'temperature': 1e-40}, "'temperature' must be at least 1e-06 "
                             "(got 1e-40)"),
    ({'temperature': 1e-7}, "'temperature' must be at least 1e-06 (got 1e-07)"),
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


def test_smallest_temperature_stays_finite():
    """At the smallest temperature accepted, random queries give finite
    outputs and gradients (at 1e-40 they were inf, the weights NaN)."""
    x, index, ptr, num_graphs = make_batch([7, 0, 12], channels=8)
    torch.manual_seed(5)
    aggr = SAP(8, heads=2, temperature=1e-6, query_init='normal')
    x.requires_grad_()
    out = aggr(x, ptr=ptr, dim_size=num_graphs)
    out.square().sum().backward()
    grads = [x.grad] + [p.grad for p in aggr.parameters()]
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(g).all() for g in grads if g is not None)


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
    aggr = SAPAggregation(8, residual=None, size_scaler=None)  # 4 heads.
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
    plain = SAP(8, heads=4, concat=False, residual='mean', size_scaler=None)
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

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
    with pytest.raises(ValueError, match="non-negative 'index'"):
        aggr(x, index - 1, dim_size=num_graphs)
    with pytest.raises(ValueError, match='Expected node features with 8'):
        aggr(torch.randn(16, 7), index, dim_size=num_graphs)
    with pytest.raises(ValueError, match="'ptr' to run from 0 to 16"):
        aggr(x, ptr=ptr - 1)
    with pytest.raises(ValueError, match='a node dimension before the '
                       'channels'):
        aggr(x.t(), index, dim_size=num_graphs, dim=-1)
    with pytest.raises(ValueError, match="'heads' must be positive"):
        SAP(8, heads=0)


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


# Documented limits (docs/api.md) ##########################################


def test_jit_script_is_a_clear_error():
    """TorchScript cannot compile the Python dispatch: scripting the layer,
    or a model that holds it, says so and what to use instead."""

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(8, 8)
            self.readout = SAP(8, heads=2)

        def forward(self, x, index):
            return self.readout(self.lin(x), index, dim_size=len(SIZES))

    for module in (SAP(8), Model()):
        with pytest.raises(RuntimeError, match=r"(?s)'SAPAggregation' does "
                           r'not support torch.jit.script.*torch.compile '
                           r'or torch.export'):
            torch.jit.script(module)


def test_double_backward_limits():
    """Double backward (``create_graph=True``, then a second backward)
    fails on the eager paths with hand-written backwards ('native',
    'torch') with torch's once_differentiable error; the 'dense' path of a
    padded batch is plain autograd and supports it (gradgradcheck)."""
    aggr = SAP(4, heads=2).double()
    x, index, _, num_graphs = make_batch(SIZES, channels=4)
    x = x.double().requires_grad_()
    out = aggr(x, index, dim_size=num_graphs)
    grad, = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match='differentiate twice a function '
                       'that was marked with @once_differentiable'):
        grad.sum().backward()
    mask = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 1]]).bool()  # Dense path.
    xp = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda xp: aggr(xp, mask=mask),
                                        (xp, ))

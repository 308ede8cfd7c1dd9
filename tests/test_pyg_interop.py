"""SAPAggregation at PyG's entry points for an aggregation: the resolver,
convolutions' ``aggr=`` and the ``torch_geometric.nn.models`` GNNs (one
instance per layer through their ``init_conv`` hook) and the multi-head
messages ``[E, heads, C]`` of GATConv and TransformerConv, each against
the float64 reference. ``'sap'`` is not a string PyG resolves (docs/api.md,
"Use in convolutions and PyG models", says why)."""
import pytest
import torch
from torch_geometric.nn import (
    GATConv,
    GINConv,
    GraphConv,
    SAGEConv,
    TransformerConv,
    models,
)
from torch_geometric.nn.resolver import aggregation_resolver

import sap_graph  # noqa: F401  (imported as a user would, before PyG)
from sap_graph import SAPAggregation
from tests.reference import sap_reference

EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 4, 6, 7, 8, 9, 2],
                           [1, 1, 2, 3, 3, 4, 4, 4, 0, 0]])


def sharp_sap(channels):
    # Random queries: the zero default attends uniformly, which would not
    # tell the attention apart from mean pooling.
    return SAPAggregation(channels, heads=4, query_init='normal')


def messages(aggr, x):
    agg, _ = sap_reference(aggr, x[EDGE_INDEX[0]], EDGE_INDEX[1], x.size(0))
    return agg.float()


def test_aggregation_resolver_takes_an_instance_not_the_string():
    aggr = sharp_sap(16)
    assert aggregation_resolver(aggr) is aggr
    for query in ('sap', 'SAPAggregation'):
        with pytest.raises(ValueError, match=f"Could not resolve '{query}'"):
            aggregation_resolver(query, 16)
    with pytest.raises(ValueError, match="Could not resolve 'sap'"):
        SAGEConv(16, 32, aggr='sap')


@pytest.mark.parametrize('conv_cls', [SAGEConv, GraphConv])
def test_convolution_aggr_instance(conv_cls):
    torch.manual_seed(0)
    aggr = sharp_sap(16)
    conv = conv_cls(16, 32, aggr=aggr)
    assert conv.aggr_module is aggr
    x = torch.randn(10, 16)
    out = conv(x, EDGE_INDEX)
    if conv_cls is SAGEConv:
        expected = conv.lin_l(messages(aggr, x)) + conv.lin_r(x)
    else:
        expected = conv.lin_rel(messages(aggr, x)) + conv.lin_root(x)
    assert torch.allclose(out, expected, atol=1e-5)


def test_gin_conv_aggr_instance():
    torch.manual_seed(1)
    aggr = sharp_sap(16)
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU())
    conv = GINConv(mlp, aggr=aggr)
    x = torch.randn(10, 16)
    expected = mlp(messages(aggr, x) + (1 + conv.eps) * x)
    assert torch.allclose(conv(x, EDGE_INDEX), expected, atol=1e-5)


class SAPGraphSAGE(models.GraphSAGE):
    # As in docs/api.md: a new SAPAggregation of each layer's input width.
    def init_conv(self, in_channels, out_channels, **kwargs):
        return super().init_conv(in_channels, out_channels,
                                 aggr=sharp_sap(in_channels), **kwargs)


class SAPGIN(models.GIN):
    def init_conv(self, in_channels, out_channels, **kwargs):
        return super().init_conv(in_channels, out_channels,
                                 aggr=sharp_sap(in_channels), **kwargs)


@pytest.mark.parametrize('model_cls', [SAPGraphSAGE, SAPGIN])
def test_pyg_models_one_instance_per_layer(model_cls):
    torch.manual_seed(2)
    model = model_cls(16, 32, num_layers=3, out_channels=5).eval()
    aggrs = [conv.aggr_module for conv in model.convs]
    assert all(isinstance(a, SAPAggregation) for a in aggrs)
    assert [a.in_channels for a in aggrs] == [16, 32, 32]
    assert len({id(a) for a in aggrs}) == 3  # Not shared between layers.
    x = torch.randn(10, 16)
    out = model(x, EDGE_INDEX)
    h = x
    for i, conv in enumerate(model.convs):  # Each layer from the reference.
        m = messages(conv.aggr_module, h)
        if isinstance(conv, SAGEConv):
            h = conv.lin_l(m) + conv.lin_r(h)
        else:
            h = conv.nn(m + (1 + conv.eps) * h)
        if i < 2:
            h = h.relu()
    assert out.shape == (10, 5)
    assert torch.allclose(out, h, atol=1e-4)


def test_gcn_aggregates_at_the_output_width():
    """GCNConv transforms before it aggregates (docs/api.md): its SAP has
    the layer's output width, and aggregates the normalised messages."""
    class SAPGCN(models.GCN):
        def init_conv(self, in_channels, out_channels, **kwargs):
            return super().init_conv(in_channels, out_channels,
                                     aggr=sharp_sap(out_channels), **kwargs)

    torch.manual_seed(3)
    model = SAPGCN(16, 32, num_layers=3, out_channels=5).eval()
    assert [c.aggr_module.in_channels for c in model.convs] == [32, 32, 5]
    x = torch.randn(10, 16)
    conv = model.convs[0]
    looped = EDGE_INDEX[0, EDGE_INDEX[0] == EDGE_INDEX[1]]
    loops = torch.tensor([i for i in range(10) if i not in looped])
    edge_index = torch.cat([EDGE_INDEX, torch.stack([loops, loops])], 1)
    deg = torch.zeros(10).index_add_(0, edge_index[1], torch.ones(
        edge_index.size(1)))
    norm = deg[edge_index[0]].rsqrt() * deg[edge_index[1]].rsqrt()
    h = conv.lin(x)
    agg, _ = sap_reference(conv.aggr_module, h[edge_index[0]] * norm[:, None],
                           edge_index[1], 10)
    expected = agg.float() + conv.bias
    assert torch.allclose(conv(x, EDGE_INDEX), expected, atol=1e-5)
    assert model(x, EDGE_INDEX).shape == (10, 5)


def test_multi_head_messages_pool_each_head():
    """Messages ``[E, heads, C]`` pooled over ``dim=0`` (as GATConv and
    TransformerConv aggregate): each head's slice is pooled as a set of
    its own, values and gradients as the reference's per head."""
    torch.manual_seed(2)
    aggr = sharp_sap(8)
    x = torch.randn(10, 3, 8, dtype=torch.float64, requires_grad=True)
    index = EDGE_INDEX[1]
    out, alpha = aggr.double()(x, index, dim_size=10, dim=0,
                               return_attention_weights=True)
    assert out.shape == (10, 3, 8) and alpha.shape == (10, 3, 4)
    assert out.is_contiguous()
    ref = [sap_reference(aggr, x[:, h], index, 10) for h in range(3)]
    torch.testing.assert_close(out, torch.stack([r[0] for r in ref], 1))
    torch.testing.assert_close(alpha, torch.stack([r[1] for r in ref], 1))
    cot = torch.randn_like(out)
    grad, = torch.autograd.grad((out * cot).sum(), x)
    grad_ref, = torch.autograd.grad(
        sum((r[0] * cot[:, h]).sum() for h, r in enumerate(ref)), x)
    torch.testing.assert_close(grad, grad_ref)


@pytest.mark.parametrize('conv_cls', [GATConv, TransformerConv])
def test_multi_head_convolution_aggr_instance(conv_cls):
    """GATConv and TransformerConv (heads=2, concatenated) aggregate their
    messages with the instance: the output is the reference's pooling of
    the messages they computed, head by head."""
    torch.manual_seed(3)
    aggr = sharp_sap(4)
    conv = conv_cls(16, 4, heads=2, aggr=aggr, root_weight=False) if (
        conv_cls is TransformerConv) else conv_cls(16, 4, heads=2, aggr=aggr)
    seen = {}
    conv.register_message_forward_hook(
        lambda m, inputs, out: seen.update(messages=out.detach()))
    conv.register_aggregate_forward_pre_hook(
        lambda m, inputs: seen.update(index=inputs[0]['index']))
    x = torch.randn(10, 16)
    out = conv(x, EDGE_INDEX)
    msgs, index = seen['messages'].double(), seen['index']
    heads = [sap_reference(aggr, msgs[:, h], index, 10)[0] for h in range(2)]
    expected = torch.cat(heads, 1).float()
    if getattr(conv, 'bias', None) is not None:
        expected = expected + conv.bias
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_nodes_first_runs_forward_once_and_names_the_callers_shapes():
    """The nodes-first form moves the dimension inside one forward (a
    subclass that scales x in forward scales it once), and a wrong mask or
    node dimension is named in the caller's shapes."""
    class Scaled(SAPAggregation):
        def forward(self, x, *args, **kwargs):
            return super().forward(2 * x, *args, **kwargs)

    torch.manual_seed(4)
    scaled, plain = Scaled(8, heads=2), SAPAggregation(8, heads=2)
    plain.load_state_dict(scaled.state_dict())
    x, index = torch.randn(10, 3, 8), EDGE_INDEX[1]
    torch.testing.assert_close(scaled(x, index, dim_size=10, dim=0),
                               plain(2 * x, index, dim_size=10, dim=0))
    with pytest.raises(ValueError, match=r"'mask' of shape \[10, 3\] \(got "
                       r"torch.bool \[3, 10\]\)"):
        plain(x, index, dim_size=10, dim=0,
              mask=torch.ones(3, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'mask' of shape \[10, 3\] \(got "
                       r"list\)"):
        plain(x, index, dim_size=10, dim=0, mask=[[True] * 3] * 10)
    for dim in (3, -4, -1):  # Out of range, or the channels.
        with pytest.raises(ValueError, match='a node dimension before the '
                           'channels'):
            plain.forward(x, index, dim_size=10, dim=dim)

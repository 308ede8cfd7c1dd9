"""What the layer accepts and refuses (issue 27, layer side): masked
positions holding NaN or inf on every path, integer lengths only, options
that are what they say, clear errors, empty inputs, and the warning for a
width-changing SAP inside a convolution. Values and gradients against the
float64 reference of :mod:`tests.reference`."""
import sys
import warnings

import pytest
import torch
from torch_geometric.nn import MessagePassing, SAGEConv

from sap_graph import SAPAggregation
from tests.helpers import SAP, assert_matches_reference, make_batch

# Every test runs on the fused C++ kernels and on the pure-PyTorch path.
pytestmark = pytest.mark.usefixtures('sap_backend')

OPTIONS = [dict(heads=2, concat=True, residual='max'),
           dict(heads=3, residual='sum', gated=True, size_scaler='log',
                rezero=True),
           dict(heads=1, residual=None, out_channels=5)]


def padded(bad: float, layout: str):
    """``x [4, 6, 5]``, the layer's call and the flat reference batch
    ``(x, index, B, mask)``; masked positions hold :obj:`bad`."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 6, 5, generator=gen)
    lengths = torch.tensor([2, 6, 0, 3])
    mask = torch.arange(6) < lengths[:, None]
    if layout == 'left':
        mask = mask.flip(1)
    elif layout == 'scattered':  # Not one run per row: the dense path.
        mask = torch.tensor([[1, 0, 1, 0, 1, 0], [1, 1, 1, 1, 1, 1],
                             [0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 1]]).bool()
    clean = x.masked_fill(~mask[..., None], 0.0)
    x = x.masked_fill(~mask[..., None], bad)
    index = torch.arange(4).repeat_interleave(6)
    mask = mask.view(-1) if layout in ('flat', 'unsorted') else mask
    if layout == 'lengths':
        call = dict(lengths=lengths)
    elif layout == 'flat':  # Flat x, index and node mask.
        x, clean = x.view(-1, 5), clean.view(-1, 5)
        call = dict(index=index, dim_size=4, mask=mask)
    elif layout == 'unsorted':  # The same, nodes shuffled.
        perm = torch.randperm(24, generator=gen)
        x, clean = x.view(-1, 5)[perm], clean.view(-1, 5)[perm]
        index, mask = index[perm], mask[perm]
        call = dict(index=index, dim_size=4, mask=mask)
    elif layout == 'leading':  # [2, 12, 5]: two copies of two sets.
        x, clean = x.view(2, 12, 5), clean.view(2, 12, 5)
        call = dict(index=torch.arange(2).repeat_interleave(6),
                    dim_size=2, mask=mask.view(2, 12))
    else:
        call = dict(mask=mask)
    return x, clean, call, (index, 4, mask.reshape(-1))


@pytest.mark.parametrize('options', OPTIONS)
@pytest.mark.parametrize('layout', ['lengths', 'left', 'scattered', 'flat',
                                    'unsorted', 'leading'])
@pytest.mark.parametrize('bad', [float('nan'), float('inf'),
                                 -float('inf')])
def test_masked_positions_take_no_part(options, layout, bad):
    """Whatever masked positions hold, the output, the attention weights
    and every gradient equal the reference of the kept positions (zero
    gradient at masked positions)."""
    torch.manual_seed(1)
    aggr = SAP(5, **options).train(False)
    if aggr.gamma is not None:
        torch.nn.init.normal_(aggr.gamma)
    x, _, call, (index, num_graphs, mask) = padded(bad, layout)
    assert_matches_reference(aggr, x, index, num_graphs, mask=mask, call=call)


@pytest.mark.parametrize('options', OPTIONS)
@pytest.mark.parametrize('layout', ['lengths', 'left', 'scattered'])
@pytest.mark.parametrize('bad', [3e38, -1e37])
def test_huge_finite_padding_takes_no_part(options, layout, bad):
    """One finite masked value whose score overflows (and whose products
    in the backward would): the sum of the features stays finite, so only
    a fill that does not depend on it keeps the result equal to the
    reference of the kept positions."""
    torch.manual_seed(1)
    aggr = SAP(5, **options).train(False)
    with torch.no_grad():
        aggr.lin_key.weight.fill_(1.0)
        aggr.query.fill_(2.0)
        aggr.lin_value.weight.mul_(10.0)
    x, _, call, (index, num_graphs, mask) = padded(0.0, layout)
    hold = (~mask).nonzero()[0]  # The first masked position.
    x.view(-1, 5)[hold, 0] = bad
    assert torch.isfinite(x.sum())
    assert_matches_reference(aggr, x, index, num_graphs, mask=mask,
                             call=call, atol=1e-4)


@pytest.mark.compile
@pytest.mark.skipif(not sys.platform.startswith('linux'),
                    reason='torch.compile tested on Linux')
def test_fullgraph_compile_with_lengths_and_mask_and_nan_padding():
    """``torch.compile(fullgraph=True)`` with :obj:`lengths` or :obj:`mask`
    and no :obj:`dim_size`: no data-dependent check breaks the graph, and
    NaN padding stays out of outputs and gradients as in eager mode."""
    torch.manual_seed(2)
    aggr = SAP(5, heads=2, residual='max')
    compiled = torch.compile(aggr, fullgraph=True)
    for layout in ('lengths', 'scattered'):
        x, clean, call, _ = padded(float('nan'), layout)
        outs = []
        for fn, inp in ((compiled, x), (aggr, clean)):
            inp = inp.clone().requires_grad_()
            out = fn(inp, **call)
            out.sum().backward()
            outs.append((out.detach(), inp.grad, aggr.query.grad.clone()))
            aggr.zero_grad()
        for got, expected in zip(*outs, strict=True):
            assert torch.isfinite(got).all()
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('lengths,message', [
    (torch.tensor([2.5, 1.0, 0.0]), 'integer .lengths. .*torch.float32'),
    (torch.tensor([True, False, True]), 'integer .lengths. .*torch.bool'),
    ([2, 5, 0], r'integer .lengths. .*\(got list\)'),
    (torch.tensor([[2, 5, 0]]), r"'lengths' of shape \[3\] \(got \[1, 3\]"),
    (torch.tensor([2, 6, 0]), r"'lengths' in \[0, 5\]"),
])
def test_lengths_must_be_an_integer_tensor(lengths, message):
    with pytest.raises(ValueError, match=message):
        SAP(4)(torch.randn(3, 5, 4), lengths=lengths)


_IDX = torch.tensor([0, 0, 1, 1])


@pytest.mark.parametrize('call,message', [
    (dict(index=_IDX.float(), dim_size=2), r"'index' .* integer .*float32"),
    (dict(index=_IDX.bool(), dim_size=2), r"'index' .* integer .*torch.bool"),
    (dict(index=_IDX.view(4, 1), dim_size=2), r"1-D .*int64 \[4, 1\]"),
    (dict(ptr=torch.tensor([0.0, 1.5, 4.0]), dim_size=2),
     r"'ptr' .* integer .*float32"),
    (dict(index=_IDX, dim_size=2.0), r"'dim_size' .*non-negative .*2\.0"),
    (dict(index=_IDX, dim_size=-1), r"'dim_size' .*non-negative .*-1"),
])
def test_batch_vectors_must_be_integers(call, message):
    """A float or bool index/ptr would be truncated to graphs silently; a
    float or negative dim_size failed deep inside PyTorch."""
    with pytest.raises(ValueError, match=message):
        SAP(2)(torch.randn(4, 2), **call)


@pytest.mark.parametrize('call,message', [
    (dict(ptr=torch.tensor([0, 3, 7])), r"'ptr' to run from 0 to 4"),
    (dict(index=_IDX.float()), r"'index' .* integer"),
    (dict(index=torch.tensor([0, 0, 5, 1]), dim_size=2), r"'dim_size'"),
    (dict(index=torch.tensor([-1, -1, -1, -1])), r"non-negative 'index'"),
    (dict(index=_IDX, gate=torch.rand(1, 3)), r"'gate' of shape \[4, 3\]"),
    (dict(index=_IDX, gate=torch.rand(4, 3).double()),
     r"torch.float32 'gate'"),
    (dict(index=_IDX, dropout=-0.1), r"'dropout' must be in \[0, 1\)"),
    (dict(index=_IDX, dropout=1.5), r"'dropout' must be in \[0, 1\)"),
    (dict(index=_IDX, residual='min'), r"'residual' must be"),
])
def test_functional_sap_pool_checks_its_batch(call, message):
    from sap_graph import sap_pool
    with pytest.raises(ValueError, match=message):
        sap_pool(torch.randn(4, 2), torch.randn(3, 2), **call)
    with pytest.raises(ValueError, match=r"'x' \[N, F\] and 'score_weight'"):
        sap_pool(torch.randn(4, 2), torch.randn(3, 5))


def test_mask_and_lengths_together_and_bad_masks():
    x = torch.randn(3, 5, 4)
    lengths = torch.tensor([2, 5, 0])
    with pytest.raises(ValueError, match="only one of 'mask' and 'lengths'"):
        SAP(4)(x, lengths=lengths, mask=torch.ones(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"boolean 'mask' .*torch.int64"):
        SAP(4)(x, mask=torch.ones(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"boolean 'mask' .*\(got list\)"):
        SAP(4)(x, mask=[[True] * 5] * 3)


@pytest.mark.parametrize('name', ['concat', 'learn_temperature', 'gated',
                                  'rezero'])
@pytest.mark.parametrize('value', ['false', 'no', 1, 0, None])
def test_flags_must_be_booleans(name, value):
    """A string such as ``"false"`` would be truthy; an integer is not a
    flag either."""
    with pytest.raises(TypeError, match=f"'{name}' must be True or False"):
        SAPAggregation(4, **{name: value})


@pytest.mark.parametrize('kwargs,message', [
    (dict(out_channels=0), "'out_channels' must be positive (got 0)"),
    (dict(out_channels=-2), "'out_channels' must be positive (got -2)"),
    (dict(out_channels=2.5), "'out_channels' must be an integer (got 2.5)"),
    (dict(out_channels='8'), "'out_channels' must be an integer (got '8')"),
    (dict(key_channels=0), "'key_channels' must be positive (got 0)"),
    (dict(key_channels=True), "'key_channels' must be an integer"),
    (dict(heads=0), "'heads' must be positive (got 0)"),
    (dict(heads=-3), "'heads' must be positive (got -3)"),
    (dict(temperature=float('inf')), "'temperature' must be positive and "
     "finite (got inf)"),
    (dict(temperature=float('nan')), "'temperature' must be positive"),
    (dict(temperature=0.0), "'temperature' must be positive"),
])
def test_sizes_and_temperature(kwargs, message):
    with pytest.raises(ValueError) as info:
        SAPAggregation(4, **kwargs)
    assert message in str(info.value)


def test_sizes_none_default_to_in_channels():
    aggr = SAPAggregation(6, out_channels=None, key_channels=None)
    assert (aggr.out_channels, aggr.key_channels) == (6, 6)
    aggr = SAPAggregation(6, out_channels=3, heads=2, concat=True)
    assert (aggr.key_channels, aggr.output_channels) == (3, 6)


def test_float64_features_under_autocast_are_a_clear_error():
    x, index, _, num_graphs = make_batch()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with pytest.raises(ValueError, match=r'(?s)torch.float64 node feat.*'
                           r'parameters are torch.float32.*autocast casts'):
            SAP(8)(x.double(), index, dim_size=num_graphs)
        # What autocast handles still runs (bfloat16 into float32).
        out = SAP(8)(x.bfloat16(), index, dim_size=num_graphs)
    assert torch.isfinite(out).all()


def test_empty_padded_batch_gives_one_zero_row_per_sequence():
    """``x [3, 0, 4]`` with zero lengths (or an all-False mask): one zero
    row per sequence, ``[3, 1, 4]``, with finite gradients."""
    aggr = SAP(4, heads=2, residual='max', gated=True, size_scaler='log')
    x = torch.randn(3, 0, 4, requires_grad=True)
    for call in (dict(lengths=torch.zeros(3, dtype=torch.long)),
                 dict(mask=torch.zeros(3, 0, dtype=torch.bool))):
        out = aggr(x, **call)
        assert out.shape == (3, 1, 8) and not out.any()
        out.sum().backward()
        assert all(torch.isfinite(p.grad).all() for p in aggr.parameters())


def test_no_index_means_one_set_even_without_elements():
    """No :obj:`index`/:obj:`ptr`: one set, so ``[0, C]`` gives one zero row
    ``[1, C]`` (as an empty set of a batch does); an explicit
    :obj:`dim_size` still rules."""
    aggr = SAP(4, residual='max')
    assert torch.equal(aggr(torch.randn(0, 4)), torch.zeros(1, 4))
    assert aggr(torch.randn(0, 4), dim_size=3).shape == (3, 4)
    x = torch.randn(5, 4)
    torch.testing.assert_close(
        aggr(x), aggr(x, torch.zeros(5, dtype=torch.long), dim_size=1))


class Model(MessagePassing):
    """A model that subclasses :class:`MessagePassing` (its own
    propagation) with a width-changing SAP as its readout."""

    def __init__(self):
        super().__init__(aggr='add')
        self.readout = SAP(16, heads=4)  # 64 wide.

    def forward(self, x, edge_index, batch):
        x = self.propagate(edge_index, x=x)
        return self.readout(x, batch, dim_size=2)


def neighbourhood():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(10, 16, generator=gen)
    edge_index = torch.randint(0, 10, (2, 30), generator=gen)
    return x, edge_index, torch.tensor([0] * 4 + [1] * 6)


def test_readout_of_a_message_passing_model_is_not_warned():
    x, edge_index, batch = neighbourhood()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert Model()(x, edge_index, batch).shape == (2, 64)


def test_width_warning_also_after_a_first_call_outside_a_conv():
    """The same wide layer, called as a readout first and then inside a
    convolution, is warned about there (once), at the caller's line (not
    inside torch or PyG)."""
    x, edge_index, batch = neighbourhood()
    aggr = SAP(16, heads=4)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        aggr(x, batch, dim_size=2)
    conv = SAGEConv(16, 32, aggr=aggr)
    assert conv.aggr_module is aggr
    with pytest.warns(UserWarning, match="64 channels inside "
                      "'SAGEConv'") as record:
        with pytest.raises(RuntimeError, match='cannot be multiplied'):
            conv(x, edge_index)
    assert [w.filename for w in record] == [__file__]
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with pytest.raises(RuntimeError, match='cannot be multiplied'):
            conv(x, edge_index)


@pytest.mark.parametrize('case', ['beyond', 'other graph'])
def test_index_and_ptr_agree_without_reading_values(monkeypatch, case):
    """Where the batch vectors' values are not read back (GPUs outside
    ``torch_geometric.debug()``), an asynchronous assertion still refuses
    an index that disagrees with ptr (the CUDA 'torch' path followed ptr
    for the softmax maximum and the pooled sums, the index for the weight
    sums): shown here on the CPU, where it raises at once, with
    :func:`reads_values` answering as for a GPU. An agreeing batch
    passes."""
    import sap_graph.nn.checks as checks

    monkeypatch.setattr(checks, 'reads_values', lambda device: False)
    index = {'beyond': [0, 0, 1, 1, 2, 2], 'other graph': [0, 0, 0, 0, 1, 1]}
    ptr = torch.tensor([0, 3, 6])
    aggr = SAP(4, heads=2)
    x = torch.randn(6, 4)
    with pytest.raises((RuntimeError, ValueError)) as info:
        aggr(x, torch.tensor(index[case]), ptr, dim_size=2)
    if case == 'beyond':  # PyG's wrapper names the index beyond dim_size,
        assert "invalid 'dim_size'" in str(info.value)  # raised from ours.
        assert "'index' and 'ptr' disagree" in str(info.value.__cause__)
    else:
        assert "'index' and 'ptr' disagree" in str(info.value)
    agree = torch.tensor([0, 0, 0, 1, 1, 1])
    torch.testing.assert_close(aggr(x, agree, ptr, dim_size=2),
                               aggr(x, ptr=ptr, dim_size=2))


# Calls of the wrong types (before PyG's wrapper reads them) ##############

X, INDEX = torch.randn(5, 4), torch.tensor([0, 0, 1, 1, 1])
BAD_CALLS = {
    'x as a list': (([[1.0] * 4],), {}, TypeError,
                    "node features 'x' as a tensor"),
    'index as a list': ((X, [0, 0, 1, 1, 1]), {}, TypeError,
                        "'index' to be a 1-D tensor"),
    'ptr as a list': ((X,), dict(ptr=[0, 2, 5]), TypeError,
                      "'ptr' to be a 1-D tensor"),
    'float dim': ((X, INDEX), dict(dim=0.0), TypeError, "'dim' must be an"),
    'bool dim': ((X, INDEX), dict(dim=True), TypeError, "'dim' must be an"),
    'dim None': ((X, INDEX), dict(dim=None), TypeError, "'dim' must be an"),
    'string weights flag': ((X, INDEX), dict(return_attention_weights='no'),
                            TypeError, "'return_attention_weights' must be"),
    'integer features': ((X.long(), INDEX), {}, ValueError,
                         'pools floating-point features'),
}


@pytest.mark.parametrize('case', list(BAD_CALLS))
def test_calls_of_the_wrong_type_are_clear_errors(case):
    args, kwargs, error, message = BAD_CALLS[case]
    with pytest.raises(error, match=message):
        SAPAggregation(4, heads=2)(*args, **kwargs)
    with pytest.raises(error, match=message):  # forward() with dim_size.
        SAPAggregation(4, heads=2).forward(*args, **kwargs, dim_size=2)


@pytest.mark.parametrize('temperature', [10**400, -10**400])
def test_huge_integer_temperature_is_refused_in_the_layers_terms(
        temperature):
    with pytest.raises(ValueError, match="'temperature' must be positive"):
        SAPAggregation(4, temperature=temperature)


@pytest.mark.parametrize('call', [dict(index=INDEX), dict(),
                                  dict(ptr=torch.tensor([0, 2, 5]))])
def test_forward_called_directly_equals_the_call(call):
    torch.manual_seed(0)
    aggr = SAPAggregation(4, heads=2, query_init='normal')
    out, alpha = aggr.forward(X, **call, return_attention_weights=True)
    ref_out, ref_alpha = aggr(X, **call, return_attention_weights=True)
    torch.testing.assert_close(out, ref_out, rtol=0, atol=0)
    torch.testing.assert_close(alpha, ref_alpha, rtol=0, atol=0)

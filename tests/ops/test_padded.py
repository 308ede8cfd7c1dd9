"""Padded batches ``x [B, L, C]`` with a padding mask or lengths: the
in-place paths of :mod:`sap_graph.ops.padded` against the float64 reference
and against the node-mask path (which drops the masked rows)."""
import copy

import pytest
import torch

from sap_graph import SAPAggregation
from sap_graph.ops import dispatch as _dispatch
from sap_graph.ops import padded as _padded
from sap_graph.ops.padded import lengths_to_mask, mask_runs, masked_reduce
from tests.reference import sap_reference

# Every test runs on the fused C++ kernels and on the pure-PyTorch path.
pytestmark = pytest.mark.usefixtures('sap_backend')

LENGTHS = [5, 0, 9, 1, 9, 3]  # L = 9; row 1 is all padding.
L = 9


def make_masks():
    """Right padding, left padding (both runs) and a scattered mask (dense
    path), each with an all-padding row."""
    right = lengths_to_mask(torch.tensor(LENGTHS), L)
    left = right.flip(1)
    gen = torch.Generator().manual_seed(3)
    scattered = torch.rand(len(LENGTHS), L, generator=gen) > 0.5
    scattered[1] = False
    scattered[2, [0, 2, 4]] = True  # Certainly not one run.
    scattered[2, [1, 3]] = False
    return {'right': right, 'left': left, 'scattered': scattered}


def flat_reference(aggr, x, mask):
    """The float64 reference on the flattened batch: one set per row."""
    batch, length, channels = x.shape
    index = torch.arange(batch).repeat_interleave(length)
    out, alpha = sap_reference(aggr, x.reshape(-1, channels), index, batch,
                               mask=mask.reshape(-1))
    return out, alpha.view(batch, length, -1)


def test_mask_runs_and_lengths_to_mask():
    masks = make_masks()
    start, end = mask_runs(masks['right'])
    assert start.tolist() == [0] * len(LENGTHS)
    assert end.tolist() == LENGTHS
    start, end = mask_runs(masks['left'])
    assert (end - start).tolist() == LENGTHS
    assert (end[start < end] == L).all()
    assert mask_runs(masks['scattered']) is None


@pytest.mark.parametrize('kind', ['right', 'left', 'scattered', 'lengths'])
@pytest.mark.parametrize('heads,concat,residual', [
    (1, True, None), (3, True, None), (2, False, 'mean')])
def test_padded_matches_reference(kind, heads, concat, residual):
    """Values, attention and gradients in float64 against the reference,
    all-padding row included."""
    torch.manual_seed(4)
    aggr = SAPAggregation(8, 6 if concat and heads > 1 else None,
                          heads=heads, concat=concat, residual=residual,
                          query_init='normal').double()
    if residual is not None and aggr.lin_residual is not None:
        pytest.skip('the reference has no residual projection')
    masks = make_masks()
    mask = masks['right'] if kind == 'lengths' else masks[kind]
    x = torch.randn(len(LENGTHS), L, 8, dtype=torch.double,
                    requires_grad=True)
    kwargs = ({'lengths': torch.tensor(LENGTHS)} if kind == 'lengths' else
              {'mask': mask})
    out, alpha = aggr(x, return_attention_weights=True, **kwargs)
    assert out.shape == (len(LENGTHS), 1, aggr.output_channels)
    assert alpha.shape == (len(LENGTHS), L, heads)

    ref_aggr = copy.deepcopy(aggr)
    x_ref = x.detach().clone().requires_grad_()
    ref, ref_alpha = flat_reference(ref_aggr, x_ref, mask)
    assert torch.allclose(out.squeeze(1), ref, atol=1e-10)
    assert torch.allclose(alpha, ref_alpha, atol=1e-10)
    assert torch.equal(alpha[~mask], torch.zeros_like(alpha[~mask]))
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # All padding.

    grad = torch.randn_like(ref)
    (out.squeeze(1) * grad).sum().backward()
    (ref * grad).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-10)
    assert torch.equal(x.grad[~mask], torch.zeros_like(x.grad[~mask]))
    for (name, p), p_ref in zip(aggr.named_parameters(),
                                ref_aggr.parameters(), strict=True):
        assert torch.isfinite(p.grad).all(), name
        assert torch.allclose(p.grad, p_ref.grad, atol=1e-10), name


@pytest.mark.parametrize('kind', ['right', 'left', 'scattered'])
@pytest.mark.parametrize('options', [
    {'residual': 'sum'}, {'residual': 'max'}, {'residual': 'mean'},
    {'gated': True}, {'size_scaler': 'log'},
    {'heads': 2, 'residual': 'max', 'gated': True},
])
def test_padded_same_as_node_mask_path(kind, options):
    """Identical (float32) to the previous behaviour: the flattened batch
    with an index vector and a node mask, which drops the masked rows."""
    torch.manual_seed(5)
    aggr = SAPAggregation(8, query_init='normal', **options).train()
    mask = make_masks()[kind]
    batch = len(LENGTHS)
    x = torch.randn(batch, L, 8, requires_grad=True)
    x_flat = x.detach().clone().requires_grad_()
    index = torch.arange(batch).repeat_interleave(L)

    out = aggr(x, mask=mask)
    ref = aggr(x_flat.view(-1, 8), index, dim_size=batch,
               mask=mask.view(-1))
    assert torch.allclose(out.squeeze(1), ref, atol=1e-5)
    assert torch.equal(out[1], torch.zeros_like(out[1]))
    out.sum().backward()
    ref.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, x_flat.grad, atol=1e-5)


@pytest.mark.parametrize('kind', ['right', 'left', 'scattered'])
def test_padded_max_residual_ties(sap_backend, kind):
    """The max residual of a padded batch whose kept rows tie for the
    maximum (features clamped at 0.5): values and input gradient against
    the float64 reference, which shares a maximum's gradient among the
    tied rows (torch's segment_reduce, once behind the runs path, gave
    each of them the whole gradient)."""
    torch.manual_seed(6)
    aggr = SAPAggregation(8, residual='max', query_init='normal').double()
    mask = make_masks()[kind]
    x = torch.randn(len(LENGTHS), L, 8, dtype=torch.float64).clamp_min(0.5)
    x.requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    weight = torch.randn(len(LENGTHS), 8, dtype=torch.float64)
    (aggr(x, mask=mask).squeeze(1) * weight).sum().backward()
    ref, _ = flat_reference(aggr, x_ref, mask)
    (ref * weight).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-10)


def test_runs_pool_in_place(monkeypatch):
    """The runs path hands the whole padded batch to the kernels as one
    view, without per-position index or a copy of the kept rows (finite
    features: nothing to zero-fill at the padding)."""
    seen = []
    original = _dispatch._plan

    def spy(*args):
        plan = original(*args)
        seen.append((plan.layout.x.data_ptr(), plan.layout.x.size(0),
                     plan.layout.seg))
        return plan

    monkeypatch.setattr(_dispatch, '_plan', spy)
    aggr = SAPAggregation(8, heads=2).eval()
    x = torch.randn(len(LENGTHS), L, 8)
    aggr(x, lengths=torch.tensor(LENGTHS))
    (ptr, rows, seg), = seen
    assert ptr == x.data_ptr() and rows == x.size(0) * L
    assert seg.ptr.numel() == 3 * len(LENGTHS) + 1
    from sap_graph.ops import native as _native
    if _native.native() is not None:  # The fused path reads ptr alone.
        assert 'index' not in vars(seg)


def test_padded_leading_dims_and_training_dropout():
    torch.manual_seed(6)
    aggr = SAPAggregation(8, heads=2, concat=True, dropout=0.3).train()
    x = torch.randn(2, 3, L, 8, requires_grad=True)
    lengths = torch.tensor([[1, 0, 9], [4, 9, 2]])
    out = aggr(x, lengths=lengths)
    assert out.shape == (2, 3, 1, 16)
    assert torch.equal(out[0, 1], torch.zeros_like(out[0, 1]))
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    mask = make_masks()['scattered']  # Dense path, dropout on.
    out = aggr(x[0, :2].detach().repeat(3, 1, 1), mask=mask)
    assert torch.isfinite(out).all()
    aggr.eval()
    same = aggr(x, mask=lengths_to_mask(lengths, L))
    assert torch.allclose(aggr(x, lengths=lengths), same, atol=1e-6)


def test_lengths_errors():
    aggr = SAPAggregation(8)
    x = torch.randn(3, L, 8)
    with pytest.raises(ValueError, match="'lengths' of shape"):
        aggr(x, lengths=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="only one of 'mask' and 'lengths'"):
        aggr(x, lengths=torch.tensor([1, 2, 3]),
             mask=torch.ones(3, L, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"'lengths' in \[0, 9\]"):
        aggr(x, lengths=torch.tensor([1, 10, 3]))


@pytest.mark.parametrize('fill', [float('nan'), float('inf'),
                                  float('-inf'), 3e38])
@pytest.mark.parametrize('reduce', ['sum', 'mean', 'max'])
def test_masked_reduce_ignores_what_padding_holds(reduce, fill):
    """Values and gradient against a loop over the kept rows of each row
    (zero for the all-padding row), whatever the padding holds: NaN or
    inf there once made 'sum' and 'mean' NaN (padding times a zero
    weight)."""
    torch.manual_seed(7)
    mask = make_masks()['scattered']
    x = torch.randn(len(LENGTHS), L, 4, dtype=torch.double)
    x[~mask] = fill
    x.requires_grad_()
    out = masked_reduce(x, mask, reduce)
    expected = []
    for row, keep in zip(x.detach(), mask, strict=True):
        kept = row[keep]
        if kept.size(0) == 0:
            expected.append(torch.zeros(4, dtype=torch.double))
        else:
            expected.append({'sum': kept.sum(0), 'mean': kept.mean(0),
                             'max': kept.amax(0)}[reduce])
    torch.testing.assert_close(out, torch.stack(expected), rtol=0,
                               atol=1e-12)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[~mask], torch.zeros_like(x.grad[~mask]))


@pytest.mark.parametrize('path', ['runs', 'dense'])
@pytest.mark.parametrize('residual', [None, 'sum', 'mean', 'max'])
@pytest.mark.parametrize('concat', [True, False])
def test_rows_of_length_zero_are_empty_sets(monkeypatch, path, residual,
                                            concat):
    """A padded batch [B, 0, F] is B empty sets: the output and the
    parameters' gradients of the flat batch with B empty sets (zero rows),
    on both padded layouts (the dense one, as on a GPU, once failed in
    amax over the empty dimension)."""
    if path == 'dense':  # What a GPU mask or torch.compile gets.
        monkeypatch.setattr(_padded, '_runs', lambda mask, lengths: None)
    torch.manual_seed(8)
    aggr = SAPAggregation(4, 3, heads=2, concat=concat, residual=residual,
                          size_scaler='log', query_init='normal')
    ref_aggr = copy.deepcopy(aggr)
    mask = torch.zeros(2, 0, dtype=torch.bool)
    x = torch.randn(2, 0, 4, requires_grad=True)
    chosen = _dispatch.choose_path(x, aggr.score_weight(), mask=mask)
    assert (chosen == 'dense') == (path == 'dense')
    out, alpha = aggr(x, mask=mask, return_attention_weights=True)
    ref = ref_aggr(torch.randn(0, 4), torch.zeros(0, dtype=torch.long),
                   dim_size=2)
    assert out.shape == (2, 1, aggr.output_channels)
    assert alpha.shape == (2, 0, 2)
    assert torch.equal(out.squeeze(1), ref)
    assert torch.equal(ref, torch.zeros_like(ref))
    out.sum().backward()
    ref.sum().backward()
    assert x.grad.shape == x.shape
    for (name, p), p_ref in zip(aggr.named_parameters(),
                                ref_aggr.parameters(), strict=True):
        assert (p.grad is None) == (p_ref.grad is None), name
        if p.grad is not None:
            assert torch.equal(p.grad, p_ref.grad), name


@pytest.mark.parametrize('reduce', ['sum', 'mean', 'max'])
def test_masked_reduce_rows_of_length_zero(reduce):
    """L = 0: zero rows (the flat path's empty sets), still differentiable
    ('max' once failed in amax over the empty dimension)."""
    x = torch.randn(3, 0, 5, requires_grad=True)
    out = masked_reduce(x, torch.zeros(3, 0, dtype=torch.bool), reduce)
    assert torch.equal(out, torch.zeros(3, 5))
    out.sum().backward()
    assert x.grad.shape == x.shape

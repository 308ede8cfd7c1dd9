"""No sets at all: :class:`SAPAggregation` over zero sets (a flat batch
with :obj:`dim_size=0`, an empty :obj:`ptr`, a padded batch of zero rows)
gives zero rows of its declared width, :obj:`[0, heads * out_channels]`
with :obj:`concat=True` (a reshape to :obj:`[0, -1]` once failed there)
and :obj:`[0, out_channels]` without, on every path."""
import pytest
import torch

from sap_graph import SAPAggregation

pytestmark = pytest.mark.usefixtures('sap_backend')


def no_sets(kind):
    """Keyword arguments of a batch of zero sets of :obj:`kind`, and the
    leading shape of the output."""
    x = torch.randn(0, 8, requires_grad=True)
    if kind == 'index':
        return dict(x=x, index=torch.zeros(0, dtype=torch.long),
                    dim_size=0), (0, )
    if kind == 'ptr':
        return dict(x=x, ptr=torch.zeros(1, dtype=torch.long)), (0, )
    x = torch.randn(0, 5, 8, requires_grad=True)
    if kind == 'mask':
        return dict(x=x, mask=torch.zeros(0, 5, dtype=torch.bool)), (0, 1)
    return dict(x=x, lengths=torch.zeros(0, dtype=torch.long)), (0, 1)


@pytest.mark.parametrize('kind', ['index', 'ptr', 'mask', 'lengths'])
@pytest.mark.parametrize('heads,concat,residual', [
    (1, True, None), (3, True, None), (3, True, 'max'), (3, False, 'sum'),
    (2, False, None)])
def test_no_sets_give_zero_rows_of_the_declared_width(kind, heads, concat,
                                                      residual):
    aggr = SAPAggregation(8, 6, heads=heads, concat=concat,
                          residual=residual)
    assert aggr.output_channels == (heads * 6 if concat else 6)
    kwargs, lead = no_sets(kind)
    out, alpha = aggr(**kwargs, return_attention_weights=True)
    assert out.shape == (*lead, aggr.output_channels)
    assert alpha.shape == (*kwargs['x'].shape[:-1], heads)
    out.sum().backward()
    assert kwargs['x'].grad.shape == kwargs['x'].shape
    for name, p in aggr.named_parameters():
        assert p.grad is None or torch.equal(
            p.grad, torch.zeros_like(p.grad)), name

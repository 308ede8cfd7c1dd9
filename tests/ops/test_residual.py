"""The residual pooling outside the fused kernels
(:mod:`sap_graph.ops.residual`), against per-set float64 pooling."""
import pytest
import torch

from sap_graph.ops.residual import SegmentMax, residual_pool
from tests.reference import pool_set


def per_set(x, index, dim_size, reduce):
    return torch.stack([pool_set(x[index == b], reduce)
                        for b in range(dim_size)])


@pytest.mark.parametrize('reduce', ['sum', 'mean', 'max'])
def test_residual_pool_unsorted_with_ties_and_empty_sets(reduce):
    gen = torch.Generator().manual_seed(0)
    index = torch.tensor([3, 0, 3, 1, 3, 0, 5, 1, 3])  # Sets 2, 4 empty.
    x = torch.randn(9, 6, generator=gen, dtype=torch.float64).relu()
    x[4] = x[0]  # Tied rows in set 3, and zeros tie in many columns.
    weight = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    got_x = x.clone().requires_grad_()
    ref_x = x.clone().requires_grad_()
    out = residual_pool(got_x, index, 6, reduce)
    ref = per_set(ref_x, index, 6, reduce)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    torch.testing.assert_close(got_x.grad, ref_x.grad, rtol=1e-12,
                               atol=1e-12)
    assert residual_pool(x, index, 6, None) is None


def test_segment_max_gradcheck():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    index = torch.tensor([0, 2, 2, 1, 0, 2, 4, 4, 1, 2, 0, 4])
    x.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda t: SegmentMax.apply(t, index, 5), (x, ))

"""The functional form :func:`sap_graph.sap_pool`: the number of heads is
the number of rows of the score matrix, and the batch arguments default as
in the layer; values and gradients against the float64 reference of the
SAP core."""
import inspect

import pytest
import torch

from sap_graph import sap_pool
from tests.helpers import core_batch, outputs_and_grads
from tests.reference import sap_core_reference

pytestmark = pytest.mark.usefixtures('sap_backend')


def test_no_heads_argument():
    assert 'heads' not in inspect.signature(sap_pool).parameters


@pytest.mark.parametrize('heads', [1, 3])
@pytest.mark.parametrize('layout', ['index', 'ptr', 'index and ptr'])
def test_heads_from_score_weight(heads, layout):
    x, w, index, ptr, num_graphs = core_batch([2, 0, 5, 1], 6, heads)
    call = {'index': dict(index=index), 'ptr': dict(ptr=ptr),
            'index and ptr': dict(index=index, ptr=ptr)}[layout]
    got = outputs_and_grads(lambda x, w: sap_pool(x, w, **call), x, w)
    ref = outputs_and_grads(lambda x, w: sap_core_reference(x, w, ptr), x, w)
    assert got[0].shape == (heads, num_graphs, 6)  # dim_size inferred.
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_no_index_is_one_set_and_residual_and_gate():
    x, w, _, _, _ = core_batch([5], 4, 2)
    pooled, alpha, weight_sum, res = sap_pool(x, w, residual='sum')
    ref = sap_core_reference(x, w, torch.tensor([0, 5]))
    torch.testing.assert_close(pooled, ref[0])
    torch.testing.assert_close(res, x.sum(0, keepdim=True))
    gate = torch.rand(5, 2, dtype=torch.float64)
    pooled, alpha, weight_sum = sap_pool(x, w, gate=gate)
    torch.testing.assert_close(weight_sum, (alpha * gate).sum(0)[:, None])
    torch.testing.assert_close(pooled[:, 0], (alpha * gate).t() @ x)


@pytest.mark.parametrize('layout', ['index', 'ptr', 'index and ptr'])
def test_func_grad_against_the_reference(layout):
    """Under :func:`torch.func.grad` (the capture path of plain
    differentiable ops; the kernels' autograd functions do not support
    the transforms) the gradient of every output with respect to the
    features and the scores is the reference's."""
    from torch.func import grad

    x, w, index, ptr, num_graphs = core_batch([2, 0, 5, 1], 6, 3)
    call = {'index': dict(index=index), 'ptr': dict(ptr=ptr),
            'index and ptr': dict(index=index, ptr=ptr)}[layout]
    weights = [torch.randn_like(t) for t in sap_core_reference(x, w, ptr)]

    def loss(function):
        return lambda x, w: sum((out * weight).sum() for out, weight in zip(
            function(x, w), weights, strict=True))

    got = grad(loss(lambda x, w: sap_pool(x, w, dim_size=num_graphs,
                                          **call)), argnums=(0, 1))(x, w)
    want = grad(loss(lambda x, w: sap_core_reference(x, w, ptr)),
                argnums=(0, 1))(x, w)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('name', ['x', 'score_weight', 'gate'])
@pytest.mark.parametrize('bad', ['integer', 'list'])
def test_non_float_inputs_are_refused(name, bad):
    """Integer features were pooled in float32 and cast back to int64:
    weights of 0 and truncated sums."""
    args = dict(x=torch.randn(3, 2), score_weight=torch.randn(1, 2),
                gate=torch.rand(3, 1))
    value = args[name]
    args[name] = value.long() if bad == 'integer' else value.tolist()
    with pytest.raises(ValueError, match=f"'{name}' as a floating-point"):
        sap_pool(**args)

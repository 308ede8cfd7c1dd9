"""The layer under the graph-capturing transforms of PyTorch:
:func:`torch.compile` in training mode and the :mod:`torch.func`
transforms, against eager mode, its autograd and the float64 reference."""
import copy
import sys

import pytest
import torch

from sap_graph import SAPAggregation
from tests.helpers import make_batch
from tests.reference import sap_reference

linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='torch.compile tested on Linux')


class Model(torch.nn.Module):
    """A linear layer before the readout, so that the readout's input
    requires a gradient (as in a GNN)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.lin = torch.nn.Linear(4, 8)
        self.readout = SAPAggregation(8, heads=2, query_init='normal',
                                      **kwargs)

    def forward(self, x, index, dim_size):
        return self.readout(self.lin(x), index, dim_size=dim_size)


@pytest.mark.compile
@linux_only
@pytest.mark.parametrize('dropout', [0.0, 0.4])
def test_compile_dynamic_training_matches_eager(dropout):
    """``torch.compile(model, dynamic=True)`` trains with the default max
    residual and attention dropout (Dynamo failed on the residual's custom
    autograd function in training): outputs and every parameter gradient
    equal eager mode's, batch after batch of other sizes, with the same
    dropout masks (Inductor drawing from torch's generator, as eager)."""
    import torch._inductor.config as inductor_config

    torch.manual_seed(0)
    model = Model(dropout=dropout).train()
    eager = copy.deepcopy(model)
    compiled = torch.compile(model, dynamic=True, fullgraph=True)
    with inductor_config.patch(fallback_random=True):
        for step, sizes in enumerate(([3, 0, 5, 1], [4, 9, 2],
                                      [1, 0, 6, 3, 3, 8])):
            x, index, _, num_graphs = make_batch(sizes, channels=4,
                                                 seed=step)
            torch.manual_seed(step)
            out = compiled(x, index, num_graphs)
            torch.manual_seed(step)
            want = eager(x, index, num_graphs)
            torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
            out.square().sum().backward()
            want.square().sum().backward()
            for (name, p), q in zip(model.named_parameters(),
                                    eager.parameters(), strict=True):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-4,
                                           atol=1e-5, msg=name)
            model.zero_grad()
            eager.zero_grad()
    if dropout > 0:  # The masks did drop weights.
        with torch.no_grad():
            assert not torch.allclose(want, eager.eval()(x, index,
                                                         num_graphs))


@pytest.mark.compile
@linux_only
def test_compile_dynamic_padded_training_matches_eager():
    """The padded batch (the ``'dense'`` capture path) in training mode
    with attention dropout compiles without a graph break and equals eager
    mode, values and gradients, with the same dropout masks."""
    import torch._inductor.config as inductor_config

    torch.manual_seed(6)
    aggr = SAPAggregation(4, heads=2, dropout=0.4,
                          query_init='normal').train()
    compiled = torch.compile(lambda x, lengths: aggr(x, lengths=lengths),
                             dynamic=True, fullgraph=True)
    with inductor_config.patch(fallback_random=True):
        for step, lengths in enumerate(([3, 0, 5], [2, 7, 7, 1])):
            lengths = torch.tensor(lengths)
            x = torch.randn(lengths.numel(), 7, 4)
            got_x, want_x = (x.clone().requires_grad_() for _ in range(2))
            torch.manual_seed(step)
            got = compiled(got_x, lengths)
            torch.manual_seed(step)
            want = aggr(want_x, lengths=lengths)
            torch.testing.assert_close(got, want)
            got.square().sum().backward()
            want.square().sum().backward()
            torch.testing.assert_close(got_x.grad, want_x.grad)


# torch.func ###############################################################

#: Layers under the transforms: the defaults (max residual), and the
#: options with their own code (gate, mean residual, size scaler, concat).
OPTIONS = [dict(), dict(gated=True, residual='mean', size_scaler='log'),
           dict(concat=True, residual=None, learn_temperature=True)]


def transform_batch():
    """An unsorted float64 batch with an empty graph: ``(x, index, B)``."""
    x, index, _, num_graphs = make_batch([3, 0, 4, 2], channels=4,
                                         dtype=torch.float64, shuffle=True)
    return x, index, num_graphs


@pytest.mark.parametrize('options', OPTIONS)
def test_func_grad_and_jacrev_equal_eager_autograd(options):
    """:func:`torch.func.grad` and :func:`torch.func.jacrev` (they failed
    on the custom autograd functions) give eager autograd's gradient and
    Jacobian, with respect to the features and to the parameters."""
    from torch.func import functional_call, grad, jacrev

    torch.manual_seed(1)
    aggr = SAPAggregation(4, heads=2, query_init='normal',
                          **options).double()
    x, index, num_graphs = transform_batch()
    weight = torch.randn(num_graphs, aggr.output_channels,
                         dtype=torch.float64)

    def loss(x):
        return (aggr(x, index, dim_size=num_graphs) * weight).sum()

    x_eager = x.clone().requires_grad_()
    loss(x_eager).backward()
    torch.testing.assert_close(grad(loss)(x), x_eager.grad)

    params = {k: v.detach() for k, v in aggr.named_parameters()}
    got = grad(lambda p: (functional_call(aggr, p, (x, index), dict(
        dim_size=num_graphs)) * weight).sum())(params)
    for name, p in aggr.named_parameters():
        torch.testing.assert_close(got[name], p.grad, msg=name)

    jacobian = jacrev(lambda x: aggr(x, index, dim_size=num_graphs))(x)
    want = torch.autograd.functional.jacobian(
        lambda x: aggr(x, index, dim_size=num_graphs), x)
    torch.testing.assert_close(jacobian, want)


@pytest.mark.parametrize('options', OPTIONS)
def test_func_vmap_equals_a_loop(options):
    """:func:`torch.func.vmap` over the features equals a loop of eager
    calls, and per-sample parameter gradients (``vmap(grad(...))``) equal
    one eager backward per sample."""
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(2)
    aggr = SAPAggregation(4, heads=2, query_init='normal',
                          **options).double()
    x, index, num_graphs = transform_batch()
    xs = torch.stack([x, x.flip(1), 2 * x])

    got = vmap(lambda x: aggr(x, index, dim_size=num_graphs))(xs)
    want = torch.stack([aggr(x, index, dim_size=num_graphs) for x in xs])
    torch.testing.assert_close(got, want)

    params = {k: v.detach() for k, v in aggr.named_parameters()}

    def loss(p, x):
        return functional_call(aggr, p, (x, index),
                               dict(dim_size=num_graphs)).square().sum()

    per_sample = vmap(grad(loss), in_dims=(None, 0))(params, xs)
    for i, x in enumerate(xs):
        aggr.zero_grad()
        aggr(x, index, dim_size=num_graphs).square().sum().backward()
        for name, p in aggr.named_parameters():
            torch.testing.assert_close(per_sample[name][i], p.grad,
                                       msg=name)


def test_func_transforms_still_check_the_batch():
    """Under a transform of the features alone the batch vectors are plain
    tensors, and a bad index is still the layer's error."""
    from torch.func import grad

    aggr = SAPAggregation(4, heads=2).double()
    x, index, num_graphs = transform_batch()
    with pytest.raises(ValueError, match="invalid 'dim_size'"):
        grad(lambda x: aggr(x, index + 1, dim_size=num_graphs).sum())(x)


def test_func_vmap_with_attention_dropout():
    """Attention dropout in training under :func:`torch.func.vmap` with
    ``randomness='different'``: one mask per sample (the samples are equal
    here, their outputs differ), finite gradients."""
    from torch.func import grad, vmap

    torch.manual_seed(3)
    aggr = SAPAggregation(4, heads=2, dropout=0.5, query_init='normal',
                          residual=None).double().train()
    x, index, num_graphs = transform_batch()
    xs = x.expand(4, -1, -1)
    out = vmap(lambda x: aggr(x, index, dim_size=num_graphs),
               randomness='different')(xs)
    assert out.shape == (4, num_graphs, 4)
    assert not torch.allclose(out[0], out[1])
    grads = vmap(grad(lambda x: aggr(x, index, dim_size=num_graphs).sum()),
                 randomness='different')(xs)
    assert grads.shape == xs.shape and bool(torch.isfinite(grads).all())


def test_func_grad_of_grad_equals_the_reference():
    """Double backward, which the eager paths' hand-written backwards
    refuse (docs/api.md), works under :func:`torch.func.grad`: the
    gradient of a gradient penalty is the float64 reference's."""
    from torch.func import grad

    torch.manual_seed(4)
    aggr = SAPAggregation(4, heads=2, query_init='normal',
                          residual='mean').double()
    x, index, num_graphs = transform_batch()

    def penalty(pool):
        inner = grad(lambda x: pool(x).square().sum())
        return lambda x: inner(x).square().sum()

    got = grad(penalty(lambda x: aggr(x, index, dim_size=num_graphs)))(x)
    want = grad(penalty(lambda x: sap_reference(aggr, x, index,
                                                num_graphs)[0]))(x)
    torch.testing.assert_close(got, want)



@pytest.mark.parametrize('options', OPTIONS)
def test_func_jvp_equals_the_jacobian_product(options):
    """Forward-mode AD (:func:`torch.func.jvp`, and
    :func:`torch.func.jacfwd`) gives the Jacobian-vector product of eager
    autograd's Jacobian."""
    from torch.func import jacfwd, jvp

    torch.manual_seed(5)
    aggr = SAPAggregation(4, heads=2, query_init='normal',
                          **options).double()
    x, index, num_graphs = transform_batch()
    tangent = torch.randn_like(x)

    def pool(x):
        return aggr(x, index, dim_size=num_graphs)

    out, got = jvp(pool, (x, ), (tangent, ))
    jacobian = torch.autograd.functional.jacobian(pool, x)
    torch.testing.assert_close(out, pool(x))
    torch.testing.assert_close(
        got, torch.einsum('bcnf,nf->bc', jacobian, tangent))
    torch.testing.assert_close(jacfwd(pool)(x), jacobian)


# index and ptr that disagree, while compiling ############################

#: (index, ptr): an index beyond the graphs of ptr, one in range that
#: puts a node in another graph, and the agreeing batch.
BATCHES = {'beyond': ([0, 0, 1, 1, 2, 2], [0, 3, 6]),
           'other graph': ([0, 0, 0, 0, 1, 1], [0, 3, 6]),
           'agree': ([0, 0, 0, 1, 1, 1], [0, 3, 6])}


@pytest.mark.compile
@linux_only
def test_compiled_index_and_ptr_must_agree():
    """Compiled, the eager check cannot read the batch vectors: an
    assertion in the graph (no graph break) refuses an index that
    disagrees with ptr, where the compiled path followed the index alone
    (a node in another graph pooled silently there), with the layer's
    message; the layer and sap_pool alike. An agreeing batch gives the
    eager result."""
    from sap_graph import sap_pool

    torch.manual_seed(5)
    aggr = SAPAggregation(4, heads=2, query_init='normal')
    layer = torch.compile(lambda x, index, ptr: aggr(x, index, ptr,
                                                     dim_size=2),
                          fullgraph=True, dynamic=True)
    core = torch.compile(lambda x, index, ptr: sap_pool(
        x, aggr.score_weight(), index, ptr, dim_size=2, residual='max'),
        fullgraph=True, dynamic=True)
    x = torch.randn(6, 4)
    for name, (index, ptr) in BATCHES.items():
        index, ptr = torch.tensor(index), torch.tensor(ptr)
        for compiled in (layer, core):
            if name == 'agree':
                got = compiled(x, index, ptr)
                want = (aggr(x, index, ptr, dim_size=2)
                        if compiled is layer else sap_pool(
                            x, aggr.score_weight(), index, ptr,
                            residual='max'))
                torch.testing.assert_close(got, want)
                continue
            # An index beyond the graphs may meet Inductor's own bounds
            # check first.
            with pytest.raises(RuntimeError, match="'index' and 'ptr' "
                               "disagree" + ('|index out of bounds' * (
                                   name == 'beyond'))):
                compiled(x, index, ptr)

"""The layer under the graph-capturing transforms of PyTorch:
:func:`torch.compile` in training mode and the :mod:`torch.func`
transforms, against eager mode, its autograd and the float64 reference."""
import copy
import sys

import pytest
import torch

from sap_graph import SAPAggregation
from tests.helpers import make_batch

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
    compiled = torch.compile(model, dynamic=True)
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

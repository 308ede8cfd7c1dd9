"""The benchmarks check SAP before timing: benchmarks.speed against a
float64 loop (for every residual and size scaler the layer has),
benchmarks.conv_aggr the nodes-first pooling of multi-head convolutions
against the heads pooled one by one; each stops the benchmark for a layer
that computes something else."""
from functools import partial

import pytest
import torch

from benchmarks import speed
from sap_graph import SAPAggregation


@pytest.mark.parametrize('residual', [None, 'sum', 'mean', 'max'])
@pytest.mark.parametrize('size_scaler', [None, 'log'])
def test_check_follows_the_layer_options(monkeypatch, residual, size_scaler):
    monkeypatch.setattr(speed, 'SAPAggregation', partial(
        SAPAggregation, residual=residual, size_scaler=size_scaler))
    speed.check_correctness(torch.device('cpu'))


def test_check_stops_a_wrong_layer(monkeypatch):
    class Off(SAPAggregation):
        def forward(self, *args, **kwargs):
            return super().forward(*args, **kwargs) + 1e-2

    monkeypatch.setattr(speed, 'SAPAggregation', Off)
    with pytest.raises(SystemExit, match='disagrees'):
        speed.check_correctness(torch.device('cpu'))


def test_conv_aggr_checks_the_nodes_first_pooling(monkeypatch):
    """benchmarks.conv_aggr checks the SAP rows' pooling of a multi-head
    convolution's messages (dim=0) against the heads pooled one by one,
    and stops for a layer whose nodes-first form computes something
    else."""
    from benchmarks import conv_aggr
    graph = conv_aggr.GRAPHS[-1]
    for conv in conv_aggr.CONVS:
        conv_aggr.check(conv, graph, torch.device('cpu'))

    class Off(SAPAggregation):
        def forward(self, x, index=None, ptr=None, dim_size=None, dim=-2,
                    **kwargs):
            out = super().forward(x, index, ptr, dim_size, dim, **kwargs)
            return out + 1e-2 if dim == 0 else out

    monkeypatch.setattr(conv_aggr, 'SAPAggregation', Off)
    with pytest.raises(SystemExit, match='disagrees'):
        conv_aggr.check('GATConv', graph, torch.device('cpu'))

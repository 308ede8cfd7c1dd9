"""benchmarks.speed checks SAP against a float64 loop before timing: the
check passes for every residual and size scaler the layer has, and stops
the benchmark for a layer that computes something else."""
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

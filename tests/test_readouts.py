"""The readout registry: names, option types, widths and sizes."""
import inspect
import math

import pytest
import torch
from torch_geometric.nn import aggr as pyg_aggr

from sap_graph import SAPAggregation
from sap_graph.experiments.readouts import (
    READOUTS,
    UnknownReadoutError,
    readout_params,
    readout_size,
    resolve_readout,
)


def test_registry():
    assert {'sum', 'mean', 'max', 'sap', 'set2set', 'gmt'} <= set(READOUTS)
    assert {'heads', 'concat'} <= readout_params('sap')
    assert readout_params('mean') == frozenset()


def test_unknown_names_and_options():
    with pytest.raises(UnknownReadoutError, match='sap'):
        readout_params('nope')
    with pytest.raises(ValueError, match='does not take'):
        resolve_readout('mean', 8, heads=2)


@pytest.mark.parametrize('name,options,message', [
    ('sort', {'k': 0}, "'k' must be a positive integer (got 0)"),
    ('sort', {'k': -3}, "'k' must be a positive integer (got -3)"),
    ('sort', {'k': 2.0}, "'k' must be a positive integer (got 2.0)"),
    ('set2set', {'processing_steps': -1}, "'processing_steps' must be a "
     'positive integer (got -1)'),
    ('set2set', {'processing_steps': 0}, "'processing_steps' must be a "
     'positive integer (got 0)'),
    ('gmt', {'k': 0}, "'k' must be a positive integer (got 0)"),
    ('gmt', {'layer_norm': 'no'}, "'layer_norm' must be a boolean"),
    ('set_transformer', {'num_seed_points': 0}, "'num_seed_points' must "
     'be a positive integer (got 0)'),
    ('set_transformer', {'concat': 1}, "'concat' must be a boolean"),
    ('set_transformer', {'dropout': 1.5}, "'dropout' must be in [0, 1)"),
    ('sap', {'rezero': 'false'}, "'rezero' must be a boolean, true or "
     "false (got 'false')"),
    ('sap', {'concat': 'no'}, "'concat' must be a boolean"),
    ('sap', {'out_channels': 0}, "'out_channels' must be a positive "
     'integer (got 0)'),
    ('sap', {'key_channels': 0}, "'key_channels' must be a positive "
     'integer (got 0)'),
    ('sap', {'heads': True}, "'heads' must be a positive integer"),
    ('sap', {'temperature': math.inf}, "'temperature' must be a finite "
     'number (got inf)'),
    ('sap', {'temperature': math.nan}, "'temperature' must be a finite"),
    ('sap', {'diversity': -math.inf}, "'diversity' must be a finite"),
    ('sap', {'residual': 1}, "'residual' must be one of None, 'sum'"),
])
def test_options_are_of_their_type(name, options, message):
    with pytest.raises(ValueError) as info:
        resolve_readout(name, 8, **options)
    assert message in str(info.value)


def test_every_option_has_a_type_and_good_values_pass():
    # The table's options are keyword arguments of the module that is
    # built (an independent reference: the constructors); all of SAP's.
    # The harness adds its own: the regularisers and the frozen queries.
    harness = {'diversity', 'entropy', 'freeze_queries'}
    layer = {p for p, v in inspect.signature(SAPAggregation).parameters
             .items() if v.kind is not inspect.Parameter.VAR_KEYWORD}
    assert (set(READOUTS['sap'].options) - harness ==
            layer - {'in_channels'} - harness)
    for name, cls in (('gmt', pyg_aggr.GraphMultisetTransformer),
                      ('set_transformer', pyg_aggr.SetTransformerAggregation),
                      ('set2set', pyg_aggr.Set2Set),
                      ('sort', pyg_aggr.SortAggregation)):
        params = set(inspect.signature(cls).parameters)
        assert set(READOUTS[name].options) <= params, name
    good = {'heads': 2, 'k': 3, 'processing_steps': 1, 'num_seed_points': 2,
            'concat': False, 'layer_norm': True, 'dropout': 0.5,
            'out_channels': 6, 'key_channels': None, 'temperature': 0.5,
            'learn_temperature': True, 'gated': True, 'residual': 'sum',
            'query_init': 'normal', 'size_scaler': 'log', 'rezero': True,
            'diversity': 0.1, 'entropy': -0.1, 'freeze_queries': False}
    x, index = torch.randn(7, 8), torch.tensor([0, 0, 0, 1, 1, 1, 1])
    for name, spec in READOUTS.items():
        module, width = resolve_readout(
            name, 8, **{k: good[k] for k in spec.options})
        assert module(x, index, dim_size=2).shape == (2, width), name


@pytest.mark.parametrize('name', ['set_transformer', 'gmt'])
def test_heads_must_divide_the_width(name):
    with pytest.raises(ValueError, match=r"'heads' \(3\) must divide the "
                       r'width of the node embeddings \(64\)'):
        resolve_readout(name, 64, heads=3)
    module, width = resolve_readout(name, 300, heads=5)
    assert width == 300
    out = module(torch.randn(4, 300), torch.tensor([0, 0, 1, 1]),
                 dim_size=2)
    assert out.shape == (2, 300)


@pytest.mark.parametrize('name', sorted(READOUTS))
def test_readout_size_allocates_nothing(name):
    kwargs = {'heads': 2} if 'heads' in READOUTS[name].params else {}
    real, width = resolve_readout(name, 16, **kwargs)
    numel = sum(t.numel() for t in [*real.parameters(), *real.buffers()])
    assert readout_size(name, 16, **kwargs) == (numel, width)
    # A readout far too large for memory is only counted.
    if 'heads' in kwargs:
        numel, _ = readout_size(name, 2**20, heads=2)
        assert numel > 2**40

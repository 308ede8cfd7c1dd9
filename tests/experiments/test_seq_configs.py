"""The configs of the sequence examples check their fields on
construction (:class:`~sap_graph.experiments.seq.sequences.SequenceConfig`,
:class:`~sap_graph.experiments.seq.multimodal.FusionConfig`) and the
:obj:`limit` of a quick run is checked
(:func:`~sap_graph.experiments.seq.smiles.check_limit`): a value that
makes no run is a :class:`ConfigError` naming its field."""
import dataclasses

import pytest
import torch

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.seq.multimodal import FusionConfig
from sap_graph.experiments.seq.sequences import SequenceConfig
from sap_graph.experiments.seq.smiles import check_limit, limit_split

LR = ("learning rates must be positive finite numbers within float32's "
      "range [1.18e-38, 3.4e+38] (got {})")


@pytest.mark.parametrize('field,value,message', [
    ('epochs', 0, "'epochs' must be a positive integer (got 0)"),
    ('batch_size', -1, "'batch_size' must be a positive integer (got -1)"),
    ('hidden_channels', 0,
     "'hidden_channels' must be a positive integer (got 0)"),
    ('num_layers', 0, "'num_layers' must be a positive integer (got 0)"),
    ('heads', 0, "'heads' must be a positive integer (got 0)"),
    ('dropout', 1.0, "'dropout' must be in [0, 1) (got 1.0)"),
    ('lr', 0.0, LR.format('0.0')),
    ('max_length', 1, "'max_length' must be at least 2, the [CLS] token "
     "and one token of the SMILES (got 1)"),
    ('max_length', 10**9, "'max_length' must be <= 65536 (got 1000000000): "
     "longer than any SMILES"),
    ('num_layers', 10**6, "'num_layers' must be <= 1024 (got 1000000): "
     "deeper than any published GNN"),
    ('hidden_channels', 2**20, "'hidden_channels' must be <= 32768 (got "
     "1048576): a layer of that width would have more than 2**30 weights"),
    ('encoder', 'lstm', "'encoder' must be one of 'conv', 'transformer' "
     "(got 'lstm')"),
    ('readout', 'sum', "'readout' must be one of 'sap', 'mean', 'max', "
     "'cls' (got 'sum')"),
])
def test_sequence_config_refuses(field, value, message):
    with pytest.raises(ConfigError) as info:
        SequenceConfig(**{field: value})
    assert (info.value.field, str(info.value)) == (field, message)
    with pytest.raises(ConfigError):  # replace() checks too.
        dataclasses.replace(SequenceConfig(), **{field: value})


@pytest.mark.parametrize('field,value,message', [
    ('fusion_epochs', 0, "'fusion_epochs' must be a positive integer "
     "(got 0)"),
    ('encoder_epochs', -2, "'encoder_epochs' must be a positive integer "
     "(got -2)"),
    ('graph_layers', 0, "'graph_layers' must be a positive integer (got 0)"),
    ('fusion_batch_size', 0,
     "'fusion_batch_size' must be a positive integer (got 0)"),
    ('channels', 0, "'channels' must be a positive integer (got 0)"),
    ('graph_channels', 10**9, "'graph_channels' must be <= 32768 (got "
     "1000000000): a layer of that width would have more than 2**30 "
     "weights"),
    ('graph_layers', 5000, "'graph_layers' must be <= 1024 (got 5000): "
     "deeper than any published GNN"),
    ('fusion_lr', float('inf'), LR.format('inf')),
    ('modality_dropout', 1.0, "'modality_dropout' must be in [0, 1), the "
     "probability of masking each modality token in training (1 masks them "
     "all; got 1.0)"),
    ('modality_dropout', -0.1, "'modality_dropout' must be in [0, 1), the "
     "probability of masking each modality token in training (1 masks them "
     "all; got -0.1)"),
])
def test_fusion_config_refuses(field, value, message):
    with pytest.raises(ConfigError) as info:
        FusionConfig(**{field: value})
    assert (info.value.field, str(info.value)) == (field, message)


def test_configs_accept_their_defaults_and_edges():
    SequenceConfig()
    SequenceConfig(dropout=0.0, max_length=2, epochs=1)
    FusionConfig()
    FusionConfig(modality_dropout=0.0)
    FusionConfig(modality_dropout=0.99)


@pytest.mark.parametrize('limit', [0, -5, 9, 10.0, True])
def test_check_limit_refuses(limit):
    with pytest.raises(ConfigError) as info:
        check_limit(limit)
    assert info.value.field == 'limit'
    assert str(info.value) == (
        f"'limit' must be an integer of at least 10, so that its validation "
        f"and test tenths hold a molecule each (got {limit!r})")
    with pytest.raises(ConfigError):
        limit_split({'train': torch.arange(50)}, limit)


def test_smallest_limit_keeps_a_molecule_in_every_split():
    check_limit(None)
    split = limit_split({k: torch.arange(50) for k in ('train', 'valid',
                                                       'test')}, 10)
    assert [len(v) for v in split.values()] == [8, 1, 1]

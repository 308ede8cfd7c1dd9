"""TrainConfig takes NumPy scalars as the Python numbers they hold."""
import json
from dataclasses import asdict

import numpy as np
import pytest

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.train import TrainConfig
from sap_graph.experiments.train.config import validate_config


def test_numpy_scalars_become_python_numbers():
    cfg = TrainConfig(epochs=np.int64(3), lr=np.float32(0.25),
                      seed=np.int32(4), hidden_channels=np.uint16(8))
    validate_config(cfg)
    assert (cfg.epochs, cfg.lr, cfg.seed, cfg.hidden_channels) == (3, 0.25,
                                                                   4, 8)
    assert [type(v) for v in (cfg.epochs, cfg.lr, cfg.seed)] == [int, float,
                                                                 int]
    assert json.loads(json.dumps(asdict(cfg)))['epochs'] == 3


def test_numpy_seed_lists_become_python_ints():
    cfg = TrainConfig(dataset='ogbg-molhiv', seeds=list(np.arange(3)))
    validate_config(cfg)
    assert cfg.seeds == [0, 1, 2]
    assert {type(s) for s in cfg.seeds} == {int}


@pytest.mark.parametrize('field,value,message', [
    ('epochs', np.float64(2.5), "'epochs' must be an integer"),
    ('epochs', np.int64(0), "'epochs' must be >= 1"),
    ('lr', np.float64('nan'), "'lr' must be a finite number"),
    ('seed', np.int64(-1), "'seed' must be an integer from 0"),
])
def test_bad_numpy_values_are_refused_in_the_fields_terms(field, value,
                                                          message):
    with pytest.raises(ConfigError, match=message):
        validate_config(TrainConfig(**{field: value}))


def test_numpy_values_inside_readout_kwargs_and_arrays_become_plain():
    """A NumPy value in readout_kwargs trained to the end, then failed to
    write the JSON and left a checkpoint and a state that could not be
    loaded; seeds=np.array([0]) was 'empty'."""
    cfg = TrainConfig(dataset='ogbg-molhiv', seeds=np.array([0, 2]),
                      readout_kwargs={'heads': np.int64(2),
                                      'temperature': np.float32(0.5),
                                      'concat': np.bool_(True)})
    validate_config(cfg)
    assert cfg.seeds == [0, 2]
    assert cfg.readout_kwargs == {'heads': 2, 'temperature': 0.5,
                                  'concat': True}
    assert [type(v) for v in cfg.readout_kwargs.values()] == [int, float,
                                                              bool]
    json.dumps(asdict(cfg))

"""Checks of :mod:`sap_graph.experiments.option_types` used by the
examples' flags: :func:`seed` and :func:`check_fields`."""
import argparse

import numpy as np
import pytest

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.option_types import check_fields, seed, size


@pytest.mark.parametrize('value', [0, 7, 2**31 - 1, np.int64(5)])
def test_seed_accepts(value):
    seed('seed', value)


@pytest.mark.parametrize('value', [-1, 2**31, 1.0, True, '3', None])
def test_seed_refuses(value):
    with pytest.raises(ValueError) as info:
        seed('seed', value)
    assert str(info.value) == (f"'seed' must be an integer from 0 to "
                               f"2147483647 (got {value!r})")


def test_check_fields_names_the_first_bad_field():
    args = argparse.Namespace(epochs=0, seed=-1)
    with pytest.raises(ConfigError) as info:
        check_fields(args, {'epochs': size, 'seed': seed})
    assert info.value.field == 'epochs'
    assert str(info.value) == "'epochs' must be a positive integer (got 0)"
    check_fields(argparse.Namespace(epochs=1, seed=0),
                 {'epochs': size, 'seed': seed})

"""The readout registry."""
import pytest

from sap_graph.experiments.readouts import (
    READOUTS,
    UnknownReadoutError,
    readout_params,
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

"""Checkpoint and state files: atomic writes, the one checkpoint reader,
random number generator states."""
import os
import random

import numpy as np
import pytest
import torch

from sap_graph.experiments.checkpoint import (
    CheckpointError,
    atomic_save,
    get_rng_state,
    read_checkpoint,
    safe_load,
    set_rng_state,
)


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError('disk full')


def test_atomic_save_round_trip(tmp_path):
    path = str(tmp_path / 'sub' / 'x.pt')  # Missing folders are created.
    atomic_save({'w': torch.arange(3), 'n': [1, 'a']}, path)
    out = safe_load(path)
    assert torch.equal(out['w'], torch.arange(3)) and out['n'] == [1, 'a']
    assert os.listdir(tmp_path / 'sub') == ['x.pt']  # No temporary files.


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / 'x.pt')
    atomic_save({'v': 1}, path)
    with pytest.raises(RuntimeError, match='disk full'):
        atomic_save({'v': Unpicklable()}, path)
    assert safe_load(path) == {'v': 1}
    assert os.listdir(tmp_path) == ['x.pt']


def test_read_checkpoint_checks_the_layout(tmp_path):
    path = str(tmp_path / 'c.pt')
    atomic_save({'state_dict': {}, 'config': {'model': {}}}, path)
    assert read_checkpoint(path)['config'] == {'model': {}}
    atomic_save({'state_dict': {}}, path)
    with pytest.raises(CheckpointError, match='not a sap-graph checkpoint'):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match='not found'):
        read_checkpoint(str(tmp_path / 'missing.pt'))


def test_rng_state_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(3)
    state = get_rng_state({'g': gen})
    atomic_save(state, str(tmp_path / 'rng.pt'))
    first = (random.random(), np.random.rand(), torch.rand(1),
             torch.rand(1, generator=gen))
    set_rng_state(safe_load(str(tmp_path / 'rng.pt')), {'g': gen})
    again = (random.random(), np.random.rand(), torch.rand(1),
             torch.rand(1, generator=gen))
    assert first[:2] == again[:2]
    assert torch.equal(first[2], again[2]) and torch.equal(first[3], again[3])

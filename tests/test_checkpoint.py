"""Checkpoint and state files: atomic writes, the one checkpoint reader,
random number generator states."""
import errno
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
from sap_graph.experiments.files import OutputError


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


class FullDisk:
    """A file on a disk that fills up after :obj:`room` bytes: a write
    puts what fits on disk, then raises ENOSPC."""

    def __init__(self, file, room):
        self.file, self.room = file, room

    def write(self, data):
        data = bytes(data)
        self.file.write(data[:self.room])
        self.room -= min(self.room, len(data))
        if self.room == 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return len(data)

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def fill_disk(monkeypatch, room=100):
    """Makes every file the atomic writer opens hit a full disk."""
    import sap_graph.experiments.files as files
    real = os.fdopen
    monkeypatch.setattr(files.os, 'fdopen', lambda *args, **kwargs:
                        FullDisk(real(*args, **kwargs), room))


def test_disk_full_is_one_error_and_keeps_the_old_file(tmp_path,
                                                       monkeypatch):
    path = str(tmp_path / 'x.pt')
    atomic_save({'v': torch.arange(5)}, path)
    fill_disk(monkeypatch)
    with pytest.raises(OutputError, match=r"^cannot write training state "
                       r"'.*x\.pt' \(No space left on device\); its "
                       r"previous version is kept$"):
        atomic_save({'v': torch.arange(10 ** 4)}, path, 'training state')
    with pytest.raises(OutputError, match='nothing was written'):
        atomic_save({'v': 1}, str(tmp_path / 'new.pt'), 'checkpoint')
    monkeypatch.undo()
    assert torch.equal(safe_load(path)['v'], torch.arange(5))
    assert os.listdir(tmp_path) == ['x.pt']  # No partial temporary file.


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

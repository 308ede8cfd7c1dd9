"""The cache of the fusion experiment's stage 1 embeddings
(:mod:`sap_graph.experiments.seq.embeddings`): read back only when made
with the same settings, data and split; recomputed (and replaced)
otherwise; another file is refused, never overwritten."""
import dataclasses
import os

import pytest
import torch
from torch_geometric.data import Data

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.seq import embeddings as cache
from sap_graph.experiments.seq.multimodal import FusionConfig
from tests.test_seq_experiments import tiny_task

CFG = FusionConfig(graph_channels=8, graph_layers=1, sequence_channels=8,
                   fingerprint_channels=8, encoder_epochs=1, batch_size=4)


@pytest.fixture
def inputs():
    task = tiny_task(['CCO', 'c1ccccc1O', 'C(=O)[O-]', 'CN', 'c1ccncc1C#N',
                      'CCN', 'OCC=O', 'c1ccccc1'])
    gen = torch.Generator().manual_seed(0)
    graphs = [Data(x=torch.randint(0, 2, (n, 9), generator=gen),
                   edge_index=torch.stack([torch.arange(n - 1),
                                           torch.arange(1, n)]),
                   edge_attr=torch.randint(0, 2, (n - 1, 3), generator=gen),
                   y=task.y[i:i + 1])
              for i, n in enumerate(task.lengths.tolist())]
    fp = torch.randint(0, 2, (len(graphs), 16), generator=gen).float()
    return graphs, task, fp


@pytest.fixture
def trained(monkeypatch):
    """Counts the stage 1 trainings."""
    calls = []
    original = cache.train_encoders

    def counted(*args, **kwargs):
        calls.append(args[3])  # The config.
        return original(*args, **kwargs)

    monkeypatch.setattr(cache, 'train_encoders', counted)
    return calls


def run(inputs, path, cfg=CFG, task=None):
    graphs, tiny, fp = inputs
    return cache.cached_encoders(graphs, task or tiny, fp, 'graph', cfg,
                                 str(path), log=False)


def test_same_settings_read_back(inputs, trained, tmp_path):
    path = tmp_path / 'emb.pt'
    first = run(inputs, path)
    again = run(inputs, path)
    assert len(trained) == 1  # The second run read the file.
    for a, b in zip(first['embeddings'], again['embeddings'], strict=True):
        assert torch.equal(a, b)
    assert again['settings']['graph_channels'] == 8


@pytest.mark.parametrize('change', ['graph_channels', 'encoder_epochs',
                                    'split'])
def test_other_settings_recompute_and_replace(inputs, trained, tmp_path,
                                              change):
    """Stale embeddings were read back silently (a graph embedding 8 wide
    for --graph_channels 16)."""
    path = tmp_path / 'emb.pt'
    run(inputs, path)
    cfg, task = CFG, None
    if change == 'split':  # What a smaller --limit does.
        task = dataclasses.replace(inputs[1], split_idx={
            k: v[:6] for k, v in inputs[1].split_idx.items()})
    else:
        cfg = dataclasses.replace(CFG, **{change: 16 if change ==
                                          'graph_channels' else 2})
    out = run(inputs, path, cfg, task)
    assert len(trained) == 2
    width = 16 if change == 'graph_channels' else 8
    assert out['embeddings'][0].shape == (8, width)
    stored = torch.load(path, weights_only=True)
    assert stored['settings'] == out['settings']
    assert stored['embeddings'][0].shape == (8, width)
    run(inputs, path, cfg, task)  # Now the file is this run's.
    assert len(trained) == 2


def test_cache_without_settings_is_recomputed(inputs, trained, tmp_path):
    path = tmp_path / 'emb.pt'
    old = run(inputs, path)
    del old['settings']  # As written before the settings were recorded.
    torch.save(old, path)
    run(inputs, path)
    assert len(trained) == 2
    assert 'settings' in torch.load(path, weights_only=True)


def test_changed_settings_are_named():
    settings = {'version': 1, 'graph_channels': 16, 'seed': 0}
    assert cache.changed_settings(
        {'version': 1, 'graph_channels': 8, 'seed': 0}, settings) == [
            'graph_channels: 8 -> 16']
    assert cache.changed_settings(None, settings) == [
        'no settings recorded (an older cache)']
    assert cache.changed_settings(dict(settings), settings) == []


def test_another_file_is_refused_not_overwritten(inputs, trained, tmp_path):
    path = tmp_path / 'notes.txt'
    path.write_text('my notes')
    with pytest.raises(ConfigError) as info:
        run(inputs, path)
    assert info.value.field == 'embeddings'
    assert str(info.value) == (
        f"'{path}' is not a cache of stage 1 embeddings (torch.load cannot "
        f"read it: UnpicklingError); remove it or choose another file")
    torch.save({'something': 'else'}, tmp_path / 'other.pt')
    with pytest.raises(ConfigError, match='not a dict with embeddings'):
        run(inputs, tmp_path / 'other.pt')
    assert path.read_text() == 'my notes' and not trained


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes anyway')
def test_stale_read_only_cache_is_refused_before_training(inputs, trained,
                                                          tmp_path):
    path = tmp_path / 'emb.pt'
    run(inputs, path)
    path.chmod(0o444)
    with pytest.raises(ConfigError) as info:
        run(inputs, path, dataclasses.replace(CFG, graph_channels=16))
    assert str(info.value) == (
        f"'{path}' holds stage 1 embeddings of other settings "
        f"(graph_channels: 8 -> 16) and is not writable")
    assert len(trained) == 1


def test_cache_path_checked_before_the_data(tmp_path):
    cache.check_cache_path(None)
    cache.check_cache_path(str(tmp_path / 'new.pt'))
    with pytest.raises(ConfigError) as info:
        cache.check_cache_path(str(tmp_path))
    assert (info.value.field, str(info.value)) == (
        'embeddings', f"embeddings cache '{tmp_path}' is a folder (expected "
        f"a file name)")

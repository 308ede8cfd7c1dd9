"""Hostile files: tampered checkpoints and state files, corrupt or invalid
datasets give one clear error line (exit code 2), never a traceback, code
execution or a partial result file; stale processed data and cached copies
are not used, and runs started together on a fresh root all succeed.
:mod:`test_hostile_cli` has the hostile command lines."""
import os
import os.path as osp
import pickle
import re
import shutil
import subprocess
import sys

import pytest
import torch
from test_data import make_read_only, make_writable, write_tu
from test_realdata import data_root

import sap_graph.experiments.train.runner as run_mod
from sap_graph.experiments.checkpoint import CheckpointError, safe_load
from sap_graph.experiments.cli import main
from sap_graph.experiments.data import (
    DatasetFormatError,
    GraphList,
    GraphTask,
    check_task,
    load_synthetic,
    load_tu,
)
from sap_graph.experiments.models import GraphClassifier, load_checkpoint
from sap_graph.experiments.train import TrainConfig, run, save_checkpoint

QUICK = ['--epochs', '1', '--folds', '2', '--hidden_channels', '8',
         '--no-progress', '--quiet']


class Exploit:
    """Unpickling this would create the marker file: it must never be."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker, ))


def one_error_line(capsys):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    assert 'Traceback' not in captured.out + captured.err
    return err


@pytest.fixture()
def checkpoint(tmp_path):
    model = GraphClassifier(8, 8, 2, num_layers=1, readout='sap',
                            readout_kwargs={'heads': 2})
    path = str(tmp_path / 'model.pt')
    save_checkpoint(path, model, model.state_dict(),
                    {'train': {'dataset': 'synthetic'}})
    return path


# Checkpoints and state files ##############################################


def test_truncated_checkpoint_is_a_clear_error(checkpoint, capsys):
    data = open(checkpoint, 'rb').read()
    with open(checkpoint, 'wb') as f:
        f.write(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match='truncated'):
        load_checkpoint(checkpoint)
    assert main(['explain', '--checkpoint', checkpoint]) == 2
    assert 'truncated' in one_error_line(capsys)


@pytest.mark.parametrize('writer', ['torch', 'pickle', 'pickle4'])
def test_malicious_checkpoint_is_refused(tmp_path, capsys, writer):
    marker = str(tmp_path / 'pwned')
    path = str(tmp_path / 'evil.pt')
    payload = {'state_dict': Exploit(marker), 'config': {'model': {}}}
    if writer == 'torch':
        torch.save(payload, path)
    else:  # A legacy, non-zip pickle (protocol 4: torch warns of it).
        with open(path, 'wb') as f:
            pickle.dump(payload, f, protocol=4 if writer == 'pickle4' else 2)
    with pytest.raises(CheckpointError, match='refused'):
        load_checkpoint(path)
    assert main(['explain', '--checkpoint', path]) == 2
    err = one_error_line(capsys)
    # Protocol 4 fails before the global is named.
    assert 'refused' in err and ('mkdir' in err or writer == 'pickle4')
    state = str(tmp_path / 'state.pt')
    os.replace(path, state)
    assert main(['train', *QUICK, '--state', state, '--resume']) == 2
    assert 'refused' in one_error_line(capsys)
    assert not osp.exists(marker)  # Nothing was executed.


def test_foreign_files_are_clear_errors(tmp_path, checkpoint, capsys):
    text = tmp_path / 'notes.pt'
    text.write_text('not a checkpoint\n')
    with pytest.raises(CheckpointError, match='refused|truncated'):
        safe_load(str(text))
    binary = tmp_path / 'noise.pt'
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match='refused|truncated'):
        safe_load(str(binary))
    plain = str(tmp_path / 'plain.pt')
    torch.save({'weights': torch.ones(2)}, plain)
    with pytest.raises(CheckpointError, match='not a sap-graph checkpoint'):
        load_checkpoint(plain)
    # A checkpoint as state file, and the other way round.
    assert main(['train', *QUICK, '--state', checkpoint, '--resume']) == 2
    assert 'not a sap-graph training state' in one_error_line(capsys)
    assert main(['explain', '--checkpoint', str(tmp_path / 'nope.pt')]) == 2
    assert 'not found' in one_error_line(capsys)
    # Weights that do not fit the stored model config.
    state = torch.load(checkpoint, weights_only=True)
    state['config']['model']['hidden_channels'] = 16
    torch.save(state, checkpoint)
    with pytest.raises(CheckpointError, match='does not match'):
        load_checkpoint(checkpoint)


# Corrupt datasets #########################################################


def _truncate(path, size):
    with open(path, 'r+') as f:
        f.truncate(size)


CORRUPTIONS = {
    'truncated_A': (lambda raw: _truncate(osp.join(raw, 'TOY_A.txt'), 13),
                    'labels for'),
    'garbage_A': (lambda raw: open(osp.join(raw, 'TOY_A.txt'), 'w').write(
        'hello world\n'), 'corrupt'),
    'missing_graph_indicator': (
        lambda raw: os.remove(osp.join(raw, 'TOY_graph_indicator.txt')),
        'incomplete: missing TOY_graph_indicator.txt'),
    'truncated_graph_indicator': (
        lambda raw: _truncate(osp.join(raw, 'TOY_graph_indicator.txt'), 10),
        'corrupt'),
    'empty': (lambda raw: [_truncate(osp.join(raw, f), 0)
                           for f in os.listdir(raw)], 'empty'),
}


@pytest.mark.parametrize('corruption', list(CORRUPTIONS))
def test_corrupt_tu_folder(tmp_path, capsys, corruption):
    mutate, message = CORRUPTIONS[corruption]
    write_tu(str(tmp_path), 'TOY')
    mutate(str(tmp_path / 'TOY' / 'raw'))
    with pytest.raises(DatasetFormatError, match=message):
        load_tu('TOY', root=str(tmp_path), download=True)  # Not replaced.
    out, ckpt = tmp_path / 'out' / 'r.json', tmp_path / 'out' / 'm.pt'
    assert main(['train', '--dataset', 'TOY', '--root', str(tmp_path),
                 *QUICK, '--out', str(out), '--checkpoint', str(ckpt),
                 '--state', str(tmp_path / 'out' / 's.pt')]) == 2
    assert message in one_error_line(capsys)
    assert not (tmp_path / 'out').exists()  # No partial results.
    assert not (tmp_path / 'TOY' / 'processed').exists()


def bad_task(**changes):
    task = load_synthetic(num_graphs=8, min_pairs=2, max_pairs=3)
    data_list = [task.dataset[i] for i in range(len(task.dataset))]
    for i, attrs in changes.items():
        for key, value in attrs.items():
            setattr(data_list[int(i)], key, value)
    task.dataset = GraphList(data_list)
    return task


def test_invalid_graphs_are_refused(tmp_path, capsys, monkeypatch):
    nan_x = bad_task(**{'3': {'x': torch.full((6, 8), float('nan'))}})
    inf_x = bad_task(**{'5': {'x': torch.full((6, 8), float('inf'))}})
    label = bad_task(**{'2': {'y': torch.tensor([7])}})
    negative = bad_task(**{'1': {'y': torch.tensor([-1])}})
    edges = bad_task(**{'4': {'edge_index': torch.tensor([[0], [99]])}})
    empty = load_synthetic(num_graphs=4)
    empty.dataset = []
    cases = [(nan_x, 'NaN or infinite node features'),
             (inf_x, 'first in graph 5'),
             (label, 'graph 2 has label 7, outside the 2 classes'),
             (negative, 'graph 1 has label -1'),
             (edges, 'graph 4 has an edge [0, 99]'),
             (empty, 'has no graphs')]
    check_task(bad_task())  # The clean task passes.
    for task, message in cases:
        with pytest.raises(DatasetFormatError, match=re.escape(message)):
            run(TrainConfig(epochs=1, folds=2, progress=False), task=task)
        monkeypatch.setattr(run_mod, 'load_configured',
                            lambda *args, task=task, **kwargs: task)
        out = tmp_path / 'r.json'
        assert main(['train', *QUICK, '--out', str(out)]) == 2
        assert message in one_error_line(capsys)
        assert not out.exists()


def test_labels_must_match_the_graphs():
    task = load_synthetic(num_graphs=6, min_pairs=2, max_pairs=3)
    data_list = [task.dataset[i] for i in range(6)]
    dataset = GraphList(data_list)
    dataset._data.y = dataset._data.y[:4]
    task = GraphTask(name='t', dataset=dataset, num_features=8,
                     num_classes=2, num_edge_features=0, kind='synthetic')
    with pytest.raises(DatasetFormatError, match='4 labels for 6 graphs'):
        check_task(task)


# Stale data and a fresh root (issue 18) ###################################


def test_stale_processed_data_is_not_used(tmp_path):
    raw = tmp_path / 'TOY' / 'raw'
    write_tu(str(tmp_path), 'TOY')
    assert load_tu('TOY', root=str(tmp_path)).labels.tolist() == [1, 0, 0, 1]
    with open(raw / 'TOY_graph_labels.txt', 'w') as f:  # Relabelled.
        f.write('1\n1\n-1\n-1\n')
    assert load_tu('TOY', root=str(tmp_path)).labels.tolist() == [1, 1, 0, 0]
    edges = load_tu('TOY', root=str(tmp_path)).stats()['num_directed_edges']
    with open(raw / 'TOY_A.txt', 'a') as f:  # One more edge.
        f.write('6, 8\n8, 6\n')
    again = load_tu('TOY', root=str(tmp_path)).stats()
    assert again['num_directed_edges'] == edges + 2
    os.remove(raw / 'TOY_graph_labels.txt')
    with pytest.raises(DatasetFormatError, match='missing TOY_graph_labels'):
        load_tu('TOY', root=str(tmp_path))


def test_stale_cached_copy_is_not_used(tmp_path, monkeypatch):
    src = tmp_path / 'src'
    monkeypatch.setenv('SAP_GRAPH_CACHE', str(tmp_path / 'cache'))
    write_tu(str(src), 'TOY')
    make_read_only(str(src))
    try:
        assert load_tu('TOY', root=str(src)).labels.tolist() == [1, 0, 0, 1]
        make_writable(str(src))
        with open(src / 'TOY' / 'raw' / 'TOY_graph_labels.txt', 'w') as f:
            f.write('-1\n-1\n1\n1\n')  # Same size, new content.
        make_read_only(str(src))
        assert load_tu('TOY', root=str(src)).labels.tolist() == [0, 0, 1, 1]
    finally:
        make_writable(str(src))


@pytest.mark.slow
def test_runs_started_together_on_a_fresh_root_all_succeed(tmp_path):
    raw = data_root('TUDataset', 'MUTAG', 'raw')
    shutil.copytree(raw, tmp_path / 'MUTAG' / 'raw')
    make_writable(str(tmp_path / 'MUTAG'))  # A fresh, writable root.
    code = ('import sys; from sap_graph.experiments.data import load_tu; '
            'print(len(load_tu("MUTAG", root=sys.argv[1]).dataset))')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, '-c', code, str(tmp_path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(3)]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == '188'
    assert osp.isdir(tmp_path / 'MUTAG' / 'processed')

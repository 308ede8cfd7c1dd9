"""Hostile command lines: unknown names, bad flags and readout options
give one clear error line (exit code 2) before any data is loaded or
training starts; unwritable outputs fail before training, a failure after
it keeps the results, a live state file has one writer, and the files
written follow the umask. :mod:`test_hostile` has the hostile files."""
import json
import os
import re

import pytest
from test_hostile import QUICK, one_error_line

import sap_graph.experiments.train as train_mod
import sap_graph.experiments.train.runner as run_mod
import sap_graph.experiments.train.runs as runs
from sap_graph.experiments.checkpoint import safe_load
from sap_graph.experiments.cli import main
from sap_graph.experiments.data import load_synthetic

# Names ####################################################################


def test_unknown_names_list_the_valid_ones(tmp_path, capsys):
    assert main(['train', '--dataset', 'NOPE', '--root', str(tmp_path),
                 '--no-download', *QUICK]) == 2
    err = one_error_line(capsys)
    assert 'MUTAG' in err and 'PROTEINS' in err
    assert main(['train', '--dataset', '../etc', *QUICK]) == 2
    assert "'synthetic'" in one_error_line(capsys)
    assert main(['train', '--readout', 'nope', *QUICK]) == 2
    err = one_error_line(capsys)
    assert all(name in err for name in ('sap', 'mean', 'set2set', 'gmt'))
    assert main(['train', '--readout_kwargs', '{"nope": 1}', *QUICK]) == 2
    assert 'it takes: ' in one_error_line(capsys)


# Outputs, input errors and locks (issue 18) ###############################

TOY = ['--dataset', 'synthetic', *QUICK]


@pytest.fixture()
def tiny(monkeypatch):
    """Makes `sap-graph train` load a 40-graph synthetic task (fast)."""
    task = load_synthetic(num_graphs=40, min_pairs=2, max_pairs=3)
    monkeypatch.setattr(run_mod, 'load_configured', lambda *a, **k: task)


def usage_error(argv):
    """Runs the CLI on argv; argparse's own errors exit via SystemExit."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


@pytest.mark.parametrize('flag', ['--out', '--checkpoint', '--state'])
def test_unwritable_outputs_fail_before_training(flag, tmp_path, capsys,
                                                 monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError('trained before checking the outputs')

    monkeypatch.setattr(runs, 'fit', no_training)
    for target in ('/proc/r.json', str(tmp_path)):  # A folder is no file.
        assert main(['train', *TOY, flag, target]) == 2
        assert target in one_error_line(capsys)


@pytest.mark.parametrize('first,second', [
    ('--out', '--checkpoint'), ('--out', '--state'),
    ('--checkpoint', '--state'), ('--dataset', '--out')])
def test_outputs_on_one_file_are_refused_before_training(
        first, second, tmp_path, capsys, monkeypatch):
    """--out and --checkpoint on one file kept the JSON and lost the
    model (exit 0); --out on the input CSV overwrote the data."""
    def no_training(*args, **kwargs):
        raise AssertionError('trained with colliding outputs')

    monkeypatch.setattr(runs, 'fit', no_training)
    path = tmp_path / 'same.csv'
    if first == '--dataset':  # Else a new file (a state file must be).
        path.write_text('smiles,y\nCC,1.0\nCCO,2.0\n')
    before = path.read_bytes() if path.exists() else None
    extra = (['--target', 'y', '--seeds', '0'] if first == '--dataset'
             else ['--dataset', 'synthetic'])
    # The same file under another spelling is the same file.
    again = str(tmp_path / '..' / tmp_path.name / 'same.csv')
    assert main(['train', *QUICK, *extra, first, str(path), second,
                 again]) == 2
    err = one_error_line(capsys)
    named = second if first == '--dataset' else first
    assert err.startswith(f'error: {named}: ') and 'is both the' in err
    assert (path.read_bytes() if path.exists() else None) == before


def test_an_output_on_the_dataset_spelt_with_a_tilde_is_refused(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'm.csv').write_text('smiles,y\nCC,1.0\nCCO,2.0\n')
    assert main(['train', '--dataset', '~/m.csv', '--target', 'y',
                 '--seeds', '0', *QUICK[:2], '--out',
                 str(tmp_path / 'm.csv')]) == 2
    assert 'is both the dataset and the result file' in one_error_line(
        capsys)


def test_val_ratio_is_refused_where_the_protocol_ignores_it(tmp_path,
                                                            capsys):
    """Scaffold and official splits have fixed validation parts: the
    flag changed nothing but the cache key."""
    path = tmp_path / 'm.csv'
    path.write_text('smiles,y\nCC,1.0\nCCO,2.0\n')
    assert main(['train', '--dataset', str(path), '--target', 'y',
                 '--val_ratio', '0.5', *QUICK[:2]]) == 2
    assert 'val_ratio=0.5 would be ignored' in one_error_line(capsys)


def test_output_failure_after_training_is_rescued(tmp_path, capsys,
                                                  monkeypatch, tiny):
    def broken_disk(path, write):
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(run_mod, 'atomic_write', broken_disk)
    out, ckpt = tmp_path / 'r.json', tmp_path / 'm.pt'
    assert main(['train', *TOY, '--out', str(out), '--checkpoint',
                 str(ckpt)]) == 1
    err = one_error_line(capsys)
    saved = re.findall(r"saved it to '([^']+)'", err)
    assert len(saved) == 2 and 'Input/output error' in err
    try:
        assert safe_load(saved[0])['state_dict']
        with open(saved[1]) as f:
            assert json.load(f)['test_mean'] >= 0
    finally:
        for path in saved:
            os.remove(path)


@pytest.mark.parametrize('args,message', [
    (['--epochs', '0'], "--epochs: 'epochs' must be >= 1"),
    (['--epochs', '-5'], "--epochs: 'epochs' must be >= 1"),
    (['--folds', '1'], "--folds: 'folds' must be >= 2"),
    (['--seed', '-5'], "--seed: 'seed' must be an integer from 0 to"),
    (['--seeds', '0', '4294967296'], "--seeds: 'seeds' must be integers"),
    (['--readout_kwargs', '{"dropout": "x"}'], '--readout_kwargs: invalid'),
    (['--device', 'tpu7'], "--device: unknown device 'tpu7'"),
    (['--readout_kwargs', '{bad'], 'not valid JSON'),
    (['--heads', 'x'], "invalid int value: 'x'"),
    (['--no_such_flag'], 'unrecognized arguments'),
])
def test_input_errors_are_one_line(args, message, capsys, tiny):
    assert usage_error(['train', *TOY, *args]) == 2
    assert message in one_error_line(capsys)


@pytest.mark.parametrize('options,message', [
    ('{"dropout": "x"}', "'dropout' must be a finite number (got 'x')"),
    ('{"heads": 0}', "'heads' must be a positive integer (got 0)"),
    ('{"foo": 1}', "does not take ['foo']"),
])
def test_readout_options_fail_before_any_data_is_loaded(
        options, message, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError('data loaded before the options were checked')
    monkeypatch.setattr(run_mod, 'load_configured', no_data)
    assert main(['train', *TOY, '--readout_kwargs', options]) == 2
    line = one_error_line(capsys)
    assert '--readout_kwargs: invalid options for readout' in line
    assert message in line


@pytest.mark.parametrize('args,message', [
    (['--seeds', '3', '3'], "--seeds: seeds given twice: [3, 3]"),
    (['--seeds', '1', '2'], "--seeds: seeds [1, 2] would be ignored: k-fold"),
    (['--dataset', 'mols.csv', '--target', 'y', '--folds', '3', '--seeds',
      '0', '1'], "--seeds: seeds [0, 1] would be ignored"),
    (['--epochs', '2', '--device', 'tpu'], "--device: unknown device"),
    (['--readout', 'sum', '--concat'], "--concat: readout 'sum' has no heads"),
])
def test_seeds_device_and_heads_fail_before_any_data_is_loaded(
        args, message, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError('data loaded before the options were checked')
    monkeypatch.setattr(run_mod, 'load_configured', no_data)
    assert main(['train', *TOY, *args]) == 2
    assert message in one_error_line(capsys)



def test_a_live_state_file_has_one_writer(tmp_path, capsys, tiny):
    from sap_graph.experiments.files import release, try_lock
    state = str(tmp_path / 's.pt')
    fd = try_lock(state + '.lock', 'the live run')  # A run in progress.
    try:
        assert main(['train', *TOY, '--state', state, '--resume']) == 2
        assert 'in use by another running process' in one_error_line(capsys)
    finally:
        release(fd)
    assert main(['train', *TOY, '--state', state, '--resume']) == 0


def test_a_symlink_to_a_live_state_file_is_the_same_file(tmp_path, capsys,
                                                        tiny):
    """A symlink to a live run's state was locked apart (both ran); now
    it is refused, and a resume through it keeps the link."""
    from sap_graph.experiments.files import release, try_lock
    state, link = tmp_path / 's.pt', tmp_path / 'link.pt'
    assert main(['train', *TOY, '--state', str(state)]) == 0
    link.symlink_to(state)
    fd = try_lock(str(state) + '.lock', 'the live run')
    try:
        assert main(['train', *TOY, '--state', str(link), '--resume']) == 2
        assert 'in use by another running process' in one_error_line(capsys)
    finally:
        release(fd)
    assert main(['train', *TOY, '--state', str(link), '--resume']) == 0
    assert link.is_symlink() and state.exists()


@pytest.mark.parametrize('mask,mode', [(0o022, 0o644), (0o077, 0o600)])
def test_output_files_follow_the_umask(tmp_path, monkeypatch, mask, mode,
                                       tiny):
    seen = {}
    original = train_mod.TrainState.save

    def save(self):  # The state file lives while the run does.
        original(self)
        seen['state'] = os.stat(self.path).st_mode & 0o777

    monkeypatch.setattr(train_mod.TrainState, 'save', save)
    old = os.umask(mask)
    try:
        out, ckpt = tmp_path / 'r.json', tmp_path / 'm.pt'
        assert main(['train', *TOY, '--out', str(out), '--checkpoint',
                     str(ckpt), '--state', str(tmp_path / 's.pt')]) == 0
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == mode
    assert os.stat(ckpt).st_mode & 0o777 == mode
    assert seen['state'] == mode

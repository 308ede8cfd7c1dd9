"""More bad input of sap-graph compare (the third hostile trial): each is
one ``error:`` line naming compare's own flag, exit 2, before training,
with nothing written; the Python API's arguments checked by type; Ctrl-C
with workers is one line and stops them."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import sap_graph.experiments.compare.api as api
import sap_graph.experiments.compare.engine as engine
import sap_graph.experiments.train.runner as runner
from sap_graph.experiments.cli import main
from sap_graph.experiments.compare import compare
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.signals import handling
from tests.helpers import alive, answers_ctrl_c

MOLECULES = ['CCO', 'c1ccccc1', 'CC(=O)O', 'CCN', 'CCCC', 'OCCO', 'CCOC',
             'c1ccncc1', 'CC(C)O', 'C1CCCCC1', 'CCCl', 'CC=O']


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError('trained on bad input')
    monkeypatch.setattr(engine, 'execute_run', fail)


def _csv(path, header, rows):
    path.write_text(header + '\n' + ''.join(f'{r}\n' for r in rows))
    return str(path)


def _cases(tmp):
    good = _csv(tmp / 'good.csv', 'smiles,y',
                [f'{s},{i / 4}' for i, s in enumerate(MOLECULES)])
    mixed = _csv(tmp / 'mixed.csv', 'smiles,y,active',
                 [f'{s},{i / 4},{i % 2}' for i, s in enumerate(MOLECULES)])
    semicolon = _csv(tmp / 'semi.csv', 'smiles;y',
                     [f'{s};{i}' for i, s in enumerate(MOLECULES)])
    return [
        # (flags, the start of the message after 'error: ')
        (['--dataset', good, '--target', 'y', '--seeds', '0', '0'],
         '--seeds: seeds given twice: [0, 0]'),
        (['--dataset', good, '--target', 'y', '--folds', '3', '--seeds',
          '1', '2'], '--seeds: seeds [1, 2] would be ignored: k-fold'),
        (['--dataset', 'synthetic', '--seeds', '1', '2'],
         '--seeds: seeds [1, 2] would be ignored'),
        (['--dataset', good, '--target', 'y', '--device', 'tpu'],
         "--device: unknown device 'tpu'"),
        (['--dataset', good, '--target', 'y', '--epochs', '1', '--readouts',
          'sap{"heads": 0}'], "--readouts: invalid options for readout 'sap' "
         "{'heads': 0}"),
        (['--dataset', str(tmp / 'nope.csv'), '--target', 'y'],
         "--dataset: Molecule CSV '"),
        (['--dataset', mixed, '--target', 'y', 'active'],
         "--target: '" + mixed + "': target column(s) 'active' hold 0/1"),
        # The file's format, not an option, is wrong: no flag named.
        (['--dataset', semicolon, '--target', 'y'],
         "'" + semicolon + "' has no SMILES column 'smiles' (columns: "
         "'smiles;y'); the header is split by ';'"),
        (['--dataset', good], "--target: No target column given for '"
         + good + "'; pick one or more of its columns: 'smiles', 'y'"),
        (['--dataset', good, '--target', 'Y'], "--target: '" + good
         + "' has no target column 'Y' (columns: 'smiles', 'y'); did you "
         "mean 'y'?"),
        (['--dataset', good, '--target', 'y', 'y'],
         "--target: Target column(s) given more than once: 'y'"),
        (['--dataset', good, '--target', 'y', '--smiles_column', 'smi'],
         "--smiles_column: '" + good + "' has no SMILES column 'smi' "
         "(columns: 'smiles', 'y'); did you mean 'smiles'?"),
        (['--dataset', mixed, '--target', 'active', '--smiles_column', 'y'],
         "--smiles_column: '" + mixed + "': none of the 12 SMILES in "
         "column 'y' could be parsed by RDKit"),
    ]


@pytest.mark.parametrize('case', range(13))
def test_bad_input_is_one_line_naming_the_flag(case, tmp_path, capsys):
    argv, message = _cases(tmp_path)[case]
    out = tmp_path / 'out'
    assert main(['compare', *argv, '--out', str(out), '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ' + message), err
    assert '\n' not in err
    assert not out.exists()  # Nothing half-written, not even locks.


def _no_data(*args, **kwargs):
    raise AssertionError('data loaded before the options were checked')


# (command, flags, the start of the message after 'error: '); NaN and
# infinity compare false with every bound, so each passed before.
NUMBERS = [
    ('compare', ['--dropout', 'nan'], "--dropout: 'dropout' must be a "
     "finite number (got nan)"),
    ('compare', ['--layer_dropout', 'nan'], "--layer_dropout: "
     "'layer_dropout' must be a finite number (got nan)"),
    ('compare', ['--val_ratio', 'nan'], "--val_ratio: 'val_ratio' must be "
     "a finite number (got nan)"),
    ('compare', ['--weight_decay', 'nan'], "--weight_decay: 'weight_decay' "
     "must be a finite number (got nan)"),
    ('compare', ['--weight_decay', 'inf'], "--weight_decay: 'weight_decay' "
     "must be a finite number (got inf)"),
    ('compare', ['--weight_decay', '1e300'], "--weight_decay: "
     "'weight_decay' must be within float32's range"),
    ('compare', ['--lrs', '0.01', '1e300'], '--lrs: learning rates must be '
     "positive finite numbers within float32's range"),
    ('compare', ['--lrs', 'nan'], '--lrs: learning rates must be positive '
     'finite numbers'),
    ('compare', ['--lrs', '1e-300'], '--lrs: learning rates must be '
     'positive finite numbers'),
    ('train', ['--lr', 'inf'], "--lr: 'lr' must be a finite number (got "
     "inf)"),
    ('train', ['--lr', '1e39'], "--lr: 'lr' must be within float32's "
     "range"),
    ('train', ['--lr', '1e-300'], '--lr: learning rates must be positive '
     'finite numbers'),
    ('train', ['--dropout=-inf'], "--dropout: 'dropout' must be a "
     "finite number (got -inf)"),
    ('train', ['--weight_decay', 'nan'], "--weight_decay: 'weight_decay' "
     "must be a finite number (got nan)"),
]


@pytest.mark.parametrize('command,flags,message', NUMBERS)
def test_numbers_must_be_finite_before_any_data(command, flags, message,
                                                tmp_path, capsys,
                                                monkeypatch):
    monkeypatch.setattr(api, 'load_configured', _no_data)
    monkeypatch.setattr(runner, 'load_configured', _no_data)
    out = tmp_path / 'out'
    target = out if command == 'compare' else out / 'r.json'
    assert main([command, '--dataset', 'synthetic', '--epochs', '1',
                 '--no_progress', *flags, '--out', str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ' + message), err
    assert '\n' not in err and not out.exists()


# Options the dataset would ignore, and widths too large for a model:
# (flags, the start of the message after 'error: ').
IGNORED = [
    (['--target', 'y', '--node_features', 'constant'],
     '--node_features: node features are chosen for TU datasets'),
    (['--target', 'y', '--root', '/tmp'],
     '--root: a data root is for TU and OGB datasets'),
    (['--target', 'y', '--hidden_channels', '100000000000'],
     "--hidden_channels: 'hidden_channels' must be <= 32768"),
    (['--target', 'y', '--num_layers', '1000000000'],
     "--num_layers: 'num_layers' must be <= 1024 (got 1000000000): deeper "
     "than any published GNN"),
    (['--target', 'y', '--readouts', 'set2set', '--hidden_channels',
      '32768'], "--hidden_channels: too wide for readout 'set2set'"),
]


@pytest.mark.parametrize('flags,message', IGNORED)
def test_ignored_options_are_refused_before_any_data(flags, message,
                                                     tmp_path, capsys,
                                                     monkeypatch):
    monkeypatch.setattr(api, 'load_configured', _no_data)
    good = _csv(tmp_path / 'good.csv', 'smiles,y',
                [f'{s},{i / 4}' for i, s in enumerate(MOLECULES)])
    out = tmp_path / 'out'
    assert main(['compare', '--dataset', good, *flags, '--out', str(out),
                 '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ' + message), err
    assert '\n' not in err and not out.exists()


@pytest.mark.parametrize('command,flags,field', [
    ('train', ['--smiles_column', 'mol'], 'smiles_column'),
    ('train', ['--node_features', 'degree'], 'node_features'),
    ('compare', ['--root', '/tmp'], 'root'),
])
def test_data_options_synthetic_data_would_ignore(command, flags, field,
                                                  tmp_path, capsys):
    out = tmp_path / 'out'
    assert main([command, '--dataset', 'synthetic', *flags, '--out',
                 str(out), '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f'error: --{field}: '), err
    assert "'synthetic' would ignore" in err and not out.exists()


@pytest.mark.parametrize('case,message', [
    ('runs is a file', "--out: '{out}/runs' is a file"),
    ('empty name', "--out: 'out' must name a folder (got '')"),
    ('name too long', 'output folder'),
])
def test_unusable_output_folders(case, message, tmp_path, capsys):
    out = tmp_path / 'out'
    if case == 'runs is a file':
        out.mkdir()
        (out / 'runs').write_text('x')
    target = {'runs is a file': str(out), 'empty name': '',
              'name too long': str(tmp_path / ('x' * 300))}[case]
    assert main(['compare', '--dataset', 'synthetic', '--out', target,
                 '--no_progress', '--epochs', '1']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ' + message.format(out=out)), err
    assert '\n' not in err and 'Traceback' not in err


@pytest.mark.parametrize('kwargs,field', [
    (dict(readouts='sap'), 'readouts'),
    (dict(lrs=0.01), 'lrs'),
    (dict(lrs='0.01'), 'lrs'),
    (dict(lrs=[True]), 'lrs'),
    (dict(shard='0/1'), 'shard'),
    (dict(lr=0.5), 'lr'),
    (dict(epochs=1.5), 'epochs'),
    (dict(device='tpu'), 'device'),
    (dict(lrs=[0.01, float('inf')]), 'lrs'),
    (dict(dropout=float('nan')), 'dropout'),
    (dict(train=0), 'train'),
    (dict(write='yes'), 'write'),
    (dict(progress='no'), 'progress'),
    (dict(workers=True), 'workers'),
    (dict(threads=True), 'threads'),
    (dict(command=['sap-graph']), 'command'),
    (dict(smiles_column='mol'), 'smiles_column'),
])
def test_python_arguments_are_checked(kwargs, field, tmp_path):
    out = tmp_path / 'out'
    with pytest.raises(ConfigError) as info:
        compare('synthetic', **{'readouts': ['sum'], 'progress': False,
                                **kwargs}, out=str(out))
    assert info.value.field == field
    assert not out.exists()


@pytest.mark.parametrize('option', [
    dict(targets=['y']), dict(smiles_column='s'), dict(root='/tmp'),
    dict(node_features='constant'), dict(use_node_attr=True),
])
def test_graphs_from_python_refuse_the_options_of_loading(option, tmp_path):
    graphs = list(load_synthetic(num_graphs=12, min_pairs=2,
                                 max_pairs=3).dataset)
    out = tmp_path / 'out'
    with pytest.raises(ConfigError, match='graphs passed from Python would '
                       'ignore') as info:
        compare(graphs, ['sum'], out=str(out), progress=False, epochs=1,
                **option)
    assert info.value.field == next(iter(option))
    assert not out.exists()


def _compare_with_two_workers(out, **popen):
    """Starts ``sap-graph compare`` with two workers on long runs and
    returns its process once both workers train (each holds a run lock)."""
    proc = subprocess.Popen(
        [sys.executable, '-m', 'sap_graph', 'compare',
         '--dataset', 'synthetic', '--readouts', 'sum', 'mean', '--folds',
         '3', '--epochs', '500', '--hidden_channels', '8', '--num_layers',
         '1', '--workers', '2', '--no_progress', '--out', str(out)],
        env=dict(os.environ, OMP_NUM_THREADS='1'), preexec_fn=answers_ctrl_c,
        **popen)
    locks = out / 'runs' / '.locks'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
            locks.is_dir() and len(os.listdir(locks)) >= 2):
        time.sleep(0.5)  # Both workers are training.
    assert locks.is_dir() and len(os.listdir(locks)) >= 2
    return proc


@pytest.mark.slow
def test_ctrl_c_with_workers_is_one_line_and_stops_them(tmp_path):
    out = tmp_path / 'out'
    proc = _compare_with_two_workers(
        out, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group.
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        f'error: interrupted; finished runs are kept in {out}/runs, rerun '
        f'to continue']


def _children(pid):
    found = []
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):  # Gone meanwhile.
            continue
        if fields[1] == str(pid):  # Its parent.
            found.append(int(entry))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir('/proc'), reason='needs /proc')
def test_workers_exit_when_the_parent_is_killed(tmp_path):
    proc = _compare_with_two_workers(tmp_path / 'out',
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
    workers = _children(proc.pid)
    try:
        assert len(workers) >= 2
        proc.kill()  # SIGKILL: the parent cannot stop its workers itself.
        proc.wait()
        deadline = time.monotonic() + 10
        while any(map(alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(map(alive, workers))
    finally:
        for pid in filter(alive, workers):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_with_an_idle_worker_is_one_line(tmp_path):
    """One worker trains, the other is idle (its run is held by another
    process): Ctrl-C is one line, no KeyboardInterrupt traceback of the
    idle worker."""
    from sap_graph.experiments.files import release, try_lock
    out = tmp_path / 'out'
    budget = dict(folds=2, epochs=500, hidden_channels=8, num_layers=1)
    _, plan, _ = api.prepare('synthetic', ['sum'], [0.01], dict(budget),
                             str(out))
    locks = out / 'runs' / '.locks'
    held = try_lock(str(locks / f'{plan.runs[1].key}.json.lock'), 'run')
    try:
        proc = subprocess.Popen(
            [sys.executable, '-m', 'sap_graph', 'compare', '--dataset',
             'synthetic', '--readouts', 'sum', '--lrs', '0.01',
             *[a for k, v in budget.items() for a in (f'--{k}', str(v))],
             '--workers', '2', '--no_progress', '--out', str(out)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True, preexec_fn=answers_ctrl_c,
            env=dict(os.environ,
                                             OMP_NUM_THREADS='1'))
        training = locks / f'{plan.runs[0].key}.json.lock'
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not training.exists():
            time.sleep(0.5)
        assert training.exists()
        time.sleep(3)  # The other worker skipped the held run: idle.
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group.
        _, err = proc.communicate(timeout=60)
    finally:
        release(held)
    assert proc.returncode == 130
    assert err.strip().splitlines() == [
        f'error: interrupted; finished runs are kept in {out}/runs, rerun '
        f'to continue']


def _stuck(seconds, ready):
    """A run that ignores the stop signal (stuck in a long operation);
    creates file :obj:`ready` once it does."""
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    open(ready, 'w').close()
    time.sleep(seconds)


@pytest.mark.skipif(not hasattr(signal, 'SIGUSR1'), reason='POSIX signal')
def test_stop_kills_a_worker_that_does_not_stop(monkeypatch, tmp_path):
    """Ctrl-C with workers waits at most STOP_GRACE seconds for a worker
    that ignores the stop signal, then kills it; a second Ctrl-C meanwhile
    does not cancel the kill."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    monkeypatch.setattr(engine, 'STOP_GRACE', 1.0)
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context(
        'spawn'))
    ready = tmp_path / 'ready'
    pool.submit(_stuck, 45, str(ready))
    deadline = time.monotonic() + 120
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # Until inside _stuck, the signal ignored.
    assert ready.exists()
    process, = pool._processes.values()
    start = time.monotonic()
    again = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    # Python's Ctrl-C handler, also where the tests run with SIGINT
    # ignored (a background job of a non-interactive shell).
    with handling(signal.SIGINT, signal.default_int_handler):
        again.start()
        engine._stop(pool)
    again.join()
    assert engine.STOP_GRACE <= time.monotonic() - start < 30
    assert not process.is_alive()

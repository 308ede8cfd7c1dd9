"""Interrupted runs continue to exactly the uninterrupted result."""
import json
import os
import time

import pytest
import torch

import sap_graph.experiments.train.runner as run_mod
import sap_graph.experiments.train.runs as runs
from sap_graph.experiments.checkpoint import (
    CheckpointError,
    get_rng_state,
    safe_load,
)
from sap_graph.experiments.cli import main
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.train import (
    ConfigError,
    TrainConfig,
    TrainState,
    build_model,
    cross_validate,
    fit,
    resolve_config,
    stratified_splits,
)

#: Values of a fold record that must not depend on an interruption (the
#: timings do).
EXACT_KEYS = ('fold', 'seed', 'best_epoch', 'val_acc', 'val_loss',
              'test_acc', 'test_loss', 'final_train_loss', 'train_size',
              'val_size', 'test_size')


class Killed(Exception):
    """Stands in for SIGKILL right after a state file was written."""


@pytest.fixture(scope='module')
def tiny_task():
    return load_synthetic(num_graphs=90, min_pairs=3, max_pairs=6)


def tiny_config(**kwargs):
    # lr_step=2 exercises the scheduler state, dropout the torch RNG.
    base = dict(readout='sap', heads=2, hidden_channels=8, num_layers=2,
                epochs=4, folds=3, batch_size=16, lr_step=2, progress=False,
                verbose=False)
    base.update(kwargs)
    return resolve_config(TrainConfig(**base), 'synthetic')


def kill_after(monkeypatch, saves):
    """Makes the run die right after its :obj:`saves`-th state write."""
    original = TrainState.save
    count = {'n': 0}

    def save(self):
        original(self)
        count['n'] += 1
        if count['n'] == saves:
            raise Killed

    monkeypatch.setattr(TrainState, 'save', save)
    return count


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_fit_resumes_mid_run_exactly(tiny_task):
    cfg = tiny_config(epochs=5)
    split = stratified_splits(tiny_task.labels, 3, seed=0)[0]
    train = [tiny_task.dataset[int(i)] for i in split['train']]
    val = [tiny_task.dataset[int(i)] for i in split['val']]
    device = torch.device('cpu')

    def new_model():
        torch.manual_seed(0)
        return build_model(cfg, tiny_task)

    model = new_model()
    ref = fit(model, train, val, cfg, device, seed=3)
    ref_final = {k: v.clone() for k, v in model.state_dict().items()}

    snapshots = []

    def stop_after_two(snapshot):
        snapshots.append(snapshot)
        if snapshot['epoch'] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(new_model(), train, val, cfg, device, seed=3,
            on_epoch=stop_after_two)
    # The snapshot survives a weights_only round trip...
    snapshot = snapshots[-1]
    buffer = __import__('io').BytesIO()
    torch.save(snapshot, buffer)
    buffer.seek(0)
    snapshot = torch.load(buffer, weights_only=True)
    # ...and a scrambled process state does not matter.
    torch.manual_seed(1234)
    model = new_model()
    torch.manual_seed(999)
    res = fit(model, train, val, cfg, device, seed=3, resume=snapshot)
    assert res.best_epoch == ref.best_epoch and res.val == ref.val
    assert [h['train_loss'] for h in res.history] == [
        h['train_loss'] for h in ref.history]
    assert_same_state(res.state_dict, ref.state_dict)
    assert_same_state(model.state_dict(), ref_final)


@pytest.mark.parametrize('saves', [2, 5, 7])  # Mid fold 0, fold end, fold 1.
def test_cross_validation_resumes_exactly(tiny_task, tmp_path, monkeypatch,
                                          saves):
    ref = cross_validate(tiny_task, tiny_config())
    state = str(tmp_path / 'run.state.pt')

    kill_after(monkeypatch, saves)
    with pytest.raises(Killed):
        cross_validate(tiny_task, tiny_config(state=state))
    saved = torch.load(state, weights_only=True)
    assert len(saved['runs']) == (saves) // 5  # 4 epochs + 1 per fold.
    monkeypatch.undo()

    res = cross_validate(tiny_task, tiny_config(state=state, resume=True))
    assert res['resumed']
    for a, b in zip(ref['folds'], res['folds'], strict=True):
        assert {k: a[k] for k in EXACT_KEYS} == {k: b[k] for k in EXACT_KEYS}
    for key in ('test_mean', 'test_std', 'val_mean', 'val_std'):
        assert res[key] == ref[key]
    a, b = res['_best_state']['record'], ref['_best_state']['record']
    assert {k: a[k] for k in EXACT_KEYS} == {k: b[k] for k in EXACT_KEYS}
    assert_same_state(res['_best_state']['state_dict'],
                      ref['_best_state']['state_dict'])


def test_cli_resume_after_interrupt(tiny_task, tmp_path, monkeypatch,
                                    capsys):
    monkeypatch.setattr(run_mod, 'load_configured',
                        lambda *args, **kwargs: tiny_task)
    flags = ['train', '--epochs', '3', '--folds', '2', '--hidden_channels',
             '8', '--heads', '2', '--batch_size', '16', '--no-progress',
             '--quiet']
    ref_out, ref_ckpt = tmp_path / 'ref.json', tmp_path / 'ref.pt'
    assert main(flags + ['--out', str(ref_out), '--checkpoint',
                         str(ref_ckpt)]) == 0

    out, ckpt = tmp_path / 'r.json', tmp_path / 'm.pt'
    state = tmp_path / 'state' / 'run.pt'
    args = flags + ['--out', str(out), '--checkpoint', str(ckpt), '--state',
                    str(state)]
    original = TrainState.save
    count = {'n': 0}

    def interrupted(self):  # Ctrl-C (or SIGTERM) after epoch 2 of fold 1.
        original(self)
        count['n'] += 1
        if count['n'] == 6:
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainState, 'save', interrupted)
    assert main(args) == 130
    err = capsys.readouterr().err
    assert '--resume --state' in err
    assert not out.exists() and not ckpt.exists() and state.exists()
    assert not list(state.parent.glob('.tmp-*'))  # Atomic writes.
    monkeypatch.setattr(TrainState, 'save', original)

    # Without --resume an existing state is never overwritten.
    assert main(args) == 2
    assert '--resume' in capsys.readouterr().err
    # total_time counts the time before the interruption (as saved).
    saved = torch.load(state, weights_only=True)
    assert 0 < saved['elapsed'] < 600
    torch.save({**saved, 'elapsed': 1000.0}, state)
    start = time.perf_counter()
    assert main(args + ['--resume']) == 0
    took = time.perf_counter() - start
    ref, res = json.loads(ref_out.read_text()), json.loads(out.read_text())
    assert 1000.0 < res['total_time'] < 1000.0 + took
    assert 0 < ref['total_time'] < 600 and '_time_before' not in res
    for a, b in zip(ref['folds'], res['folds'], strict=True):
        assert {k: a[k] for k in EXACT_KEYS} == {k: b[k] for k in EXACT_KEYS}
    assert res['test_mean'] == ref['test_mean'] and res['resumed']
    assert_same_state(torch.load(ckpt, weights_only=True)['state_dict'],
                      torch.load(ref_ckpt, weights_only=True)['state_dict'])

    # A finished state resumes to the same result without training.
    monkeypatch.setattr(runs, 'fit', None)
    assert main(args + ['--resume']) == 0
    assert json.loads(out.read_text())['test_mean'] == ref['test_mean']


def test_resume_refuses_another_config(tiny_task, tmp_path, monkeypatch):
    state = str(tmp_path / 's.pt')
    kill_after(monkeypatch, 1)
    with pytest.raises(Killed):
        cross_validate(tiny_task, tiny_config(state=state))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r'lr=0\.01 \(now 0\.5\)'):
        cross_validate(tiny_task, tiny_config(state=state, resume=True,
                                              lr=0.5))
    # Library errors name the field, never a command-line flag.
    with pytest.raises(ConfigError, match='exists: resume it') as info:
        cross_validate(tiny_task, tiny_config(state=state))
    assert info.value.field == 'state' and '--' not in str(info.value)
    with pytest.raises(ConfigError, match='needs the training state') as info:
        cross_validate(tiny_task, tiny_config(resume=True))
    assert info.value.field == 'resume' and '--' not in str(info.value)
    other = load_synthetic(num_graphs=60, min_pairs=3, max_pairs=6)
    with pytest.raises(ValueError, match='another dataset'):
        cross_validate(other, tiny_config(state=state, resume=True))
    # --resume without a state file yet starts afresh.
    fresh = str(tmp_path / 'fresh.pt')
    res = cross_validate(tiny_task, tiny_config(state=fresh, resume=True,
                                                epochs=1, folds=2))
    assert not res['resumed'] and os.path.exists(fresh)


def test_state_files_are_plain_data(tmp_path):
    gen = torch.Generator().manual_seed(5)
    path = str(tmp_path / 'rng.pt')
    torch.save(get_rng_state({'shuffle': gen}), path)
    state = safe_load(path)  # weights_only=True
    assert torch.equal(state['generators']['shuffle'], gen.get_state())
    with pytest.raises(CheckpointError, match='not found'):
        safe_load(str(tmp_path / 'missing.pt'))


def test_resume_refuses_changed_data(tiny_task, tmp_path, monkeypatch,
                                     capsys):
    """Same name, sizes and classes, other graphs: refused in one line."""
    state = str(tmp_path / 's.pt')
    kill_after(monkeypatch, 1)
    with pytest.raises(Killed):
        cross_validate(tiny_task, tiny_config(state=state))
    monkeypatch.undo()
    changed = load_synthetic(num_graphs=90, min_pairs=3, max_pairs=6)
    changed.dataset._data.x = changed.dataset._data.x.flip(0)
    assert changed.stats() == tiny_task.stats()
    assert changed.digest != tiny_task.digest
    with pytest.raises(ValueError, match="data of dataset 'synthetic' "
                       "changed since it was written"):
        cross_validate(changed, tiny_config(state=state, resume=True))
    monkeypatch.setattr(run_mod, 'load_configured',
                        lambda *args, **kwargs: changed)
    assert main(['train', '--epochs', '4', '--folds', '3', '--heads', '2',
                 '--hidden_channels', '8', '--num_layers', '2',
                 '--batch_size', '16', '--lr_step', '2', '--no-progress',
                 '--quiet', '--state', state, '--resume']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'changed since it was written' in err
    assert 'Traceback' not in err


def test_old_state_format_is_a_clear_error(tiny_task, tmp_path):
    state = str(tmp_path / 's.pt')
    torch.save({'format': TrainState.FORMAT, 'version': 1,
                'sap_graph_version': '0.1.0'}, state)
    with pytest.raises(CheckpointError, match='format version 1 '
                       r'\(expected 2\).*older sap-graph.*delete it'):
        cross_validate(tiny_task, tiny_config(state=state, resume=True))
    torch.save({'format': TrainState.FORMAT, 'version': 3,
                'sap_graph_version': '9.0.0'}, state)
    with pytest.raises(CheckpointError, match=r'format version 3 \(expected '
                       r'2\): it was written by a newer sap-graph \(9.0.0\)'):
        cross_validate(tiny_task, tiny_config(state=state, resume=True))


def test_disk_full_while_saving_state_is_one_line(tiny_task, tmp_path,
                                                  monkeypatch, capsys):
    """ENOSPC on the second state write: one line, exit 2, the state of
    the first epoch kept whole, and --resume continues from it."""
    import errno

    import sap_graph.experiments.checkpoint as checkpoint
    monkeypatch.setattr(run_mod, 'load_configured',
                        lambda *args, **kwargs: tiny_task)
    state = tmp_path / 's.pt'
    args = ['train', '--epochs', '2', '--folds', '2', '--hidden_channels',
            '8', '--heads', '2', '--batch_size', '16', '--no-progress',
            '--quiet', '--state', str(state), '--out',
            str(tmp_path / 'r.json')]
    real, writes = checkpoint.atomic_write, []

    def full_on_second(path, write):
        writes.append(path)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, write)

    monkeypatch.setattr(checkpoint, 'atomic_write', full_on_second)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot write training state '{state}' (No space "
                   f"left on device); its previous version is kept\n")
    saved = safe_load(str(state))
    assert saved['current']['fit']['epoch'] == 1 and not saved['runs']
    assert sorted(os.listdir(tmp_path)) == ['s.pt', 's.pt.lock']
    monkeypatch.setattr(checkpoint, 'atomic_write', real)
    assert main(args + ['--resume']) == 0
    assert json.loads((tmp_path / 'r.json').read_text())['resumed']

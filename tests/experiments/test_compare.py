"""sap-graph compare: the learning rate chosen on validation, the paired
tests against an exact enumeration, resuming, shards and workers giving
the same runs, every bad input as one error line before training, the MAE
metric and a loaded molecule task's seeds. The readout variants are in
:mod:`tests.experiments.test_compare_variants`."""
import csv
import itertools
import os
import statistics

import pytest

import sap_graph.experiments.compare.engine as engine
from sap_graph.experiments.cli import main
from sap_graph.experiments.compare import compare
from sap_graph.experiments.data import load_synthetic

TINY = dict(epochs=2, hidden_channels=8, num_layers=1, folds=3,
            batch_size=16)


@pytest.fixture(scope='module')
def tiny():
    return load_synthetic(num_graphs=48, min_pairs=2, max_pairs=4)


@pytest.fixture(scope='module')
def full(tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp('full')
    res = compare(tiny, ['sum', 'sap'], out=str(out), lrs=[0.01, 0.001],
                  progress=False, **TINY)
    return out, res


def _rows(out):
    with open(os.path.join(out, 'results.csv')) as f:
        return list(csv.DictReader(f))


def _exact_p(diffs):
    """Two-sided sign-flip p-value by enumerating every sign pattern."""
    observed = abs(statistics.fmean(diffs))
    hits = sum(abs(statistics.fmean(s * d for s, d in zip(signs, diffs,
                                                           strict=True)))
               >= observed - 1e-12
               for signs in itertools.product((1, -1), repeat=len(diffs)))
    return hits / 2 ** len(diffs)


def _scores(res):
    return sorted((r['readout'], r['lr'], r['unit'], r['val'], r['test'])
                  for r in res.runs)


def test_report_files_and_lr_chosen_on_validation(full):
    out, res = full
    for name in ('report.md', 'results.csv', 'compare.png'):
        assert os.path.getsize(out / name) > 0
    rows = _rows(out)
    assert len(rows) == 2 * 2 * 3  # readouts x lrs x folds
    for readout, unit in itertools.product(('sum', 'sap'),
                                           ('fold_0', 'fold_1', 'fold_2')):
        mine = [r for r in rows if r['readout'] == readout
                and r['unit'] == unit]
        best = max(mine, key=lambda r: (float(r['val']),
                                        -float(r['val_loss'])))
        chosen = [r for r in mine if r['selected'] == 'True']
        assert chosen == [best]
    for row in res.rows:
        tests = [float(r['test']) for r in rows if r['readout'] ==
                 row.readout and r['selected'] == 'True']
        assert row.test_mean == pytest.approx(statistics.fmean(tests))
        assert row.test_std == pytest.approx(statistics.stdev(tests))
    assert res.best == max(res.rows, key=lambda r: r.val_mean).readout
    text = (out / 'report.md').read_text()
    assert f'**{res.best}**' in text and 'Paired tests' in text


def test_paired_test_is_the_exact_sign_flip(full):
    out, res = full
    (test,) = res.tests
    rows = [r for r in _rows(out) if r['selected'] == 'True']
    score = {(r['readout'], r['unit']): float(r['test']) for r in rows}
    diffs = [score[test.readout, u] - score[res.best, u] for u in test.units]
    assert test.diffs == pytest.approx(diffs)
    assert test.p_value == pytest.approx(_exact_p(diffs))
    assert test.wins + test.ties + test.losses == 3


def test_rerun_trains_nothing(full, tiny, monkeypatch, capsys):
    out, res = full

    def no_training(*args, **kwargs):
        raise AssertionError('trained a finished run')

    monkeypatch.setattr(engine, 'execute_run', no_training)
    again = compare(tiny, ['sum', 'sap'], out=str(out), lrs=[0.01, 0.001],
                    progress=True, write=False, **TINY)
    assert _scores(again) == _scores(res)
    assert capsys.readouterr().err == (
        f"All 12 runs are in {out / 'runs'}; nothing to train\n")


def test_render_without_writing_leaves_the_files(full, tiny):
    out, res = full
    report = (out / 'report.md').read_text()
    (out / 'report.md').write_text('untouched')
    try:
        again = compare(tiny, ['sum', 'sap'], out=str(out),
                        lrs=[0.01, 0.001], train=False, write=False,
                        progress=False, **TINY)
        assert (out / 'report.md').read_text() == 'untouched'
    finally:
        (out / 'report.md').write_text(report)
    assert _scores(again) == _scores(res) and again.best == res.best
    assert again.markdown() == report


def test_interrupted_comparison_resumes_to_the_same_runs(full, tiny,
                                                         tmp_path,
                                                         monkeypatch, capsys):
    _, res = full
    calls = []
    original = engine.execute_run

    def interrupted(plan, run):
        calls.append(run)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(plan, run)

    monkeypatch.setattr(engine, 'execute_run', interrupted)
    with pytest.raises(KeyboardInterrupt):
        compare(tiny, ['sum', 'sap'], out=str(tmp_path), lrs=[0.01, 0.001],
                progress=False, **TINY)
    assert len(os.listdir(tmp_path / 'runs')) - 1 == 2  # + .locks
    monkeypatch.setattr(engine, 'execute_run', original)
    capsys.readouterr()
    again = compare(tiny, ['sum', 'sap'], out=str(tmp_path),
                    lrs=[0.01, 0.001], progress=True, **TINY)
    assert _scores(again) == _scores(res)
    assert capsys.readouterr().err.startswith(
        f"Resuming: 2 of 12 runs are in {tmp_path / 'runs'}; 10 to train\n")


def test_shards_then_render_equal_one_run(full, tiny, tmp_path):
    _, res = full
    kwargs = dict(out=str(tmp_path), lrs=[0.01, 0.001], progress=False,
                  **TINY)
    first = compare(tiny, ['sum', 'sap'], shard=(0, 2), **kwargs)
    assert first.missing == 6 and not (tmp_path / 'report.md').exists()
    compare(tiny, ['sum', 'sap'], shard=(1, 2), **kwargs)
    rendered = compare(tiny, ['sum', 'sap'], train=False, **kwargs)
    assert rendered.missing == 0 and (tmp_path / 'report.md').exists()
    assert _scores(rendered) == _scores(res)


@pytest.mark.slow
def test_two_workers_give_the_same_runs(full, tiny, tmp_path):
    _, res = full
    two = compare(tiny, ['sum', 'sap'], out=str(tmp_path), workers=2,
                  lrs=[0.01, 0.001], progress=False, **TINY)
    assert _scores(two) == _scores(res)


# Bad input: one error line, exit 2, before training, nothing written. ####

MOLECULES = ['CCO', 'c1ccccc1', 'CC(=O)O', 'CCN', 'CCCC', 'OCCO', 'CCOC',
             'c1ccncc1', 'CC(C)O', 'C1CCCCC1', 'CCCl', 'CC=O']


def _csv(path, rows, header='smiles,y'):
    path.write_text(header + '\n' + ''.join(f'{r}\n' for r in rows))
    return str(path)


def _cases(tmp):
    good = _csv(tmp / 'good.csv', [f'{s},{i % 2}' for i, s in
                                   enumerate(MOLECULES)])
    return {
        'missing file': ['--dataset', str(tmp / 'nope.csv'),
                         '--target', 'y'],
        'missing column': ['--dataset', good, '--target', 'z'],
        'empty csv': ['--dataset', _csv(tmp / 'empty.csv', []),
                      '--target', 'y'],
        'no valid smiles': ['--dataset', _csv(
            tmp / 'bad.csv', ['xx,1', 'C(C,0']), '--target', 'y'],
        'non-numeric target': ['--dataset', _csv(
            tmp / 'text.csv', ['CCO,1', 'CCN,high']), '--target', 'y'],
        'one class only': ['--dataset', _csv(
            tmp / 'one.csv', [f'{s},1' for s in MOLECULES]), '--target',
            'y'],
        'fewer graphs than folds': ['--dataset', _csv(
            tmp / 'three.csv', ['CCO,0.5', 'CCN,1.5', 'CCCC,2.5']),
            '--target', 'y', '--folds', '5'],
        'unknown readout': ['--dataset', good, '--target', 'y',
                            '--readouts', 'sum', 'nope'],
        'unwritable output': ['--dataset', good, '--target', 'y',
                              '--out', '/proc/sap-graph-out'],
        'mae on a binary target': ['--dataset', good, '--target', 'y',
                                   '--metric', 'mae'],
        'mae on a TU-style dataset': ['--dataset', 'synthetic',
                                      '--metric', 'mae'],
    }


@pytest.mark.parametrize('case', [
    'missing file', 'missing column', 'empty csv', 'no valid smiles',
    'non-numeric target', 'one class only', 'fewer graphs than folds',
    'unknown readout', 'unwritable output', 'mae on a binary target',
    'mae on a TU-style dataset'])
def test_bad_input_is_one_error_line(case, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError('trained on bad input')

    monkeypatch.setattr(engine, 'execute_run', no_training)
    argv = _cases(tmp_path)[case]
    out = tmp_path / 'out'
    if '--out' not in argv:
        argv = argv + ['--out', str(out)]
    assert main(['compare', *argv, '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    assert 'Traceback' not in err
    assert not out.exists()  # Nothing half-written.


def test_mae_scores_and_selects_regression_runs(tmp_path):
    """--metric mae: the runs are scored by MAE (at most their RMSE, on
    the same one-epoch models), cached apart from the RMSE runs, and the
    report says so; Python rejects a metric the task cannot take."""
    from sap_graph.experiments.errors import ConfigError
    path = _csv(tmp_path / 'reg.csv', [f'{s},{0.7 * i - 2}' for i, s in
                                       enumerate(MOLECULES)])
    opts = dict(readouts=['sum'], lrs=[0.01], targets=['y'],
                progress=False, **{**TINY, 'epochs': 1})
    rmse = compare(path, out=str(tmp_path / 'rmse'), **opts)
    mae = compare(path, out=str(tmp_path / 'mae'), metric='mae', **opts)
    assert (rmse.metric, mae.metric) == ('rmse', 'mae')
    assert not mae.higher_is_better
    by_unit = {r['unit']: r['test'] for r in rmse.runs}
    assert len(mae.runs) == len(by_unit) == 3
    for r in mae.runs:
        assert 0 < r['test'] <= by_unit[r['unit']]
    keys = [{f for f in os.listdir(tmp_path / m / 'runs')
             if f.endswith('.json')} for m in ('rmse', 'mae')]
    assert len(keys[1]) == 3 and not keys[0] & keys[1]
    assert 'test metric **mae**' in (tmp_path / 'mae' / 'report.md'
                                     ).read_text()
    with pytest.raises(ConfigError, match='regression'):
        compare(load_synthetic(num_graphs=12), ['sum'], metric='mae',
                out=str(tmp_path / 'x'), progress=False, **TINY)


def test_another_spelling_of_a_readout_is_the_same_run(full, tiny,
                                                       monkeypatch,
                                                       tmp_path):
    from sap_graph.experiments.errors import ConfigError
    out, res = full

    def no_training(*args, **kwargs):
        raise AssertionError('trained a finished run again')

    monkeypatch.setattr(engine, 'execute_run', no_training)
    again = compare(tiny, ['sum', 'sap{"residual": "max"}'], out=str(out),
                    lrs=[0.01, 0.001], progress=False, write=False, **TINY)
    assert [r.readout for r in again.rows] == ['sum', 'sap{"residual": "max"}']
    assert ([(r.val_mean, r.test_mean) for r in again.rows]
            == [(r.val_mean, r.test_mean) for r in res.rows])
    with pytest.raises(ConfigError, match="'sap' and 'sap{}' are the same "
                       "readout"):
        compare(tiny, ['sap', 'sap{}'], out=str(tmp_path / 'o'),
                progress=False, **TINY)
    assert not (tmp_path / 'o').exists()


def test_each_run_records_the_paths_it_ran(full, tiny, tmp_path):
    """Run provenance names the SAP paths of that run only: none for a
    readout without SAP, even after SAP ran in the same process."""
    import torch

    from sap_graph import SAPAggregation
    SAPAggregation(4)(torch.randn(3, 4), torch.tensor([0, 0, 1]), dim_size=2)
    res = compare(tiny, ['mean'], out=str(tmp_path), lrs=[0.01],
                  progress=False, **{**TINY, 'epochs': 1})
    assert {r['versions']['sap_graph_paths'] for r in res.runs} == {None}
    paths = {r['readout']: r['versions']['sap_graph_paths']
             for r in full[1].runs}
    assert paths['sum'] is None and paths['sap'] in ('native', 'torch')


@pytest.mark.filterwarnings('ignore:m. skipped')
def test_a_loaded_molecule_task_takes_its_seeds(tmp_path):
    """A loaded task passed from Python is judged by its own kind: the
    seeds of a CSV of molecules (scaffold splits) are used, not refused
    as if it were cross-validated."""
    pytest.importorskip('rdkit')
    from sap_graph.experiments.data import load_dataset
    from sap_graph.experiments.train import TrainConfig, run
    rings = ['c1ccccc1', 'c1ccncc1', 'C1CCCCC1', 'C1CCCC1', 'c1ccoc1',
             'c1ccsc1', 'c1cc[nH]c1', 'c1ccc2ccccc2c1', 'c1ccc2[nH]ccc2c1',
             'C1CCNCC1', 'C1CCOCC1', 'c1cnccn1', 'c1ncncn1', 'C1CC1',
             'C1CCC1', 'c1ccc(-c2ccccc2)cc1', 'O=C1CCCCC1', 'c1cn[nH]c1',
             'C1CCCCCC1', 'c1ccc2ncccc2c1']
    smiles = rings + [s + 'C' for s in rings] + [s + 'O' for s in rings]
    path = tmp_path / 'm.csv'
    path.write_text('smiles,y\n' + ''.join(
        f'{s},{i % 7 * 0.5}\n' for i, s in enumerate(smiles)))
    task = load_dataset(str(path), targets=['y'])
    tiny = dict(epochs=1, hidden_channels=8, num_layers=1, progress=False)
    res = compare(task, ['sum'], out=str(tmp_path / 'out'), lrs=[0.01],
                  seeds=[0, 1], **tiny)
    assert sorted(r['unit'] for r in res.runs) == ['seed_0', 'seed_1']
    result = run(TrainConfig(seeds=[3], verbose=False, **tiny), task=task)
    assert [r['seed'] for r in result['seeds']] == [3]

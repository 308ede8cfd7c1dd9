"""The command line: one-line errors with exit status 2, flags named after
the library's fields, and both flag spellings; readout options checked
before any data, one live run per output file, standard JSON results."""
import json
import math
import os.path as osp

import pytest
from test_hostile import one_error_line
from test_hostile_cli import TOY, tiny  # noqa: F401

import sap_graph.experiments.train.runner as run_mod
import sap_graph.experiments.train.runs as runs
from sap_graph.experiments.cli import _error, build_parser, main
from sap_graph.experiments.errors import ConfigError, one_line


def test_both_flag_spellings_parse():
    parser = build_parser()
    a = parser.parse_args(['train', '--hidden_channels', '8', '--no-progress'])
    b = parser.parse_args(['train', '--hidden-channels', '8', '--no_progress'])
    assert a.hidden_channels == b.hidden_channels == 8
    assert a.no_progress and b.no_progress


@pytest.mark.parametrize('argv', [['train', '--epochs', 'x'], ['nope'], [],
                                  ['explain']])
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith('error: ') and '\n' not in err
    assert 'usage:' not in captured.err


def test_library_fields_become_flags(capsys):
    assert _error(ConfigError('batch_size', "'batch_size' must be >= 1")) == 2
    assert capsys.readouterr().err == (
        "error: --batch_size: 'batch_size' must be >= 1\n")
    assert _error(OSError('disk\n full'), 1) == 1
    assert capsys.readouterr().err == 'error: disk full\n'


def test_one_line():
    assert one_line(ValueError('a\n  b')) == 'a b'
    assert one_line(KeyError()) == 'KeyError'
    assert one_line(ValueError('x' * 50), limit=10) == 'xxxxxxx...'


def test_resume_without_state_is_a_flag_error(capsys):
    assert main(['train', '--resume', '--no-progress']) == 2
    assert capsys.readouterr().err.startswith('error: --resume: ')


# Readout options, concurrent outputs, standard JSON (issue 27) ##########

@pytest.fixture()
def no_data(monkeypatch):
    """Fails the test if any data is loaded."""
    def no_data(*args, **kwargs):
        raise AssertionError('data loaded before the options were checked')
    monkeypatch.setattr(run_mod, 'load_configured', no_data)


@pytest.mark.parametrize('args,message', [
    (['--readout', 'sort', '--readout_kwargs', '{"k": 0}'],
     "'k' must be a positive integer (got 0)"),
    (['--readout', 'sort', '--readout_kwargs', '{"k": -3}'],
     "'k' must be a positive integer (got -3)"),
    (['--readout', 'set2set', '--readout_kwargs', '{"processing_steps": -1}'],
     "'processing_steps' must be a positive integer (got -1)"),
    (['--readout', 'set2set', '--readout_kwargs', '{"processing_steps": 0}'],
     "'processing_steps' must be a positive integer (got 0)"),
    (['--readout', 'gmt', '--readout_kwargs', '{"k": 0}'],
     "'k' must be a positive integer (got 0)"),
    (['--readout', 'set_transformer', '--readout_kwargs',
      '{"num_seed_points": 0}'],
     "'num_seed_points' must be a positive integer (got 0)"),
    (['--readout_kwargs', '{"rezero": "false"}'],
     "'rezero' must be a boolean, true or false (got 'false')"),
    (['--readout_kwargs', '{"concat": "no"}'], "'concat' must be a boolean"),
    (['--readout_kwargs', '{"out_channels": -2}'],
     "'out_channels' must be a positive integer (got -2)"),
    (['--readout_kwargs', '{"temperature": Infinity}'],
     "'temperature' must be a finite number (got inf)"),
    # Finite but inf in float32: trained to NaN before.
    (['--readout_kwargs', '{"temperature": 1e39}'],
     "'temperature' must be within float32's range"),
    # Absurd sizes: counted on the meta device, never allocated.
    (['--readout_kwargs', '{"heads": 1000000000000}'],
     'would have 2,112,000,000,001,024 parameters (at most 1,073,741,824)'),
    (['--readout', 'sort', '--readout_kwargs', '{"k": 100000000}'],
     'would have 102,400,000,000 parameters'),
    # At the width the readout pools: 32 (synthetic), 2 * 8 with jk cat.
    (['--readout', 'set_transformer', '--heads', '3'],
     "'heads' (3) must divide the width of the node embeddings (32)"),
    (['--readout', 'gmt', '--heads', '3', '--hidden_channels', '8', '--jk',
      'cat', '--num_layers', '2'],
     "'heads' (3) must divide the width of the node embeddings (16)"),
    (['--dataset', 'ogbg-molhiv', '--readout', 'set_transformer', '--heads',
      '7'], "'heads' (7) must divide the width of the node embeddings (300)"),
    (['--dataset', 'MUTAG', '--readout', 'set_transformer', '--heads', '3'],
     "'heads' (3) must divide the width of the node embeddings (64)"),
])
def test_bad_readouts_are_one_line_before_any_data(args, message, capsys,
                                                   no_data):
    quick = ['--epochs', '1', '--no-progress', '--quiet']
    assert main(['train', *quick, *args]) == 2
    line = one_error_line(capsys)
    assert line.startswith('error: --readout_kwargs: invalid options for '
                           'readout'), line
    assert message in line


@pytest.mark.parametrize('flag', ['--diversity', '--entropy'])
def test_regulariser_weights_are_named_by_their_flag(flag, capsys, no_data):
    assert main(['train', '--epochs', '1', '--quiet', flag, '1e39']) == 2
    assert one_error_line(capsys).startswith(
        f"error: {flag}: '{flag[2:]}' must be within float32's range")


def test_readouts_are_checked_at_the_width_they_pool(tmp_path, capsys):
    # 300 channels (OGB), 5 heads: valid, so the error is the missing data.
    assert main(['train', '--dataset', 'ogbg-molhiv', '--readout',
                 'set_transformer', '--heads', '5', '--root',
                 str(tmp_path / 'none'), '--no_download',
                 '--no-progress']) == 2
    assert "--root: OGB dataset 'ogbg-molhiv' not found" in one_error_line(
        capsys)


@pytest.mark.usefixtures('tiny')
def test_jk_cat_readouts_are_checked_at_their_width():
    # 3 layers of 8 channels = 24, which 3 heads divide.
    assert main(['train', *TOY, '--readout', 'set_transformer', '--heads',
                 '3', '--jk', 'cat', '--num_layers', '3']) == 0


@pytest.mark.usefixtures('tiny')
def test_an_output_file_has_one_live_writer(tmp_path, capsys, monkeypatch):
    out, ckpt = str(tmp_path / 'r.json'), str(tmp_path / 'm.pt')
    original, calls, second = runs.fit, [], []

    def fit(*args, **kwargs):  # While the first run trains, start others.
        calls.append(1)
        if len(calls) == 1:
            second.append(main(['train', *TOY, '--out', out]))
            second.append(main(['train', *TOY, '--checkpoint',  # Spelt
                                osp.join(tmp_path, '.', 'm.pt')]))  # anew.
            second.append(capsys.readouterr().err)
        return original(*args, **kwargs)

    monkeypatch.setattr(runs, 'fit', fit)
    assert main(['train', *TOY, '--out', out, '--checkpoint', ckpt]) == 0
    assert second[:2] == [2, 2] and len(calls) == 2  # Its 2 folds only.
    lines = second[2].strip().split('\n')
    assert len(lines) == 2 and 'Traceback' not in second[2]
    assert lines[0].startswith(f"error: result file '{out}' is in use by "
                               f"another running process")
    assert lines[1].startswith('error: checkpoint ')
    assert 'is in use by another running process' in lines[1]
    with open(out) as f:
        assert json.load(f)['config']['checkpoint'] == ckpt
    # Finished: the files are free again (and a failed run frees them).
    assert main(['train', *TOY, '--out', out, '--epochs', '0']) == 2
    capsys.readouterr()
    assert main(['train', *TOY, '--out', out, '--checkpoint', ckpt]) == 0


@pytest.mark.usefixtures('tiny')
def test_the_result_file_is_standard_json(tmp_path, monkeypatch):
    original = runs.evaluate

    def diverged(*args, **kwargs):  # A test loss that overflowed.
        return dict(original(*args, **kwargs), loss=math.inf)

    monkeypatch.setattr(runs, 'evaluate', diverged)
    out = tmp_path / 'r.json'
    assert main(['train', *TOY, '--out', str(out)]) == 0

    def strict(name):
        raise ValueError(f'non-standard JSON constant {name}')

    result = json.loads(out.read_text(), parse_constant=strict)
    assert [f['test_loss'] for f in result['folds']] == [None, None]
    assert result['folds'][0]['test_acc'] >= 0


def test_train_scores_a_regression_csv_by_mae(tmp_path):
    pytest.importorskip('rdkit')
    smiles = ['CCO', 'c1ccccc1', 'CC(=O)O', 'CCN', 'CCCC', 'OCCO', 'CCOC',
              'c1ccncc1', 'CC(C)O', 'C1CCCCC1']
    path = tmp_path / 'reg.csv'
    path.write_text('smiles,y\n' + ''.join(f'{s},{0.3 * i}\n' for i, s in
                                            enumerate(smiles)))
    out = tmp_path / 'r.json'
    assert main(['train', '--dataset', str(path), '--target', 'y',
                 '--metric', 'mae', '--folds', '2', '--epochs', '1',
                 '--hidden_channels', '8', '--num_layers', '1',
                 '--no_progress', '--quiet', '--out', str(out)]) == 0
    result = json.loads(out.read_text())
    assert result['metric'] == 'mae'
    assert result['test_mean'] == pytest.approx(
        sum(f['test_mae'] for f in result['folds']) / 2)


def test_mae_on_a_dataset_without_regression_targets(capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError('data loaded before the metric was checked')
    monkeypatch.setattr('sap_graph.experiments.data.load.load_dataset',
                        no_data)
    assert main(['train', '--dataset', 'synthetic', '--metric', 'mae']) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: --metric: 'metric' is for the regression targets "
                   "of a CSV of molecules (got 'synthetic')")


@pytest.mark.parametrize('runs,key,says', [
    (1, 'seeds', 'test rocauc 0.7000 (1 seed), val'),
    (3, 'folds', 'test rocauc 0.7000 ± 0.0100 (3 folds), val'),
])
def test_summary_shows_a_spread_of_several_runs_only(runs, key, says):
    # The std of one run is no measured spread ('± 0.0000' read as one).
    from sap_graph.experiments.cli import _summary
    result = {'config': {'readout': 'sap'}, 'dataset': {'name': 'd'},
              'metric': 'rocauc', 'test_mean': 0.7, 'test_std': 0.01,
              'val_mean': 0.75, 'epoch_time_median': 0.5,
              key: [{}] * runs}
    assert _summary(result) == (f'd readout=sap: {says} 0.7500, median '
                                f'epoch time 0.500s')

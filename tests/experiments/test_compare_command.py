"""What sap-graph compare says and writes around a comparison (a hostile
trial): --render_only of options no finished run has is an error
that touches nothing; the report's Reproduce command is the whole
comparison, without the flags of one process (--shard, --workers, ...);
the summary line says when planned runs are missing."""
import os
import re
import shlex

import pytest

import sap_graph.experiments.compare.api as api
from sap_graph.experiments.cli import build_parser, main
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.files import release, try_lock

#: The comparison: 1 readout x 1 learning rate x 3 folds.
ARGS = ['compare', '--dataset', 'synthetic', '--readouts', 'sum', '--lrs',
        '0.01', '--epochs', '1', '--hidden_channels', '8', '--num_layers',
        '1', '--folds', '3', '--batch_size', '16']


@pytest.fixture(scope='module')
def tiny():
    return load_synthetic(num_graphs=36, min_pairs=2, max_pairs=3)


@pytest.fixture()
def small(tiny, monkeypatch):
    """`--dataset synthetic` loads 36 graphs (fast)."""
    monkeypatch.setattr(api, 'load_configured', lambda *a, **k: tiny)


def _files(out):
    """Every file under out and its content."""
    found = {}
    for folder, _, names in os.walk(out):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                found[os.path.relpath(path, out)] = f.read()
    return found


def _reproduce(out):
    text = (out / 'report.md').read_text()
    return re.search(r'## Reproduce\n\n```bash\n(.*)\n```', text).group(1)


@pytest.mark.usefixtures('small')
def test_render_only_without_its_runs_touches_nothing(tmp_path, capsys,
                                                      monkeypatch):
    out = tmp_path / 'out'
    assert main([*ARGS, '--out', str(out), '--no_progress']) == 0
    before = _files(out)
    assert 'report.md' in before and 'results.csv' in before
    capsys.readouterr()
    # Another budget: none of its runs is in OUT, the report is kept.
    assert main([*ARGS, '--epochs', '2', '--out', str(out),
                 '--render_only']) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"error: --out: no finished run of this "
                          f"comparison is in '{out / 'runs'}'"), err
    assert 'may differ from those the runs were trained with' in err
    assert '\n' not in err and not captured.out
    assert _files(out) == before
    # A mistyped folder: refused before any data is loaded, not made.
    monkeypatch.setattr(api, 'load_configured', lambda *a, **k: 1 / 0)
    typo = tmp_path / 'outt'
    assert main([*ARGS, '--out', str(typo), '--render_only']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --out: no finished run of this "
                          f"comparison is in '{typo}'"), err
    assert not typo.exists()


@pytest.mark.usefixtures('small')
def test_reproduce_is_the_whole_comparison(tmp_path, capsys):
    out = tmp_path / 'out'
    whole = [*ARGS, '--out', str(out)]
    for i in range(2):  # The last shard to finish writes the report.
        assert main([*whole, '--shard', f'{i}/2', '--workers', '1',
                     '--threads=1', '--no-progress']) == 0
    assert _reproduce(out) == 'sap-graph ' + shlex.join(whole)
    assert 'Shard 0/2 done' in capsys.readouterr().out
    (out / 'report.md').unlink()
    assert main([*whole, '--render_only', '--no_progress']) == 0
    assert _reproduce(out) == 'sap-graph ' + shlex.join(whole)
    assert 'best by validation sum' in capsys.readouterr().out


@pytest.mark.parametrize('argv,kept', [
    (['compare', '--out', 'o', '--shard', '0/2', '--workers', '4'],
     ['compare', '--out', 'o']),
    (['compare', '--shard=1/3', '--out', 'o', '--render-only'],
     ['compare', '--out', 'o']),
    (['compare', '--sha', '1/3', '--render', '--no_p', '--out', 'o'],
     ['compare', '--out', 'o']),  # Abbreviations argparse takes.
    (['compare', '--threads', '2', '--no_download', '--seed', '3',
      '--seeds', '1'], ['compare', '--seed', '3', '--seeds', '1']),
])
def test_command_line_leaves_out_how_this_process_runs(argv, kept):
    assert api.command_line(argv) == 'sap-graph ' + shlex.join(kept)


def test_every_flag_left_out_of_reproduce_is_a_way_to_run():
    sub = build_parser()._subparsers._group_actions[0].choices['compare']
    for action in sub._actions:
        for option in action.option_strings:
            name = option.lstrip('-').replace('-', '_')
            if option.startswith('--'):
                # Only the flags of HOW_TO_RUN, and no prefix of another.
                assert (api._how_to_run(option) is not None) == (
                    name in api.HOW_TO_RUN), option


@pytest.mark.usefixtures('small')
def test_summary_says_when_planned_runs_are_missing(tmp_path, capsys):
    out = tmp_path / 'out'
    whole = [*ARGS, '--out', str(out), '--no_progress']
    assert main(whole) == 0
    assert 'partial' not in capsys.readouterr().out
    runs = out / 'runs'
    held = sorted(p for p in os.listdir(runs) if p.endswith('.json'))[0]
    os.remove(runs / held)
    lock = try_lock(str(runs / '.locks' / f'{held}.lock'), 'run')
    try:  # Another process trains it.
        assert main(whole) == 0
    finally:
        release(lock)
    printed = capsys.readouterr().out
    assert 'synthetic: partial, 1 of 3 planned runs missing' in printed
    assert '**Partial:** 1 of 3 planned runs' in (
        out / 'report.md').read_text()


@pytest.mark.parametrize('protocol,n,unit', [('kfold', 1, '1 fold'),
                                             ('kfold', 3, '3 folds'),
                                             ('scaffold', 1, '1 seed')])
def test_summary_counts_in_words(protocol, n, unit):
    from types import SimpleNamespace

    from sap_graph.experiments.compare.command import _summary
    row = SimpleNamespace(test_mean=0.5, test_std=0.0, n=n)
    result = SimpleNamespace(dataset={'name': 'd'}, missing=0, runs=[],
                             best='sum', metric='acc', protocol=protocol,
                             row=lambda name: row)
    assert _summary(result).endswith(f'({unit})')

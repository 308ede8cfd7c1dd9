"""The run records of a comparison's cache (a hostile trial): a damaged
record is retrained with a warning naming it, not a failed comparison; a
record path that is a folder and unwritable records or reports are one
error line."""
import errno
import glob
import json
import os

import pytest

import sap_graph.experiments.compare.api as api
import sap_graph.experiments.compare.engine as engine
import sap_graph.experiments.compare.records as records
from sap_graph.experiments.cli import main
from sap_graph.experiments.compare.records import read_record, write_record
from sap_graph.experiments.data import load_synthetic
from sap_graph.experiments.files import OutputError

#: The comparison: 1 readout x 1 learning rate x 3 folds.
ARGS = ['compare', '--dataset', 'synthetic', '--readouts', 'sum', '--lrs',
        '0.01', '--epochs', '1', '--hidden_channels', '8', '--num_layers',
        '1', '--folds', '3', '--batch_size', '16', '--no_progress']

GOOD = {'lr': 0.01, 'unit': 'fold_0', 'val': 0.5, 'test': 0.5,
        'final_train_loss': 0.7}


@pytest.fixture(scope='module')
def tiny():
    return load_synthetic(num_graphs=36, min_pairs=2, max_pairs=3)


@pytest.fixture()
def finished(tiny, tmp_path, monkeypatch, capsys):
    """A finished comparison of `--dataset synthetic` (36 graphs)."""
    monkeypatch.setattr(api, 'load_configured', lambda *a, **k: tiny)
    out = tmp_path / 'out'
    assert main(ARGS + ['--out', str(out)]) == 0
    capsys.readouterr()
    return out, sorted(glob.glob(str(out / 'runs' / '*.json')))


def denied(*args, **kwargs):
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


@pytest.mark.parametrize('text,why', [
    ('{"val": 0.5, "tes', 'not JSON: Unterminated string'),
    ('\x00\xff garbage', 'not JSON'),
    ('', 'not JSON'),
    ('[1, 2]', 'a JSON list, not an object'),
    ('{"val": 0.5}', "no 'lr', 'unit', 'test', 'final_train_loss'"),
    # A field of the wrong type (a string score ranked as diverged).
    (json.dumps({**GOOD, 'val': '0.9'}), "'val' is '0.9'"),
    (json.dumps({**GOOD, 'lr': None}), "'lr' is None"),
    (json.dumps({**GOOD, 'test': True}), "'test' is True"),
    (json.dumps({**GOOD, 'unit': 0}), "'unit' is 0"),
])
def test_a_damaged_record_is_none_with_a_warning(text, why, tmp_path):
    path = tmp_path / 'r.json'
    path.write_bytes(text.encode('latin-1'))
    with pytest.warns(UserWarning, match=f"run record '{path}' is damaged "
                      rf"\({why}.*\); retrained"):
        assert read_record(str(path), warn='retrained') is None
    assert read_record(str(tmp_path / 'missing.json')) is None
    path.write_text(json.dumps(GOOD))
    assert read_record(str(path), warn='retrained') == GOOD
    diverged = {**GOOD, 'val': None, 'test': None, 'final_train_loss': None}
    path.write_text(json.dumps(diverged))
    assert read_record(str(path), warn='retrained') == diverged


def test_record_folders_and_unwritable_records_are_output_errors(
        tmp_path, monkeypatch):
    with pytest.raises(OutputError, match='is a folder'):
        read_record(str(tmp_path))
    monkeypatch.setattr(records, 'write_json', denied)
    with pytest.raises(OutputError, match="cannot write run record '.*r.json'"
                       r" \(Permission denied\)"):
        write_record(str(tmp_path / 'r.json'), GOOD)


def test_a_damaged_record_is_trained_again(finished, capsys, monkeypatch):
    out, paths = finished
    with open(paths[1]) as f:
        kept = json.load(f)
    with open(paths[1], 'w') as f:
        f.write('{"val": 0.5, "tes')  # Truncated by a full disk.
    trained = []
    original = engine.execute_run
    monkeypatch.setattr(engine, 'execute_run', lambda plan, run: (
        trained.append(run.key), original(plan, run))[1])
    assert main(ARGS + ['--out', str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"warning: run record '{paths[1]}' is damaged (not JSON: "
                   f"Unterminated string starting at: line 1 column 14 "
                   f"(char 13)); training that run again"]
    assert trained == [os.path.basename(paths[1])[:-5]]  # That run only.
    with open(paths[1]) as f:
        again = json.load(f)
    for key in ('val', 'test', 'best_epoch', 'final_train_loss'):
        assert again[key] == kept[key]  # The same run, timings aside.
    assert len((out / 'results.csv').read_text().splitlines()) == 1 + 3


def test_a_damaged_record_is_left_out_of_a_render(finished, capsys):
    out, paths = finished
    with open(paths[0], 'w') as f:
        f.write('garbage')
    assert main(ARGS + ['--out', str(out), '--render_only']) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"warning: run record '{paths[0]}' is "
                                   f"damaged")
    assert 'left out of the report' in captured.err
    assert 'partial, 1 of 3 planned runs missing' in captured.out


def test_a_record_path_that_is_a_folder_is_one_error_line(finished,
                                                          capsys):
    out, paths = finished
    os.remove(paths[2])
    os.mkdir(paths[2])
    assert main(ARGS + ['--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: run record '{paths[2]}' is a folder (expected "
                   f"the JSON file of a finished run); remove it\n")


def test_an_unwritable_record_is_one_error_line(finished, capsys,
                                                monkeypatch):
    out, paths = finished
    os.remove(paths[0])
    monkeypatch.setattr(records, 'write_json', denied)
    assert main(ARGS + ['--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: cannot write run record '{paths[0]}' "
                   f"(Permission denied)\n")


def test_an_unwritable_report_is_one_error_line(finished, capsys,
                                                monkeypatch):
    out, _ = finished
    monkeypatch.setattr(api, 'atomic_write', denied)
    assert main(ARGS + ['--out', str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write '{out}/report.md' "
                          f"(Permission denied); the finished runs are "
                          f"kept")
    assert err.count('\n') == 1

"""The examples end to end: the TU example on the built-in synthetic task
against ``sap-graph train`` (same flags and kind defaults, same result);
the sequence and fusion examples on a tiny slice of ogbg-molhiv
(``--limit 200 --epochs 1``), from ``$SAP_GRAPH_DATA``, skipped without it
(see ``tests/test_realdata.py``)."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.test_realdata import data_root

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_example(name, *args, tmp_path, limit=('--limit', '200')):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.environ.get('PYTHONPATH', '')]),
        SAP_GRAPH_CACHE=os.environ.get('SAP_GRAPH_CACHE',
                                       str(tmp_path / 'cache')))
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'examples', name), *limit,
         '--epochs', '1', *args], env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_tu_example_is_sap_graph_train(tmp_path):
    # The example's flags and defaults are train's: the same result.
    from sap_graph.experiments.cli import main
    flags = ['--dataset', 'synthetic', '--folds', '2', '--readout', 'mean',
             '--no_progress']
    stdout = run_example('tu_classification.py', *flags, tmp_path=tmp_path,
                         limit=())
    assert main(['train', *flags, '--epochs', '1', '--quiet', '--out',
                 str(tmp_path / 'r.json')]) == 0
    result = json.loads((tmp_path / 'r.json').read_text())
    assert result['config']['hidden_channels'] == 32  # The kind's.
    line = next(t for t in stdout.splitlines() if t.startswith('Test'))
    assert line == (f"Test accuracy: {result['test_mean']:.4f} ± "
                    f"{result['test_std']:.4f} (2 folds)")


@pytest.mark.parametrize('script', ['tu_classification.py',
                                    'ogbg_molhiv.py'])
def test_example_rejects_bad_flags_before_data(script, tmp_path):
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'examples', script), '--lr', '-1',
         '--root', str(tmp_path / 'nothing')], capture_output=True,
        text=True, timeout=120)
    assert proc.returncode == 2  # One line, no traceback.
    assert proc.stderr == "error: --lr: 'lr' must be > 0 (got -1.0)\n"
    assert not (tmp_path / 'nothing').exists()


@pytest.mark.parametrize('script', ['tu_classification.py',
                                    'ogbg_molhiv.py'])
def test_example_refuses_a_root_that_is_a_file(script, tmp_path):
    root = tmp_path / 'file'
    root.write_text('not a folder')  # Nothing can be downloaded into it.
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'examples', script), '--root',
         str(root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == (f"error: --root: data root '{root}' is not a "
                           f"folder\n")


@pytest.mark.realdata
@pytest.mark.slow
def test_smiles_sequence_example(tmp_path):
    data_root('ogb', 'ogbg_molhiv')
    out, figure = tmp_path / 'sequences.md', tmp_path / 'img' / 'seq.png'
    stdout = run_example('smiles_sequence.py', '--seeds', '0', '--out',
                         str(out), '--figure', str(figure),
                         tmp_path=tmp_path)
    assert 'Epoch: 001, Loss: ' in stdout
    text = out.read_text()
    for readout in ('sap', 'mean', 'max', 'cls'):
        assert f'| {readout} |' in text
    assert 'python examples/smiles_sequence.py' in text
    assert '| aromatic atom |' in text and '](img/seq.png)' in text
    assert figure.stat().st_size > 10_000


@pytest.mark.realdata
@pytest.mark.slow
def test_multimodal_fusion_example(tmp_path):
    data_root('ogb', 'ogbg_molhiv')
    out, figure = tmp_path / 'fusion.md', tmp_path / 'img' / 'fusion.png'
    stdout = run_example('multimodal_fusion.py', '--seeds', '0', '--out',
                         str(out), '--figure', str(figure),
                         tmp_path=tmp_path)
    assert 'Fusion: sap, seed: 0' in stdout
    text = out.read_text()
    for fusion in ('sap', 'concat', 'mean'):
        assert f'| {fusion} |' in text
    assert 'fingerprint masked' in text
    assert figure.stat().st_size > 10_000


def cnn_example():
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'example_cnn_digits', osp.join(ROOT, 'examples', 'cnn_digits.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('args,line', [
    (['--epochs', '0'], "error: --epochs: 'epochs' must be a positive "
     "integer (got 0)"),
    (['--threads', '-2'], "error: --threads: 'threads' must be a positive "
     "integer (got -2)"),
    (['--seed', '-1'], "error: --seed: 'seed' must be an integer from 0 to "
     "2147483647 (got -1)"),
    (['--seed', str(2**32)], "error: --seed: 'seed' must be an integer "
     f"from 0 to 2147483647 (got {2**32})"),
    (['--epochs', '1.5'], "error: argument --epochs: invalid int value: "
     "'1.5' (see cnn_digits.py --help)"),
])
def test_cnn_example_refuses_bad_flags(args, line, capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['cnn_digits.py'])  # The prog name.
    with pytest.raises(SystemExit) as info:
        cnn_example().parse_args(args)
    assert info.value.code == 2
    assert capsys.readouterr().err == line + '\n'


def test_cnn_example_flags_reach_the_run(capsys, monkeypatch):
    """--epochs, --seed and --threads set the run (once hard-coded)."""
    import torch
    threads = torch.get_num_threads()
    monkeypatch.setattr(sys, 'argv', ['cnn_digits.py', '--epochs', '1',
                                      '--seed', '3', '--threads', '1'])
    try:
        cnn_example().main()
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert '1347 train, 450 test images; 1 epochs, seed 3' in out
    assert out.count('test accuracy') == 2

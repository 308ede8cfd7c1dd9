"""The sequence and fusion examples end to end on a tiny slice of
ogbg-molhiv (``--limit 200 --epochs 1``), from ``$SAP_GRAPH_DATA``;
skipped without it (see ``tests/test_realdata.py``)."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from tests.test_realdata import data_root

pytestmark = [pytest.mark.realdata, pytest.mark.slow]

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_example(name, *args, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, os.environ.get('PYTHONPATH', '')]),
        SAP_GRAPH_CACHE=os.environ.get('SAP_GRAPH_CACHE',
                                       str(tmp_path / 'cache')))
    proc = subprocess.run(
        [sys.executable, osp.join(ROOT, 'examples', name), '--limit', '200',
         '--epochs', '1', *args], env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


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

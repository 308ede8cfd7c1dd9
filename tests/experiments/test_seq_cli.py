"""The flags of the sequence examples (:mod:`sap_graph.experiments.seq.cli`):
every value that makes no run is refused before any data is read, with
one :obj:`error: --flag: ...` line and exit status 2. The examples' own
:obj:`main` runs in this process (argv patched); the data root does not
exist, so reaching the data would fail otherwise."""
import importlib.util
import os.path as osp
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def example(name):
    """The module of :obj:`examples/{name}.py`."""
    spec = importlib.util.spec_from_file_location(
        f'example_{name}', osp.join(ROOT, 'examples', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def refusal(name, args, monkeypatch, capsys, tmp_path):
    """The one stderr line of :obj:`examples/{name}.py args` (exit 2)."""
    monkeypatch.setattr(sys, 'argv', [f'{name}.py', '--root',
                                      str(tmp_path / 'none'), *args])
    with pytest.raises(SystemExit) as info:
        example(name).main()
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1, err
    return err.strip()


@pytest.mark.parametrize('args,line', [
    (['--epochs', '0'],
     "error: --epochs: 'epochs' must be a positive integer (got 0)"),
    (['--batch_size', '-3'],
     "error: --batch_size: 'batch_size' must be a positive integer (got -3)"),
    (['--max_length', '1'], "error: --max_length: 'max_length' must be at "
     "least 2, the [CLS] token and one token of the SMILES (got 1)"),
    (['--dropout', '1'], "error: --dropout: 'dropout' must be in [0, 1) "
     "(got 1.0)"),
    (['--num_layers', '100000'], "error: --num_layers: 'num_layers' must "
     "be <= 1024 (got 100000): deeper than any published GNN"),
    (['--limit', '0'], "error: --limit: 'limit' must be an integer of at "
     "least 10, so that its validation and test tenths hold a molecule "
     "each (got 0)"),
    (['--threads', '0'],
     "error: --threads: 'threads' must be a positive integer (got 0)"),
    (['--seeds', '0', '-1'], "error: --seeds: 'seeds' must be integers "
     "from 0 to 2147483647 (got -1)"),
    (['--seeds', '1', '1'], "error: --seeds: 'seeds' holds a value twice: "
     "1 1 (each is one run)"),
    (['--readouts', 'max', 'max'], "error: --readouts: 'readouts' holds a "
     "value twice: max max (each is one run)"),
    (['--epochs', 'x'], "error: argument --epochs: invalid int value: 'x' "
     "(see smiles_sequence.py --help)"),
    (['--encoder', 'transformer', '--hidden_channels', '30', '--readouts',
      'mean'], "error: --hidden_channels: the transformer encoder's 4 "
     "attention heads must divide 'hidden_channels' (got 30)"),
])
def test_smiles_sequence_refuses(args, line, monkeypatch, capsys, tmp_path):
    assert refusal('smiles_sequence', args, monkeypatch, capsys,
                   tmp_path) == line


@pytest.mark.parametrize('args,line', [
    (['--modality_dropout', '1.0'], "error: --modality_dropout: "
     "'modality_dropout' must be in [0, 1), the probability of masking each "
     "modality token in training (1 masks them all; got 1.0)"),
    (['--epochs', '0'], "error: --epochs: 'fusion_epochs' must be a "
     "positive integer (got 0)"),
    (['--encoder_epochs', '-1'], "error: --encoder_epochs: "
     "'encoder_epochs' must be a positive integer (got -1)"),
    (['--graph_channels', '0'], "error: --graph_channels: "
     "'graph_channels' must be a positive integer (got 0)"),
    (['--fusion_lr', '-0.001'], "error: --fusion_lr: learning rates must be "
     "positive finite numbers within float32's range [1.18e-38, 3.4e+38] "
     "(got -0.001)"),
    (['--limit', '9'], "error: --limit: 'limit' must be an integer of at "
     "least 10, so that its validation and test tenths hold a molecule "
     "each (got 9)"),
    (['--fusions', 'sap', 'sap'], "error: --fusions: 'fusions' holds a "
     "value twice: sap sap (each is one run)"),
])
def test_multimodal_fusion_refuses(args, line, monkeypatch, capsys,
                                   tmp_path):
    assert refusal('multimodal_fusion', args, monkeypatch, capsys,
                   tmp_path) == line


def smiles_only_root(tmp_path):
    """An OGB root whose ogbg_molhiv/ holds the SMILES and the split of 20
    molecules, but not the graphs (raw/)."""
    import gzip
    folder = tmp_path / 'smiles' / 'ogbg_molhiv'
    (folder / 'mapping').mkdir(parents=True)
    (folder / 'split' / 'scaffold').mkdir(parents=True)
    rows = ''.join(f'{s},{i % 2}\n' for i, s in enumerate(['CCO', 'c1ccccc1']
                                                          * 10))
    with gzip.open(folder / 'mapping' / 'mol.csv.gz', 'wt') as f:
        f.write('smiles,HIV_active\n' + rows)
    for name, ids in (('train', range(16)), ('valid', range(16, 18)),
                      ('test', range(18, 20))):
        with gzip.open(folder / 'split' / 'scaffold' / f'{name}.csv.gz',
                       'wt') as f:
            f.write(''.join(f'{i}\n' for i in ids))
    return folder.parent


@pytest.mark.parametrize('name', ['smiles_sequence', 'multimodal_fusion'])
def test_outputs_are_checked_before_the_run(name, monkeypatch, capsys,
                                            tmp_path):
    """A report or figure that could not be written (a folder, a path
    under a file) was found after the whole run, as a traceback."""
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'file').write_text('')
    cases = [
        (['--out', str(tmp_path / 'dir')], f"error: --out: report "
         f"'{tmp_path / 'dir'}' is a folder (expected a file name)"),
        (['--out', str(tmp_path / 'file' / 'r.md')], f"error: --out: report "
         f"'{tmp_path / 'file' / 'r.md'}': '{tmp_path / 'file'}' is not a "
         f"folder"),
        (['--figure', str(tmp_path / 'file' / 'f.png')], f"error: --figure: "
         f"figure '{tmp_path / 'file' / 'f.png'}': '{tmp_path / 'file'}' is "
         f"not a folder"),
        (['--out', str(tmp_path / 'r.md'), '--figure',
          str(tmp_path / 'r.md')], f"error: --figure: the figure "
         f"'{tmp_path / 'r.md'}' would overwrite the report (out)"),
    ]
    poolers = ('--readouts' if name == 'smiles_sequence' else '--fusions')
    cases.append(([poolers, 'mean', '--figure', str(tmp_path / 'f.png')],
                  f"error: --figure: the figure shows the attention of "
                  f"'sap', which is not among the {poolers[2:]} (mean)"))
    # No image format (matplotlib would write f.png and the report link
    # f), the input data as the report, the embeddings cache as it.
    data = tmp_path / 'none' / 'ogbg_molhiv'
    cases += [
        (['--figure', str(tmp_path / 'f')], f"error: --figure: "
         f"'{tmp_path / 'f'}' names no image format by its extension: end "
         f"it in one of"),
        (['--out', str(data / 'mapping' / 'mol.csv.gz')], f"error: --out: "
         f"'{data / 'mapping' / 'mol.csv.gz'}' is inside the data folder "
         f"'{data}': the report would overwrite the input")]
    if name == 'multimodal_fusion':
        cases.append((['--embeddings', str(tmp_path / 'e.pt'), '--out',
                       str(tmp_path / 'e.pt')], f"error: --out: the report "
                      f"'{tmp_path / 'e.pt'}' would overwrite the embeddings "
                      f"cache (embeddings)"))
    for args, line in cases:
        assert refusal(name, args, monkeypatch, capsys, tmp_path).startswith(
            line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['dir', 'file']


@pytest.mark.parametrize('name', ['smiles_sequence', 'multimodal_fusion'])
def test_root_is_checked_before_the_run(name, monkeypatch, capsys,
                                        tmp_path):
    expected = ('mapping/mol.csv.gz, split/scaffold/train.csv.gz, '
                'split/scaffold/valid.csv.gz, split/scaffold/test.csv.gz')
    folder = tmp_path / 'none' / 'ogbg_molhiv'
    assert refusal(name, [], monkeypatch, capsys, tmp_path) == (
        f"error: --root: ogbg-molhiv not found in '{folder}' (no such "
        f"folder); expected OGB's ogbg_molhiv/ folder with {expected}")
    partial = tmp_path / 'partial' / 'ogbg_molhiv'
    (partial / 'mapping').mkdir(parents=True)
    (partial / 'mapping' / 'mol.csv.gz').write_bytes(b'')
    assert refusal(name, ['--root', str(partial.parent)], monkeypatch,
                   capsys, tmp_path) == (
        f"error: --root: ogbg-molhiv not found in '{partial}' (missing: "
        f"{expected[len('mapping/mol.csv.gz, '):]}); expected OGB's "
        f"ogbg_molhiv/ folder with {expected}")
    # '~' is the home folder, as for `sap-graph train --root`.
    monkeypatch.setenv('HOME', str(tmp_path))
    assert refusal(name, ['--root', '~/partial'], monkeypatch, capsys,
                   tmp_path).startswith(
        f"error: --root: ogbg-molhiv not found in '{partial}' (missing: ")


def test_fusion_refuses_a_root_without_the_graphs(monkeypatch, capsys,
                                                  tmp_path):
    """The SMILES are there, the PyG graphs (OGB's raw/ files) are not:
    one line from the graph loader, not its traceback."""
    root = smiles_only_root(tmp_path)
    line = refusal('multimodal_fusion', ['--root', str(root), '--limit',
                                         '10'], monkeypatch, capsys,
                   tmp_path)
    assert line.startswith(f"error: --root: OGB dataset 'ogbg-molhiv' not "
                           f"found in '{root / 'ogbg_molhiv'}'")
    assert 'RELEASE_v1.txt' in line


def test_a_regenerated_report_keeps_its_hand_written_section(tmp_path,
                                                             capsys):
    """The docs' regenerate commands wiped the pages' Reading section."""
    from sap_graph.experiments.seq.cli import HAND_WRITTEN, write_example_report
    path = tmp_path / 'page.md'
    hand = f'## Reading {HAND_WRITTEN}\n\nWhat the run says.\n'
    path.write_text(f'# Old\n\nold table\n\n{hand}')
    write_example_report(str(path), '# New\n\nnew table\n')
    assert path.read_text() == f'# New\n\nnew table\n\n{hand}'
    write_example_report(str(tmp_path / 'fresh.md'), '# New\n')
    assert (tmp_path / 'fresh.md').read_text() == '# New\n'


def test_rocauc_of_a_diverged_run_is_nan():
    """NaN scores (a learning rate of 1e30) crashed in sklearn."""
    import math

    import torch

    from sap_graph.experiments.seq.loop import rocauc
    y = torch.tensor([0.0, 1.0, 0.0, 1.0])
    assert math.isnan(rocauc(y, torch.full((4,), math.nan)))
    assert rocauc(y, y) == 1.0

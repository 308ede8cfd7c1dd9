"""Molecules from a CSV (``sap_graph.experiments.data.molecules``): graphs
against OGB's own ``smiles2graph`` and hand-checked features, NaN targets,
task types, skipped SMILES with their line numbers and the content-keyed
cache. :mod:`tests.experiments.test_molecules_inputs` has every bad
input."""
import csv
import gzip
import math
import os
import os.path as osp
import shutil
import sys
import warnings

import numpy as np
import pytest
import torch

from sap_graph.experiments.data import (
    DatasetFormatError,
    check_task,
    load_molecule_csv,
    mol_to_graph,
)
from sap_graph.experiments.data import molecules as molecules_module

pytest.importorskip('rdkit')
smiles2graph = pytest.importorskip('ogb.utils').smiles2graph
from rdkit import Chem  # noqa: E402

# Line 1 is the header; CRLF endings, padded SMILES and targets, a blank
# line, a blank target (a space: missing), a quoted field and two SMILES
# RDKit rejects (lines 4 and 7).
CSV_TEXT = (
    'name,smiles,active,logp\r\n'
    'ethanol,CCO,1, \r\n'
    'benzene, c1ccccc1 ,0, 2.5 \r\n'
    'bad,Xx,1,1\r\n'
    '\r\n'
    'salt,[Na+].[Cl-],,3\r\n'
    'unclosed,C1CC,0,1\r\n'
    '"acetonitrile, a solvent",CC#N,1,-0.5\r\n')
VALID = ['CCO', 'c1ccccc1', '[Na+].[Cl-]', 'CC#N']


def write(path, text):
    with open(path, 'w', newline='') as f:
        f.write(text)
    return str(path)


@pytest.fixture
def csv_path(tmp_path):
    return write(tmp_path / 'small.csv', CSV_TEXT)


def load(path, targets, cache, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return load_molecule_csv(path, targets=targets, cache=str(cache),
                                 **kwargs)


def cache_files(folder):
    if not osp.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if f.endswith('.pt'))


def assert_graph_equals_ogb(data, smiles):
    ref = smiles2graph(smiles)
    assert data.x.dtype == torch.long and data.edge_attr.dtype == torch.long
    np.testing.assert_array_equal(data.x.numpy(), ref['node_feat'])
    np.testing.assert_array_equal(data.edge_index.numpy(), ref['edge_index'])
    np.testing.assert_array_equal(data.edge_attr.numpy(), ref['edge_feat'])


def test_graphs_match_smiles2graph_and_hand_features(csv_path, tmp_path):
    with pytest.warns(UserWarning, match=r'skipped 2 invalid SMILES'):
        task = load_molecule_csv(csv_path, targets='logp',
                                 cache=str(tmp_path / 'c'))
    ds = task.dataset
    assert len(ds) == 4 and ds.smiles == VALID
    for i, smiles in enumerate(VALID):
        assert_graph_equals_ogb(ds[i], smiles)
    # Hand-checked: atoms, directed edges, atomic number - 1, total H,
    # total degree, bond types (0 single, 2 triple, 3 aromatic).
    assert [ds[i].num_nodes for i in range(4)] == [3, 6, 2, 3]
    assert [ds[i].edge_index.size(1) for i in range(4)] == [4, 12, 0, 4]
    ethanol, benzene, salt, nitrile = (ds[i] for i in range(4))
    assert ethanol.x[:, 0].tolist() == [5, 5, 7]
    assert ethanol.x[:, 4].tolist() == [3, 2, 1]
    assert ethanol.x[:, 2].tolist() == [4, 4, 2]
    assert benzene.edge_attr[:, 0].tolist() == [3] * 12
    assert benzene.x[:, 7].tolist() == [1] * 6  # Aromatic.
    assert salt.x[:, 0].tolist() == [10, 16]  # Na, Cl.
    assert salt.x[:, 3].tolist() == [6, 4]  # Charge +1, -1 (index - 5).
    assert sorted(nitrile.edge_attr[:, 0].tolist()) == [0, 0, 2, 2]
    assert ds.lines == [2, 3, 6, 8]
    assert ds.scaffolds == ['', 'c1ccccc1', '', '']  # Bemis-Murcko.
    # A batch has OGB's layout, as ogbg-molhiv's.
    from torch_geometric.loader import DataLoader
    batch = next(iter(DataLoader(ds, batch_size=4)))
    assert batch.x.shape == (14, 9) and batch.edge_attr.shape == (20, 3)
    assert batch.y.shape == (4, 1)
    check_task(task)


def test_mol_to_graph_equals_smiles2graph():
    for smiles in ['Cl[C@H](/C=C/C)Br', 'O=C(O)c1ccccc1O', '[Cu+2]', 'C#N',
                   'C[S@](=O)c1ccccc1', 'c1ccc2[nH]ccc2c1']:
        graph = mol_to_graph(Chem.MolFromSmiles(smiles))
        ref = smiles2graph(smiles)
        np.testing.assert_array_equal(graph['x'].numpy(), ref['node_feat'])
        np.testing.assert_array_equal(graph['edge_index'].numpy(),
                                      ref['edge_index'])
        np.testing.assert_array_equal(graph['edge_attr'].numpy(),
                                      ref['edge_feat'])


def test_targets_nan_and_task_types(csv_path, tmp_path):
    cache = tmp_path / 'c'
    # Mixed 0/1 and real-valued targets: one kind of task per run, unless
    # told (every target regressed).
    with pytest.raises(DatasetFormatError, match="column.s. 'active' hold "
                       r"0/1 \(classification\) and the others real"):
        load(csv_path, ['active', 'logp'], cache)
    both = load(csv_path, ['active', 'logp'], cache, task_type='regression')
    y = both.dataset.y
    assert y.dtype == torch.float32 and y.shape == (4, 2)
    expected = [[1, math.nan], [0, 2.5], [math.nan, 3], [1, -0.5]]
    np.testing.assert_array_equal(y.numpy(), np.array(expected, 'float32'))
    assert both.dataset[2].y.shape == (1, 2)
    assert (both.task_type, both.metric) == ('regression', 'rmse')
    assert both.num_classes == 2 and both.kind == 'molecules'
    assert both.split_idx is None and not both.higher_is_better
    active = load(csv_path, ['active'], cache)
    assert (active.task_type, active.metric) == ('binary classification',
                                                 'rocauc')
    assert active.num_classes == 1 and active.higher_is_better
    assert active.num_features == 9 and active.num_edge_features == 3
    assert active.name == 'small'
    forced = load(csv_path, ['active'], cache, task_type='regression')
    assert forced.metric == 'rmse'
    with pytest.raises(DatasetFormatError, match="'logp' has values other"):
        load(csv_path, ['logp'], cache, task_type='binary classification')
    assert load(csv_path, ['active'], cache,
                task_type='classification').metric == 'rocauc'
    with pytest.raises(ValueError, match="Unknown task_type 'multiclass'"):
        load(csv_path, ['active'], cache, task_type='multiclass')


def test_invalid_smiles_notes_and_warning(csv_path, tmp_path):
    with pytest.warns(UserWarning) as record:
        task = load_molecule_csv(csv_path, targets=['logp'],
                                 cache=str(tmp_path / 'c'))
    assert task.notes == ['skipped 2 invalid SMILES (lines 4, 7)']
    assert 'small: skipped 2 invalid SMILES (lines 4, 7)' in [
        str(w.message) for w in record]
    # Many: the first five and an ellipsis.
    rows = ''.join(f'Xx{i},{i}\n' if i % 2 else f'C{"C" * i},{i}\n'
                   for i in range(14))
    many = write(tmp_path / 'many.csv', 'smiles,t\n' + rows)
    with pytest.warns(UserWarning):
        task = load_molecule_csv(many, targets='t', cache=str(tmp_path))
    assert task.notes == ['skipped 7 invalid SMILES (lines 3, 5, 7, 9, 11, '
                          '...)']
    assert len(task.dataset) == 7


def test_gzip_and_name(csv_path, tmp_path):
    gz = tmp_path / 'other.csv.gz'
    with open(csv_path, 'rb') as src, gzip.open(gz, 'wb') as dst:
        shutil.copyfileobj(src, dst)
    a = load(csv_path, ['logp'], tmp_path / 'c')
    b = load(str(gz), ['logp'], tmp_path / 'c')
    assert b.name == 'other'
    assert load(str(gz), ['logp'], tmp_path / 'c', name='x y').name == 'x y'
    for key in ('x', 'edge_index', 'edge_attr'):
        assert torch.equal(a.dataset._data[key], b.dataset._data[key])
    assert torch.equal(a.dataset.y.isnan(), b.dataset.y.isnan())


def test_cache_hit_miss_and_env(csv_path, tmp_path, monkeypatch):
    cache = tmp_path / 'c'
    first = load(csv_path, ['active', 'logp'], cache,
                 task_type='regression')
    files = cache_files(cache)
    assert len(files) == 1
    saved = torch.load(osp.join(cache, files[0]), weights_only=True)
    assert torch.equal(saved['x'], first.dataset._data.x)

    def fail(*args):
        raise AssertionError('parsed again')

    real_parse = molecules_module._parse
    monkeypatch.setattr(molecules_module, '_parse', fail)
    second = load(csv_path, ['active', 'logp'], cache,
                 task_type='regression')  # A hit.
    assert second.notes == first.notes and second.task_type == 'regression'
    for key in ('x', 'edge_index', 'edge_attr', 'y'):
        assert torch.equal(first.dataset._data[key].nan_to_num(-7),
                           second.dataset._data[key].nan_to_num(-7))
    assert second.dataset.smiles == VALID
    with pytest.raises(AssertionError, match='parsed again'):
        load(csv_path, ['active'], cache)  # Other targets: a miss.
    with open(csv_path, 'a', newline='') as f:
        f.write('propane,CCC,0,1.5\r\n')  # New content: a miss.
    with pytest.raises(AssertionError, match='parsed again'):
        load(csv_path, ['active', 'logp'], cache,
                 task_type='regression')
    monkeypatch.setattr(molecules_module, '_parse', real_parse)
    third = load(csv_path, ['active', 'logp'], cache,
                 task_type='regression')
    assert len(third.dataset) == 5 and len(cache_files(cache)) == 2
    # A corrupt cache file is ignored (with a warning) and rewritten.
    target = osp.join(cache, files[0])
    with open(target, 'wb') as f:
        f.write(b'not a torch file')
    with open(csv_path, 'w', newline='') as f:
        f.write(CSV_TEXT)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter('always')
        again = load_molecule_csv(csv_path, targets=['active', 'logp'],
                                  cache=str(cache), task_type='regression')
    assert any('Ignoring unreadable molecule cache' in str(w.message)
               for w in record)
    assert len(again.dataset) == 4
    assert torch.load(target, weights_only=True)['smiles'] == VALID
    # Without a cache folder: $SAP_GRAPH_CACHE/molecules.
    monkeypatch.setenv('SAP_GRAPH_CACHE', str(tmp_path / 'env'))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        load_molecule_csv(csv_path, targets='logp')
    assert len(cache_files(tmp_path / 'env' / 'molecules')) == 1


# Line 1 the header; a SMILES cut by a quoted line break (lines 2-3, not
# ethane); 12 valid rows; invalid SMILES on lines 16 (not a SMILES), 17
# and 18 (inner whitespace RDKit would read as a name: 'C C' as methane).
SPLIT_ROWS = ['CCO', 'CCN', 'c1ccccc1', 'CC(=O)O', 'CCCC', 'CCOC', 'CNC',
              'CCCl', 'OCCO', 'CC#N', 'C=CC', 'CCS']
SPLIT_TEXT = ('smiles,y\n"CC\nO",1.0\n'
              + ''.join(f'{s},{i % 3}\n' for i, s in enumerate(SPLIT_ROWS))
              + 'xx_bad,2\n"C C",1\n"CC\tO",0\n" CCC\t",3\n')


def test_lines_after_a_quoted_line_break_and_inner_whitespace(tmp_path):
    """The trial's 'xx_bad' on line 16 was reported on line 15 (row + 2)
    and the cell 'CC<newline>O' was accepted as ethane."""
    path = write(tmp_path / 'split.csv', SPLIT_TEXT)
    with pytest.warns(UserWarning) as record:
        task = load_molecule_csv(path, targets='y', cache=str(tmp_path))
    note = 'skipped 4 invalid SMILES (lines 2, 16, 17, 18)'
    assert task.notes == [note]
    assert f'split: {note}' in [str(w.message) for w in record]
    # Outer whitespace is stripped; the csv module gives the lines.
    assert task.dataset.smiles == SPLIT_ROWS + ['CCC']
    assert task.dataset.lines == list(range(4, 16)) + [19]
    with open(path, newline='') as f:
        reader = csv.reader(f)
        next(reader)
        starts, end = [], reader.line_num
        for _ in reader:
            starts.append(end + 1)
            end = reader.line_num
    assert task.dataset.lines == starts[1:13] + starts[-1:]
    # A bad target is named by its physical line too, also gzipped.
    bad = write(tmp_path / 'target.csv', SPLIT_TEXT.replace(',1\n"CC',
                                                            ',high\n"CC'))
    with open(bad, 'rb') as src, gzip.open(bad + '.gz', 'wb') as dst:
        shutil.copyfileobj(src, dst)
    for file in (bad, bad + '.gz'):
        with pytest.raises(DatasetFormatError,
                           match="non-numeric value 'high' on line 17 "):
            load(file, 'y', tmp_path / 'c')


def test_a_cache_of_the_former_parser_is_not_reused(tmp_path, monkeypatch):
    """The SMILES check and line numbers changed what a file parses to:
    a cache written before (format 1) is a miss."""
    path = write(tmp_path / 'split.csv', SPLIT_TEXT)
    monkeypatch.setattr(molecules_module, 'CACHE_FORMAT', 1)
    load(path, 'y', tmp_path / 'c')
    assert len(cache_files(tmp_path / 'c')) == 1
    monkeypatch.undo()
    task = load(path, 'y', tmp_path / 'c')
    assert len(cache_files(tmp_path / 'c')) == 2
    assert task.notes == ['skipped 4 invalid SMILES (lines 2, 16, 17, 18)']


def test_missing_rdkit_names_the_extra(monkeypatch, csv_path):
    monkeypatch.setitem(sys.modules, 'rdkit', None)
    with pytest.raises(ImportError, match=r"'rdkit'.*sap-graph\[ogb\]"):
        load_molecule_csv(csv_path, targets='logp')


@pytest.mark.realdata
@pytest.mark.slow
def test_bbbp(tmp_path):
    from tests.test_realdata import data_root
    src = osp.join(data_root('moleculenet', 'bbbp'), 'BBBP.csv')
    path = shutil.copy(src, tmp_path / 'BBBP.csv')
    with pytest.warns(UserWarning, match='skipped 11 invalid SMILES'):
        task = load_molecule_csv(path, targets='p_np',
                                 cache=str(tmp_path / 'c'))
    # Reference: the csv module and RDKit, line by line.
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        rows = [(reader.line_num, r['smiles'].strip(), float(r['p_np']))
                for r in reader]
    bad = [line for line, s, _ in rows if Chem.MolFromSmiles(s) is None]
    good = [(s, y) for line, s, y in rows if line not in bad]
    assert len(rows) == 2050 and len(bad) == 11
    assert task.notes == [f"skipped 11 invalid SMILES (lines "
                          f"{', '.join(map(str, bad[:5]))}, ...)"]
    assert task.dataset.smiles == [s for s, _ in good]
    assert task.dataset.y.view(-1).tolist() == [y for _, y in good]
    assert task.task_type == 'binary classification'
    for i in range(0, len(good), 97):
        assert_graph_equals_ogb(task.dataset[i], good[i][0])
    check_task(task)

"""Real datasets from ``$SAP_GRAPH_DATA`` (CI: ``../shared/data``).

Skipped when the variable is unset, unless ``SAP_GRAPH_REQUIRE_DATA=1``:
then missing data fails the test. The skip reason names the variable, and
``tests/conftest.py`` lists the skipped tests at the end of the run.
"""
import os
import os.path as osp
import time

import numpy as np
import pytest
import torch
from conftest import REAL_DATA

from sap_graph.experiments.data import (
    TU_CLASS_COUNTS,
    TU_DATASETS,
    load_ogbg,
    load_tu,
)
from sap_graph.experiments.train import (
    TrainConfig,
    cross_validate,
    holdout,
    resolve_config,
    stratified_splits,
)

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def data_root(*parts):
    root = os.environ.get('SAP_GRAPH_DATA')
    required = os.environ.get('SAP_GRAPH_REQUIRE_DATA') == '1'
    path = osp.join(root, *parts) if root else None
    if path is None or not osp.isdir(path):
        msg = (REAL_DATA if root is None else
               f'{REAL_DATA}; $SAP_GRAPH_DATA={root!r} has no '
               f'{osp.join(*parts)}')
        if required:
            pytest.fail(msg + ' (required: SAP_GRAPH_REQUIRE_DATA=1)')
        pytest.skip(msg)
    return path


def snapshot(path):
    return sorted(osp.relpath(osp.join(d, f), path)
                  for d, _, files in os.walk(path) for f in files)


def test_mutag():
    folder = data_root('TUDataset', 'MUTAG')
    before = snapshot(folder)
    task = load_tu('MUTAG')  # Root from $SAP_GRAPH_DATA.
    assert snapshot(folder) == before  # The source is never written to.
    ds = task.dataset
    assert len(ds) == 188 and task.num_classes == 2
    assert task.num_features == 7 and task.num_edge_features == 4
    assert int(ds.x.size(0)) == 3371
    assert int(ds.edge_index.size(1)) == 7442
    assert torch.bincount(task.labels).tolist() == [63, 125]

    cfg = resolve_config(TrainConfig(
        dataset='MUTAG', readout='sap', heads=4, epochs=10, progress=False,
        verbose=False), 'tu')
    splits = stratified_splits(task.labels, folds=10, seed=0)[:2]
    result = cross_validate(task, cfg, splits=splits)
    for fold in result['folds']:
        assert fold['test_size'] in (18, 19) and fold['val_size'] == 17
    # A short training already beats predicting the majority class
    # (125 of 188 graphs: 66.5%), on the test folds and on average.
    majority = 125 / 188
    accs = [fold['test_acc'] for fold in result['folds']]
    assert np.mean(accs) > majority, accs
    assert result['folds'][0]['final_train_loss'] < 0.6


@pytest.mark.parametrize('name', sorted(TU_CLASS_COUNTS))
def test_tu_class_counts(name):
    # The table the accuracy renderer uses to tell a stuck fold, against
    # the raw label file read with numpy (not through the loader).
    folder = data_root('TUDataset', name)
    labels = np.loadtxt(osp.join(folder, 'raw', f'{name}_graph_labels.txt'),
                        dtype=np.int64, ndmin=1)
    _, counts = np.unique(labels, return_counts=True)
    assert tuple(counts.tolist()) == TU_CLASS_COUNTS[name]
    assert TU_DATASETS[name] == (len(labels), len(counts))


def test_ogbg_molhiv():
    folder = data_root('ogb', 'ogbg_molhiv')
    if os.environ.get('SAP_GRAPH_REQUIRE_DATA') != '1':
        pytest.importorskip('ogb')
    before = snapshot(folder)
    start = time.perf_counter()
    task = load_ogbg('ogbg-molhiv')
    load_time = time.perf_counter() - start
    assert snapshot(folder) == before
    ds = task.dataset
    assert len(ds) == 41127
    assert tuple(ds.x.shape) == (1049163, 9)
    assert int(ds.edge_index.size(1)) == 2259376
    assert {k: int(v.numel()) for k, v in task.split_idx.items()} == {
        'train': 32901, 'valid': 4113, 'test': 4113}
    assert int(ds.y.sum()) == 1443
    assert task.metric == 'rocauc' and task.num_classes == 1

    # A couple of epochs on a subset of the official split; the metric is
    # the official Evaluator's ROC-AUC on the full validation/test sets.
    split = dict(task.split_idx)
    split['train'] = split['train'][:2000]
    cfg = resolve_config(TrainConfig(
        dataset='ogbg-molhiv', readout='sap', heads=2, hidden_channels=32,
        num_layers=2, epochs=2, seeds=[0], batch_size=64, progress=False,
        verbose=False), 'ogb')
    result = holdout(task, cfg, split_idx=split)
    run = result['seeds'][0]
    assert run['train_size'] == 2000 and run['test_size'] == 4113
    assert 0.0 < run['test_rocauc'] < 1.0 and 0.0 < run['val_rocauc'] < 1.0
    assert result['metric'] == 'rocauc'
    print(f'molhiv load {load_time:.1f}s')


def test_ogb_holdout_resumes_exactly(tmp_path, monkeypatch):
    """The OGB protocol (seeds, Evaluator) resumes like cross-validation:
    killed in seed 1, it ends with the uninterrupted result."""
    data_root('ogb', 'ogbg_molhiv')
    if os.environ.get('SAP_GRAPH_REQUIRE_DATA') != '1':
        pytest.importorskip('ogb')
    from sap_graph.experiments.train import TrainState
    task = load_ogbg('ogbg-molhiv')
    split = {k: v[:64] for k, v in task.split_idx.items()}

    def config(**kwargs):
        return resolve_config(TrainConfig(
            dataset='ogbg-molhiv', hidden_channels=16, num_layers=2,
            epochs=3, seeds=[0, 1], lr_step=1, progress=False,
            verbose=False, **kwargs), 'ogb')

    ref = holdout(task, config(), split_idx=split)
    state = str(tmp_path / 'state.pt')
    original, count = TrainState.save, {'n': 0}

    def save(self):  # Dies after epoch 1 of seed 1 (3 epochs + 1 per seed).
        original(self)
        count['n'] += 1
        if count['n'] == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(TrainState, 'save', save)
    with pytest.raises(KeyboardInterrupt):
        holdout(task, config(state=state), split_idx=split)
    monkeypatch.undo()
    res = holdout(task, config(state=state, resume=True), split_idx=split)
    for a, b in zip(ref['seeds'], res['seeds'], strict=True):
        assert ({k: v for k, v in a.items() if 'time' not in k}
                == {k: v for k, v in b.items() if 'time' not in k})
    for key, value in ref['_best_state']['state_dict'].items():
        assert torch.equal(value, res['_best_state']['state_dict'][key])


def test_enzymes_node_attributes():
    """``use_node_attr`` adds the 18 continuous ENZYMES attributes to the 3
    one-hot labels, with the values of the raw file."""
    folder = data_root('TUDataset', 'ENZYMES')
    labels_only = load_tu('ENZYMES')
    with_attr = load_tu('ENZYMES', use_node_attr=True)
    assert labels_only.num_features == 3 and with_attr.num_features == 21
    assert '18 continuous node attributes used' in with_attr.notes
    first = with_attr.dataset[0]
    raw = torch.tensor([[float(v) for v in line.split(',')] for line in open(
        osp.join(folder, 'raw', 'ENZYMES_node_attributes.txt'))
        .read().splitlines()[:first.num_nodes]])
    # PyG puts the attributes first, then the one-hot labels.
    torch.testing.assert_close(first.x[:, :18], raw)
    torch.testing.assert_close(first.x[:, 18:],
                               labels_only.dataset[0].x)
    from sap_graph.experiments.data import DatasetFormatError, load_dataset
    with pytest.raises(DatasetFormatError, match='no continuous node'):
        load_tu('MUTAG', use_node_attr=True)
    with pytest.raises(ValueError, match='for TU datasets'):
        load_dataset('synthetic', use_node_attr=True)


def test_moleculenet_csvs_read_with_the_benchmarks_columns():
    """Every MoleculeNet CSV of the benchmark reads with its SMILES and
    target columns (QM8 names its PBE0 block twice with the same values:
    one column each), one line per record, at the pandas level (no
    RDKit)."""
    from benchmarks.molecules import SETS, targets_of
    from sap_graph.experiments.data.molecule_csv import (
        read_csv,
        scan_records,
    )
    folder = data_root('moleculenet')
    for name, spec in SETS.items():
        path = osp.join(folder, spec.path)
        frame = read_csv(path)
        lines = scan_records(path, frame,
                             ['smiles', *targets_of(spec, path)])
        assert len(lines) == len(frame) > 600, name
        assert bool((lines[1:] > lines[:-1]).all()), name

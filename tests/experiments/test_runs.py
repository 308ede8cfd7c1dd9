"""Splits that cannot be scored (``train.runs.check_splits``): every part
needs graphs, the training part labels of every task (two per regression
task), and the validation and test parts a labelled value (regression)
or a task with both classes (ROC-AUC), before any training."""
import math

import pytest
import torch
from torch_geometric.data import Data

from sap_graph.experiments.data import DatasetFormatError
from sap_graph.experiments.data.graphs import task_from_graphs
from sap_graph.experiments.train.runs import Split, check_splits

NAN = math.nan


def _task(labels):
    return task_from_graphs([Data(x=torch.ones(2, 1), edge_index=torch.tensor(
        [[0, 1], [1, 0]]), y=torch.tensor([row])) for row in labels])


def _split(train, val, test):
    return Split('seed_3', 3, {k: torch.tensor(v, dtype=torch.long) for k, v
                               in zip(('train', 'val', 'test'),
                                      (train, val, test), strict=True)})


BINARY = [[0., 1.], [1., 0.], [0., NAN], [1., NAN], [0., 0.], [1., 1.]]
REGRESSION = [[0.5, NAN], [1.5, 2.0], [NAN, NAN], [NAN, NAN], [2.5, 1.0]]

CASES = [
    # (labels, train, val, test, the problem named, or None: it passes)
    (BINARY, [0, 1], [2, 3], [4, 5], None),
    (BINARY, [0, 1], [0, 4], [2, 5], None),  # Task 1 in val, task 0 in test.
    (BINARY, [0, 1], [2, 4], [3, 5], 'val part of seed_3 (2 graphs) has '
     'no task with both classes labelled'),
    (BINARY, [0, 1], [2, 3], [5, 3], 'test part of seed_3'),
    (BINARY, [0, 1], [2, 3], [], 'test part of seed_3 (0 graphs) has no '
     'graphs'),
    (BINARY, [], [2, 3], [4, 5], 'train part of seed_3 (0 graphs)'),
    (REGRESSION, [0, 1, 4], [2, 4], [1, 3], None),
    # A task the training part cannot teach (regression: its scale needs
    # two values).
    (REGRESSION, [0, 1], [2, 4], [1, 3], 'train part of seed_3 (2 graphs) '
     'has 1 labelled value(s) of target 1 (at least 2 needed'),
    (BINARY, [2, 4], [0, 1], [4, 5], None),
    (BINARY, [2, 3], [0, 1], [4, 5], 'train part of seed_3 (2 graphs) has '
     '0 labelled value(s) of target 1 (at least 1 needed'),
    (REGRESSION, [0, 1, 4], [2, 3], [4], 'val part of seed_3 (2 graphs) has '
     'no labelled target value'),
]


@pytest.mark.parametrize('labels,train,val,test,problem', CASES)
def test_check_splits(labels, train, val, test, problem):
    task = _task(labels)
    split = _split(train, val, test)
    if problem is None:
        check_splits(task, [split])
    else:
        with pytest.raises(DatasetFormatError, match=problem.replace(
                '(', r'\(').replace(')', r'\)')):
            check_splits(task, [split])


def test_an_unscorable_split_is_one_error_line_before_training(
        tmp_path, capsys, monkeypatch):
    pytest.importorskip('rdkit')
    import sap_graph.experiments.compare.engine as engine
    from sap_graph.experiments.cli import main

    def no_training(*args, **kwargs):
        raise AssertionError('trained on an unscorable split')

    monkeypatch.setattr(engine, 'execute_run', no_training)
    # One positive among 12: some fold's test part has none.
    smiles = ['CCO', 'c1ccccc1', 'CC(=O)O', 'CCN', 'CCCC', 'OCCO', 'CCOC',
              'c1ccncc1', 'CC(C)O', 'C1CCCCC1', 'CCCl', 'CC=O']
    path = tmp_path / 'rare.csv'
    path.write_text('smiles,y\n' + ''.join(f'{s},{int(i == 0)}\n' for i, s
                                            in enumerate(smiles)))
    out = tmp_path / 'out'
    assert main(['compare', '--dataset', str(path), '--target', 'y',
                 '--folds', '3', '--out', str(out), '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err
    assert 'no task with both classes labelled' in err
    assert not out.exists()


def test_a_target_without_training_labels_is_named(tmp_path, capsys):
    pytest.importorskip('rdkit')
    from sap_graph.experiments.cli import main
    smiles = ['CCO', 'c1ccccc1', 'CC(=O)O', 'CCN', 'CCCC', 'OCCO', 'CCOC',
              'c1ccncc1', 'CC(C)O', 'C1CCCCC1', 'CCCl', 'CC=O']
    path = tmp_path / 'sparse.csv'
    path.write_text('smiles,a,rare\n' + ''.join(
        f'{s},{i / 3},{"7.5" if i == 0 else ""}\n'
        for i, s in enumerate(smiles)))
    out = tmp_path / 'out'
    assert main(['compare', '--dataset', str(path), '--target', 'a', 'rare',
                 '--folds', '3', '--out', str(out), '--no_progress']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err
    assert "of target 'rare' (at least 2 needed to learn it)" in err
    assert not out.exists()


def test_targets_near_float32s_bound_are_scaled_without_overflow():
    """(y - mean) / std in float32 overflowed for targets near float32's
    bound (-3.3e38 - 1.5e38 = -inf): every run diverged. Scaled and
    scaled back in float64, against a float64 reference."""
    import numpy as np

    from sap_graph.experiments.train.runs import (
        _scaled,
        _Unscaled,
        target_scale,
    )
    y = torch.tensor([[3.3e38], [-3.3e38], [3.0e38], [-1.0e38]])
    mean, std = target_scale(y)
    scaled = torch.cat([d.y for d in _scaled([Data(y=v) for v in y], mean,
                                              std)])
    ref = (y.double() - y.double().mean()) / y.double().std(unbiased=False)
    assert torch.isfinite(scaled).all()
    torch.testing.assert_close(scaled.double(), ref, rtol=1e-5, atol=1e-6)

    class Echo:
        @staticmethod
        def eval(inputs):
            return inputs

    back = _Unscaled(Echo(), mean, std).eval(
        {'y_true': scaled.numpy(), 'y_pred': scaled.numpy()})
    assert np.isfinite(back['y_pred']).all()
    np.testing.assert_allclose(back['y_true'], y.double().numpy(), rtol=1e-5)


def test_validation_share_that_empties_training_names_val_ratio():
    """sklearn's 'the resulting train set will be empty' was blamed on
    --folds; 0.95 of 20 graphs leaves one."""
    from sap_graph.experiments.errors import ConfigError
    from sap_graph.experiments.train.runs import stratified_splits
    labels = torch.tensor([0, 1] * 20)
    with pytest.raises(ConfigError, match='leaves no training graph') as e:
        stratified_splits(labels, 2, 0.99, 0)
    assert e.value.field == 'val_ratio'
    for fold in stratified_splits(labels, 2, 0.95, 0):
        assert len(fold['train']) == 1 and len(fold['val']) == 19

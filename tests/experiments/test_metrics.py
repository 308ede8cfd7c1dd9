"""OGB-compatible metrics (``sap_graph.experiments.train.metrics``) against
OGB's own Evaluator, scikit-learn and numpy formulas."""
import os.path as osp

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, roc_auc_score

from sap_graph.experiments.train.metrics import Evaluator

graphproppred = pytest.importorskip('ogb.graphproppred')


def multitask(seed, n=300, tasks=12, missing=0.3, binary=True):
    rng = np.random.default_rng(seed)
    if binary:
        y_true = (rng.random((n, tasks)) < 0.2).astype(np.float64)
    else:
        y_true = rng.normal(size=(n, tasks))
    y_pred = y_true + rng.normal(scale=1.5, size=(n, tasks))
    y_true[rng.random((n, tasks)) < missing] = np.nan
    return y_true, y_pred


def test_rocauc_matches_ogb_and_sklearn():
    y_true, y_pred = multitask(0)  # tox21-shaped: 12 tasks, NaNs.
    ours = Evaluator('rocauc').eval({'y_true': y_true, 'y_pred': y_pred})
    ogb = graphproppred.Evaluator('ogbg-moltox21').eval(
        {'y_true': y_true, 'y_pred': y_pred})
    assert ours == pytest.approx(ogb, abs=1e-12)
    per_task = [roc_auc_score(y_true[~np.isnan(y_true[:, t]), t],
                              y_pred[~np.isnan(y_true[:, t]), t])
                for t in range(12)]
    assert ours['rocauc'] == pytest.approx(np.mean(per_task), abs=1e-12)
    assert 0.5 < ours['rocauc'] < 1.0


def test_rocauc_skips_tasks_without_both_classes():
    y_true, y_pred = multitask(1, tasks=3)
    y_true[:, 1] = np.where(np.isnan(y_true[:, 1]), np.nan, 0.0)
    y_true[:, 2] = np.nan
    ours = Evaluator('rocauc').eval({'y_true': y_true, 'y_pred': y_pred})
    labelled = ~np.isnan(y_true[:, 0])
    assert ours['rocauc'] == pytest.approx(
        roc_auc_score(y_true[labelled, 0], y_pred[labelled, 0]), abs=1e-12)
    ogb = graphproppred.Evaluator('ogbg-moltox21')._eval_rocauc(y_true,
                                                                y_pred)
    assert ours == pytest.approx(ogb, abs=1e-12)
    y_true[:, 0] = np.where(np.isnan(y_true[:, 0]), np.nan, 1.0)
    with pytest.raises(ValueError, match='both positive and negative'):
        Evaluator('rocauc').eval({'y_true': y_true, 'y_pred': y_pred})


def test_rmse_and_mae_match_ogb_and_formulas():
    y_true, y_pred = multitask(2, tasks=16, binary=False)  # qm8-shaped.
    rmse = Evaluator('rmse').eval({'y_true': y_true, 'y_pred': y_pred})
    ogb = graphproppred.Evaluator('ogbg-molesol')._eval_rmse(y_true, y_pred)
    assert rmse == pytest.approx(ogb, abs=1e-12)
    mask = ~np.isnan(y_true)
    per_task = [np.sqrt(np.mean((y_true[m, t] - y_pred[m, t]) ** 2))
                for t, m in enumerate(mask.T)]
    assert rmse['rmse'] == pytest.approx(np.mean(per_task), abs=1e-12)
    mae = Evaluator('mae').eval({'y_true': torch.from_numpy(y_true),
                                 'y_pred': torch.from_numpy(y_pred)})
    per_task = [mean_absolute_error(y_true[m, t], y_pred[m, t])
                for t, m in enumerate(mask.T)]
    assert mae['mae'] == pytest.approx(np.mean(per_task), abs=1e-12)
    # One task (esol-shaped) through OGB's public eval.
    one = {'y_true': y_true[:, :1], 'y_pred': y_pred[:, :1]}
    assert Evaluator('rmse').eval(one) == pytest.approx(
        graphproppred.Evaluator('ogbg-molesol').eval(one), abs=1e-12)
    # A task without labels is skipped (OGB: NaN); none labelled: error.
    y_true[:, 3] = np.nan
    kept = Evaluator('rmse').eval({'y_true': y_true, 'y_pred': y_pred})
    assert kept['rmse'] == pytest.approx(
        np.mean([v for t, v in enumerate(per_task_rmse(y_true, y_pred))
                 if t != 3]), abs=1e-12)
    with pytest.raises(ValueError, match='No labelled targets'):
        Evaluator('mae').eval({'y_true': np.full((4, 2), np.nan),
                               'y_pred': np.zeros((4, 2))})


def per_task_rmse(y_true, y_pred):
    out = []
    for t in range(y_true.shape[1]):
        m = ~np.isnan(y_true[:, t])
        out.append(np.sqrt(np.mean((y_true[m, t] - y_pred[m, t]) ** 2))
                   if m.any() else np.nan)
    return out


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown metric 'acc'"):
        Evaluator('acc')
    ev = Evaluator('rmse')
    assert repr(ev) == "Evaluator('rmse')" and not ev.higher_is_better
    assert Evaluator('rocauc').higher_is_better
    assert ev.eval_metric == 'rmse'
    with pytest.raises(KeyError, match="'y_pred'"):
        ev.eval({'y_true': np.zeros((3, 1))})
    with pytest.raises(ValueError, match='same shape'):
        ev.eval({'y_true': np.zeros((3, 1)), 'y_pred': np.zeros((3, 2))})
    with pytest.raises(ValueError, match='2-dimensional'):
        ev.eval({'y_true': np.zeros(3), 'y_pred': np.zeros(3)})
    with pytest.raises(TypeError, match='numpy array or a torch tensor'):
        ev.eval({'y_true': [[1.0]], 'y_pred': np.zeros((1, 1))})


@pytest.mark.realdata
def test_real_molhiv_labels_against_ogb():
    from tests.test_realdata import data_root
    raw = osp.join(data_root('ogb', 'ogbg_molhiv'), 'raw')
    import pandas as pd
    y_true = pd.read_csv(osp.join(raw, 'graph-label.csv.gz'),
                         header=None).to_numpy(np.float64)
    assert y_true.shape == (41127, 1) and int(y_true.sum()) == 1443
    rng = np.random.default_rng(0)
    y_pred = 0.8 * y_true + rng.normal(size=y_true.shape)
    ours = Evaluator('rocauc').eval({'y_true': y_true, 'y_pred': y_pred})
    ogb = graphproppred.Evaluator('ogbg-molhiv').eval(
        {'y_true': y_true, 'y_pred': y_pred})
    assert ours == pytest.approx(ogb, abs=1e-12)
    assert ours['rocauc'] == pytest.approx(
        roc_auc_score(y_true[:, 0], y_pred[:, 0]), abs=1e-12)

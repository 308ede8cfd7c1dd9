r"""Multi-task metrics with the interface and semantics of OGB's
:class:`ogb.graphproppred.Evaluator`, for datasets that have no OGB name
(*e.g.* molecules from a CSV): NaN targets are unlabelled and ignored per
task, and the score is the mean over tasks.
"""
from __future__ import annotations

from typing import (
    Any,
    Callable,
    Dict,
    List,
    Tuple,
)

import numpy as np

#: Metric name -> whether higher is better.
METRICS = {'rocauc': True, 'rmse': False, 'mae': False}


def _numpy(value: Any, name: str) -> np.ndarray:
    if hasattr(value, 'detach'):  # A torch tensor.
        value = value.detach().cpu().numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"'{name}' must be a numpy array or a torch tensor "
                        f"(got {type(value).__name__})")
    return value


class Evaluator:
    r"""Scores predictions as OGB's :class:`Evaluator` does, by metric
    name instead of dataset name.

    * :obj:`'rocauc'`: per task, the ROC-AUC over labelled rows, for tasks
      with both a positive and a negative label; the mean over those
      tasks. An error if no task has both.
    * :obj:`'rmse'`: per task, the root mean squared error over labelled
      rows; the mean over tasks.
    * :obj:`'mae'`: as :obj:`'rmse'` with the mean absolute error.

    Tasks without any labelled row are skipped by :obj:`'rmse'` and
    :obj:`'mae'` (OGB would return NaN); an error if no task has one.

    Args:
        metric (str): :obj:`'rocauc'`, :obj:`'rmse'` or :obj:`'mae'`.

    Example:

    .. code-block:: python

        evaluator = Evaluator('rocauc')
        evaluator.eval({'y_true': y_true, 'y_pred': y_pred})
        # {'rocauc': 0.78}
    """

    def __init__(self, metric: str) -> None:
        if metric not in METRICS:
            raise ValueError(f"Unknown metric '{metric}' (expected one of "
                             f"{', '.join(map(repr, METRICS))})")
        self.metric = metric
        self.eval_metric = metric  # OGB's attribute name.

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}('{self.metric}')"

    def _check(self, input_dict: Dict[str, Any]
               ) -> Tuple[np.ndarray, np.ndarray]:
        for key in ('y_true', 'y_pred'):
            if key not in input_dict:
                raise KeyError(f"Missing key '{key}' (expected 'y_true' and "
                               f"'y_pred')")
        y_true = _numpy(input_dict['y_true'], 'y_true')
        y_pred = _numpy(input_dict['y_pred'], 'y_pred')
        if y_true.shape != y_pred.shape:
            raise ValueError(f"'y_true' and 'y_pred' must have the same "
                             f"shape (got {tuple(y_true.shape)} and "
                             f"{tuple(y_pred.shape)})")
        if y_true.ndim != 2:
            raise ValueError(f"'y_true' and 'y_pred' must be 2-dimensional "
                             f"[num_graphs, num_tasks] (got "
                             f"{y_true.ndim} dimensions)")
        return (y_true.astype(np.float64, copy=False),
                y_pred.astype(np.float64, copy=False))

    def eval(self, input_dict: Dict[str, Any]) -> Dict[str, float]:
        r"""Returns :obj:`{metric: score}` for :obj:`input_dict` holding
        :obj:`'y_true'` and :obj:`'y_pred'` of shape
        :obj:`[num_graphs, num_tasks]` (numpy arrays or torch tensors;
        NaN in :obj:`y_true` marks unlabelled entries)."""
        y_true, y_pred = self._check(input_dict)
        if self.metric == 'rocauc':
            return {'rocauc': _rocauc(y_true, y_pred)}
        error: Callable[[np.ndarray], np.ndarray] = (
            np.square if self.metric == 'rmse' else np.abs)
        scores: List[float] = []
        for t in range(y_true.shape[1]):
            labelled = ~np.isnan(y_true[:, t])
            if labelled.any():
                value = float(error(y_true[labelled, t]
                                    - y_pred[labelled, t]).mean())
                scores.append(np.sqrt(value) if self.metric == 'rmse'
                              else value)
        if not scores:
            raise ValueError(f"No labelled targets: cannot compute "
                             f"{self.metric.upper()}")
        return {self.metric: float(sum(scores) / len(scores))}


def _rocauc(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score
    scores = []
    for t in range(y_true.shape[1]):
        column = y_true[:, t]
        if (column == 1).any() and (column == 0).any():
            labelled = ~np.isnan(column)
            scores.append(float(roc_auc_score(column[labelled],
                                              y_pred[labelled, t])))
    if not scores:
        raise ValueError('No task has both positive and negative labels: '
                         'cannot compute ROC-AUC')
    return float(sum(scores) / len(scores))

r"""A :class:`GraphTask` from graphs in memory (:func:`task_from_graphs`):
any PyG dataset or list of :class:`Data` with a graph label :obj:`y`.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from sap_graph.experiments.data.task import (
    DatasetFormatError,
    GraphList,
    GraphTask,
)


def task_from_graphs(graphs: Any, name: Optional[str] = None) -> GraphTask:
    r"""Wraps graphs with labels as a :class:`GraphTask` of kind
    :obj:`'graphs'` (k-fold cross-validation). Integer labels, one per
    graph, make a multiclass task (accuracy); float labels :obj:`[1, T]`
    per graph (NaN = missing) make binary classification tasks (ROC-AUC)
    when every value is 0 or 1, else regression tasks (RMSE).

    Args:
        graphs (Dataset or list of Data): Graphs with float node features
            :obj:`x` and a label :obj:`y`.
        name (str, optional): The dataset's name in reports.
            (default: the dataset's class name, or :obj:`'graphs'`)
    """
    if isinstance(graphs, GraphTask):
        return graphs
    data_list: Sequence[Any] = [graphs[i] for i in range(len(graphs))]
    name = name or (type(graphs).__name__ if not isinstance(graphs, list)
                    else 'graphs')
    if not data_list:
        raise DatasetFormatError(f"Dataset '{name}' has no graphs")
    first = data_list[0]
    if getattr(first, 'x', None) is None or getattr(first, 'y', None) is None:
        raise DatasetFormatError(f"Dataset '{name}': every graph needs node "
                                 f"features 'x' and a label 'y'")
    dataset = GraphList(data_list)
    y = dataset._data.y
    if y.size(0) != len(data_list):
        y = y.view(len(data_list), -1)
    if not y.is_floating_point():
        if y.dim() > 1 and y.size(-1) != 1:
            raise DatasetFormatError(f"Dataset '{name}': integer labels "
                                     f"must be one class per graph")
        num_classes = int(y.max()) + 1
        task_type, metric = 'multiclass', 'acc'
    else:
        y2 = y.view(len(data_list), -1)
        known = y2[y2 == y2]
        binary = bool(((known == 0) | (known == 1)).all())
        task_type = 'binary classification' if binary else 'regression'
        metric = 'rocauc' if binary else 'rmse'
        num_classes = y2.size(1)
        dataset._data.y = y2
        dataset.slices['y'] = torch.arange(len(data_list) + 1)
    x = dataset._data.x
    if not x.is_floating_point():
        dataset._data.x = x.float()
    edge_attr = getattr(dataset._data, 'edge_attr', None)
    return GraphTask(
        name=name, dataset=dataset, num_features=int(x.size(-1)),
        num_classes=num_classes,
        num_edge_features=0 if edge_attr is None else int(
            edge_attr.view(edge_attr.size(0), -1).size(1)),
        kind='graphs', metric=metric, task_type=task_type)


__all__ = ['task_from_graphs']

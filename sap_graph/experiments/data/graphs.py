r"""A :class:`GraphTask` from graphs in memory (:func:`task_from_graphs`):
any PyG dataset or list of :class:`Data` with a graph label :obj:`y`.

The graphs are checked once, when the task is built, so that bad graphs
fail with one :class:`DatasetFormatError` naming the first offending
graph, before any training or output. Well-formed graphs cost only
vectorised checks of the collated tensors; the graphs are looked at one
by one only to name the culprit once something is wrong.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.data.data import BaseData

from sap_graph.experiments.data.task import (
    DatasetFormatError,
    GraphList,
    GraphTask,
    check_task,
)

#: What each required attribute is called in messages, and the dtype
#: kinds (see :func:`_kind`) it may have. Integer and bool node features
#: become float; bool labels become the classes 0 and 1.
_REQUIRED = {
    'x': ("node features 'x'", ('float', 'int', 'bool')),
    'edge_index': ("'edge_index'", ('int',)),
    'y': ("label 'y'", ('float', 'int', 'bool')),
}

_MISSING = {
    'x': "has no node features 'x' (for graphs without features, set "
         "x = torch.ones(num_nodes, 1))",
    'edge_index': "has no 'edge_index' (a graph without edges needs an "
                  "empty one: torch.empty(2, 0, dtype=torch.long))",
    'y': "has no label 'y'",
}

_DTYPE_RULE = {
    'x': 'node features must be real numbers (float, integer or bool)',
    'edge_index': 'it must hold integer node indices',
    'y': 'labels must be real numbers (float, integer or bool)',
}


def _kind(value: Tensor) -> str:
    r""":obj:`'float'`, :obj:`'int'`, :obj:`'bool'` or :obj:`'other'`
    (complex, quantized, ...) for the dtype of :obj:`value`."""
    if value.dtype == torch.bool:
        return 'bool'
    if value.is_floating_point():
        return 'float'
    if value.is_complex():
        return 'other'
    try:
        torch.iinfo(value.dtype)
    except TypeError:
        return 'other'
    return 'int'


def _shape(value: Tensor) -> List[int]:
    return list(value.shape)


def _label_shape(y: Tensor) -> List[int]:
    return [1] if y.dim() == 0 else _shape(y)  # Collated as [1].


def _as_tensor(value: Any) -> Any:
    if isinstance(value, (bool, int, float)):  # Collated to a tensor.
        return torch.tensor(value)
    return value


def _edge_attr_problem(edge_attr: Any, num_edges: int) -> Optional[str]:
    r"""What is wrong with one graph's :obj:`edge_attr` (optional: one
    row of features per edge), or :obj:`None`."""
    if edge_attr is None:
        return None
    if not isinstance(edge_attr, Tensor):
        return (f"has 'edge_attr' of type {type(edge_attr).__name__}, not "
                f"a tensor")
    rows = edge_attr.size(0) if edge_attr.dim() > 0 else 1
    if rows != num_edges:
        return (f"has 'edge_attr' of shape {_shape(edge_attr)} for "
                f"{num_edges} edges; 'edge_attr' needs one row per edge "
                f"[num_edges, num_edge_features]")
    return None


def _problem(data: Data, ref: Data, keys: Sequence[str]) -> Optional[str]:
    r"""What is wrong with one graph, or :obj:`None`: the attributes a
    task needs, their dtypes and shapes, and the attributes and shapes of
    :obj:`ref` (the first graph) that collation needs in every graph."""
    values = {}
    for key, (what, kinds) in _REQUIRED.items():
        value = _as_tensor(getattr(data, key, None))
        if value is None:
            return _MISSING[key]
        if not isinstance(value, Tensor):
            return f"has {what} of type {type(value).__name__}, not a tensor"
        if _kind(value) not in kinds:
            return f"has {what} of dtype {value.dtype}; {_DTYPE_RULE[key]}"
        values[key] = value
    x, edge_index, y = values['x'], values['edge_index'], values['y']
    if x.dim() != 2:
        hint = ' (x.view(-1, 1) for one feature per node)' * (x.dim() == 1)
        return (f"has node features 'x' of shape {_shape(x)}; 'x' must be "
                f"[num_nodes, num_features]{hint}")
    if x.size(1) != ref.x.size(1):
        return (f"has {x.size(1)} node features but graph 0 has "
                f"{ref.x.size(1)}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        return (f"has 'edge_index' of shape {_shape(edge_index)}; it must "
                f"be [2, num_edges]")
    if 'num_nodes' in data and data.num_nodes != x.size(0):
        return (f"has num_nodes = {data.num_nodes} but node features 'x' "
                f"for {x.size(0)} nodes; 'x' needs one row per node")
    problem = _edge_attr_problem(getattr(data, 'edge_attr', None),
                                 edge_index.size(1))
    if problem is not None:
        return problem
    first = _label_shape(_as_tensor(ref.y))
    if _label_shape(y) != first:
        return (f"has label 'y' of shape {_label_shape(y)} but graph 0 has "
                f"{first}; every graph needs a label of the same shape")
    for key in keys:  # The other attributes of the first graph.
        value, other = getattr(data, key, None), getattr(ref, key)
        if value is None:
            return f"has no '{key}' but graph 0 has"
        if isinstance(value, Tensor) and isinstance(other, Tensor):
            dim = ref.__cat_dim__(key, other)
            a, b = _shape(value), _shape(other)
            if dim is not None and value.dim() == other.dim() > 0:
                del a[dim], b[dim]
            if a != b:
                return (f"has '{key}' of shape {_shape(value)} but graph 0 "
                        f"has {_shape(other)}")
    return None


def _name_culprit(data_list: Sequence[Data], name: str) -> None:
    r"""Raises :class:`DatasetFormatError` for the first graph that
    :func:`_problem` finds wrong (a loop over the graphs: only called
    once something is known to be wrong)."""
    ref = data_list[0]
    keys = [k for k in ref.keys() if k not in _REQUIRED]
    for i, data in enumerate(data_list):
        problem = _problem(data, ref, keys)
        if problem is not None:
            raise DatasetFormatError(f"Dataset '{name}': graph {i} "
                                     f"{problem}")


def _well_formed(data: Any, slices: Any) -> bool:
    r"""Whether the collated graphs pass what :func:`_problem` checks
    per graph (vectorised: collation already made their shapes agree)."""
    for key, (_, kinds) in _REQUIRED.items():
        value = getattr(data, key, None)
        if not isinstance(value, Tensor) or key not in slices or \
                _kind(value) not in kinds:
            return False
    edge_index = data.edge_index
    if data.x.dim() != 2 or edge_index.dim() != 2 or edge_index.size(0) != 2:
        return False
    rows = slices['y'].diff()  # Label rows per graph.
    if not bool((rows == rows[0]).all()):
        return False
    num_nodes = getattr(data._store, '_num_nodes', None)  # Where set.
    if num_nodes is not None and list(num_nodes) != \
            slices['x'].diff().tolist():
        return False
    if getattr(data, 'edge_attr', None) is None:
        return True
    return (isinstance(data.edge_attr, Tensor) and 'edge_attr' in slices
            and torch.equal(slices['edge_attr'].diff(),
                            slices['edge_index'].diff()))


def _same_keys(data_list: Sequence[Data], name: str) -> None:
    r"""Collation keeps the attributes of graph 0 only: an attribute that
    a later graph has and graph 0 lacks (its :obj:`edge_attr`, its
    :obj:`num_nodes`) would be dropped without a word."""
    first = set(data_list[0].keys())
    for i, data in enumerate(data_list):
        extra = sorted(set(data.keys()) - first)
        if extra:
            raise DatasetFormatError(
                f"Dataset '{name}': graph {i} has '{extra[0]}' but graph 0 "
                f"has not; every graph needs the same attributes")


def _collate(data_list: Sequence[Any], name: str) -> GraphList:
    first = next((i for i, data in enumerate(data_list)
                  if not isinstance(data, Data)), None)
    if first is not None:
        raise DatasetFormatError(
            f"Dataset '{name}': graph {first} is a "
            f"{type(data_list[first]).__name__}, not a torch_geometric "
            f"Data")
    _same_keys(data_list, name)
    try:
        dataset = GraphList(data_list)
    except Exception as e:
        _name_culprit(data_list, name)
        raise DatasetFormatError(
            f"Dataset '{name}': the graphs cannot be collated into one "
            f"dataset ({type(e).__name__}: {e})") from e
    if not _well_formed(dataset._data, dataset.slices):
        _name_culprit(data_list, name)
        raise DatasetFormatError(  # A mix the graph checks do not name.
            f"Dataset '{name}': the graphs do not fit together once "
            f"collated (see task_from_graphs for what each graph needs)")
    return dataset


def _labels(dataset: GraphList, name: str) -> Tuple[int, str, str]:
    r"""Checks the collated labels, stores them as the model sees them
    and returns :obj:`(num_classes, task_type, metric)`."""
    num_graphs = len(dataset)
    y = dataset._data.y
    y2 = y.view(num_graphs, -1)
    if not y.is_floating_point():
        if y2.size(1) != 1:
            raise DatasetFormatError(
                f"Dataset '{name}': graph 0 has {y2.size(1)} labels of "
                f"dtype {y.dtype} in 'y'; integer and bool labels are one "
                f"class per graph (a float 'y' holds several tasks)")
        if y.dtype == torch.bool:  # Two classes: False = 0, True = 1.
            y2 = y2.long()
            dataset._data.y = y.long()
        negative = y2[:, 0] < 0
        if bool(negative.any()):
            i = int(negative.nonzero()[0])
            raise DatasetFormatError(
                f"Dataset '{name}': graph {i} has label {int(y2[i, 0])}; "
                f"integer labels are the classes 0, 1, 2, ... "
                f"({int(negative.sum())} graphs affected)")
        return int(y2.max()) + 1, 'multiclass', 'acc'
    infinite = torch.isinf(y2).any(1)
    if bool(infinite.any()):
        i = int(infinite.nonzero()[0])
        raise DatasetFormatError(
            f"Dataset '{name}': graph {i} has an infinite label "
            f"({y2[i].tolist()}); labels must be finite (NaN marks a "
            f"missing one)")
    known = ~torch.isnan(y2)
    if not bool(known.any()):
        raise DatasetFormatError(f"Dataset '{name}' has no labelled target: "
                                 f"'y' is NaN in every graph")
    empty = ~known.any(0)
    if bool(empty.any()):
        raise DatasetFormatError(
            f"Dataset '{name}': target {int(empty.nonzero()[0])} of 'y' "
            f"has no labelled graph (NaN in every graph)")
    values = y2[known]
    binary = bool(((values == 0) | (values == 1)).all())
    dataset._data.y = y2
    dataset.slices['y'] = torch.arange(num_graphs + 1)
    if binary:
        return y2.size(1), 'binary classification', 'rocauc'
    return y2.size(1), 'regression', 'rmse'


def _graph_list(graphs: Any,
                name: Optional[str]) -> Tuple[List[Any], str]:
    if isinstance(graphs, BaseData):
        raise DatasetFormatError(f"Got one graph ({type(graphs).__name__}); "
                                 f"pass a list of graphs or a dataset")
    if isinstance(graphs, (list, tuple)):
        return list(graphs), name or 'graphs'
    if not (hasattr(graphs, '__len__') and hasattr(graphs, '__getitem__')):
        raise DatasetFormatError(f"Expected a PyG dataset or a list of Data "
                                 f"(got {type(graphs).__name__})")
    return ([graphs[i] for i in range(len(graphs))],
            name or type(graphs).__name__)


def task_from_graphs(graphs: Any, name: Optional[str] = None) -> GraphTask:
    r"""Wraps graphs with labels as a :class:`GraphTask` of kind
    :obj:`'graphs'` (k-fold cross-validation). Integer (or bool) labels,
    one per graph, make a multiclass task (accuracy); float labels
    :obj:`[1, T]` per graph (NaN = missing) make binary classification
    tasks (ROC-AUC) when every value is 0 or 1, else regression tasks
    (RMSE). Node features become :obj:`float32`. A :class:`GraphTask` is
    returned as it is, except that the graphs of one whose dataset selects
    graphs of a larger storage (:obj:`dataset[indices]`) are collated
    anew, so that its statistics and cache keys are those of its graphs.

    Args:
        graphs (Dataset or list of Data): Graphs with node features
            :obj:`x` :obj:`[num_nodes, num_features]` (real numbers, the
            same width in every graph), :obj:`edge_index`
            :obj:`[2, num_edges]` (integer; :obj:`[2, 0]` for no edges)
            and a label :obj:`y` of the same shape in every graph;
            optionally edge features :obj:`edge_attr` with one row per
            edge (a 1-D one is one feature per edge, made
            :obj:`[num_edges, 1]`) and a :obj:`num_nodes` equal to the
            rows of :obj:`x`.
        name (str, optional): The dataset's name in reports.
            (default: the dataset's class name, or :obj:`'graphs'`)

    Raises:
        DatasetFormatError: For graphs that cannot be trained on, naming
            the first offending graph (see also :func:`check_task`).
    """
    if isinstance(graphs, GraphTask):
        ds = graphs.dataset
        if getattr(ds, '_indices', None) is None:
            return graphs
        # A selection (dataset[indices]) shares the storage of all the
        # graphs: collated anew, what is counted and fingerprinted (cache
        # keys) is its own graphs.
        return replace(graphs, dataset=GraphList(
            [ds[i] for i in range(len(ds))]))
    data_list, name = _graph_list(graphs, name)
    if not data_list:
        raise DatasetFormatError(f"Dataset '{name}' has no graphs")
    dataset = _collate(data_list, name)
    num_classes, task_type, metric = _labels(dataset, name)
    data = dataset._data
    if data.x.dtype != torch.float32:
        data.x = data.x.float()
    if data.edge_index.dtype != torch.long:
        data.edge_index = data.edge_index.long()
    edge_attr = getattr(data, 'edge_attr', None)
    if isinstance(edge_attr, Tensor) and edge_attr.dtype != torch.float32 \
            and _kind(edge_attr) != 'other':
        edge_attr = data.edge_attr = edge_attr.float()
    if isinstance(edge_attr, Tensor) and edge_attr.dim() != 2:
        # [num_edges, num_edge_features] as convs expect: a 1-D edge_attr
        # is one feature per edge (as PyG's GATConv reads it).
        edge_attr = data.edge_attr = edge_attr.reshape(edge_attr.size(0),
                                                       -1)
    task = GraphTask(
        name=name, dataset=dataset, num_features=int(data.x.size(-1)),
        num_classes=num_classes,
        num_edge_features=0 if edge_attr is None else int(
            edge_attr.size(1)),
        kind='graphs', metric=metric, task_type=task_type)
    check_task(task)
    return task


__all__ = ['task_from_graphs']

r"""A loaded dataset (:class:`GraphTask`), the dataset errors, and
the checks a dataset must pass before training
(:func:`check_task`).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
)

import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset


class DatasetNotFoundError(FileNotFoundError):
    r"""Raised when a dataset is neither on disk nor downloadable."""

    field = 'root'  # The option to change.


class UnknownDatasetError(ValueError):
    r"""Raised for a dataset name that no loader handles."""


class DatasetFormatError(ValueError):
    r"""Raised for a corrupt, partial or invalid dataset: unreadable or
    missing files, no graphs, non-finite features, labels out of range or
    edges to nodes that do not exist."""


@dataclass
class GraphTask:
    r"""A loaded graph property prediction dataset and how to score it.

    Args:
        name (str): Dataset name.
        dataset (InMemoryDataset): The graphs.
        num_features (int): Node feature width.
        num_classes (int): Output width of a model (classes, or tasks for
            OGB).
        num_edge_features (int): Edge feature width (:obj:`0` if none).
        kind (str): A key of
            :data:`~sap_graph.experiments.data.kinds.KINDS`.
        metric (str): :obj:`'acc'` or the OGB metric (:obj:`'rocauc'`, ...).
        task_type (str): :obj:`'multiclass'` or the OGB task type.
        split_idx (dict, optional): Official split for OGB.
        source (str, optional): Folder the data was read from.
        notes (list): Preprocessing applied (*e.g.* added features).
    """
    name: str
    dataset: InMemoryDataset
    num_features: int
    num_classes: int
    num_edge_features: int
    kind: str
    metric: str = 'acc'
    task_type: str = 'multiclass'
    split_idx: Optional[Dict[str, Tensor]] = None
    source: Optional[str] = None
    notes: List[str] = field(default_factory=list)

    @property
    def labels(self) -> Tensor:
        r"""Graph labels :obj:`[num_graphs]` (first task for OGB)."""
        y = self.dataset.y
        return y.view(len(self.dataset), -1)[:, 0]

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in ('rmse', 'mae')

    @cached_property
    def digest(self) -> str:
        r"""The SHA-256 hex digest of the graphs' content: every attribute
        of the collated graphs (name, dtype, shape and bytes of each
        tensor), the slices that cut them into graphs, and the selected
        indices of a subset. Two tasks with equal digests hold the same
        graphs in the same order. Computed once per task (one pass over
        the tensors); the graphs are not expected to change afterwards.
        """
        ds = self.dataset
        data = getattr(ds, '_data', None)
        slices = getattr(ds, 'slices', None)
        if data is None or slices is None:
            ds = GraphList([ds[i] for i in range(len(ds))])
            data, slices = ds._data, ds.slices
        h = hashlib.sha256()
        for prefix, store in (('data', data.to_dict()), ('slices', slices),
                              ('indices', {'index': getattr(
                                  ds, '_indices', None)})):
            for key in sorted(store):
                _update(h, f'{prefix}.{key}', store[key])
        return h.hexdigest()

    def stats(self) -> Dict[str, Any]:
        r"""Returns the dataset statistics written to result files: node
        and edge counts summed over the task's graphs, one by one (also
        for a dataset that selects graphs of a larger storage,
        :obj:`dataset[indices]`)."""
        ds = self.dataset
        nodes = per_graph(ds, 'x')
        num_nodes = None if nodes is None else int(nodes.sum())
        num_edges = int(per_graph(ds, 'edge_index').sum())
        out: Dict[str, Any] = dict(
            name=self.name, kind=self.kind, num_graphs=len(ds),
            num_classes=self.num_classes, num_features=self.num_features,
            num_edge_features=self.num_edge_features, metric=self.metric,
            task_type=self.task_type, num_nodes=num_nodes,
            num_directed_edges=num_edges,
            avg_nodes=None if num_nodes is None else num_nodes / len(ds),
            avg_directed_edges=num_edges / len(ds), source=self.source,
            notes=list(self.notes))
        if self.task_type == 'multiclass':
            out['class_counts'] = torch.bincount(
                self.labels.long(), minlength=self.num_classes).tolist()
        if self.split_idx is not None:
            out['split_sizes'] = {k: int(v.numel())
                                  for k, v in self.split_idx.items()}
        return out


def per_graph(dataset: InMemoryDataset, key: str) -> Optional[Tensor]:
    r"""How many rows of :obj:`key` (:obj:`'x'`: nodes, :obj:`'edge_index'`:
    edges) each graph of :obj:`dataset` has, :obj:`[len(dataset)]`, read
    off the collated slices (no loop over the graphs); only the graphs
    that :obj:`dataset[indices]` selects, in its order. :obj:`None` when
    the graphs have no :obj:`key`."""
    slices = getattr(dataset, 'slices', None)
    if slices is None or key not in slices:
        return None
    counts = slices[key].diff()
    if getattr(dataset, '_indices', None) is None:
        return counts
    return counts[torch.as_tensor(list(dataset.indices()), dtype=torch.long)]


def tensor_digest(*tensors: Tensor) -> str:
    r"""The SHA-256 hex digest of the bytes of :obj:`tensors`, in order
    (values only: no names, dtypes or shapes, unlike
    :attr:`GraphTask.digest`)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _update(h: Any, name: str, value: Any) -> None:
    h.update(name.encode() + b'\0')
    if isinstance(value, Tensor):
        value = value.detach().cpu().contiguous()
        h.update(f'{value.dtype}{tuple(value.shape)}'.encode() + b'\0')
        h.update(value.view(-1).view(torch.uint8).numpy().tobytes()
                 if value.numel() else b'')
    elif value is not None:
        h.update(repr(value).encode())
    h.update(b'\0')


class GraphList(InMemoryDataset):
    r"""An in-memory dataset built from a list of :class:`Data` objects."""

    def __init__(self, data_list: Sequence[Data]) -> None:
        from torch_geometric.data.collate import collate
        super().__init__()
        data_list = list(data_list)
        # As InMemoryDataset.collate, but with slices for one graph too.
        self.data, self.slices, _ = collate(
            data_list[0].__class__, data_list=data_list, increment=False,
            add_batch=False)


# Validation ###############################################################


def _graph_of(slices: Tensor, item: int) -> int:
    return int(torch.searchsorted(slices, torch.tensor(item), right=True)) - 1


def check_task(task: GraphTask) -> None:
    r"""Checks that a loaded dataset can be trained on: it has graphs, one
    label per graph, labels in :obj:`[0, num_classes)` (multiclass tasks),
    finite node and edge features, and edges between existing nodes.

    Args:
        task (GraphTask): The dataset.

    Raises:
        DatasetFormatError: Naming the first offending graph.
    """
    ds, name = task.dataset, task.name
    num_graphs = len(ds)
    if num_graphs == 0:
        raise DatasetFormatError(f"Dataset '{name}' has no graphs")
    data = getattr(ds, '_data', None)
    slices = getattr(ds, 'slices', None)
    if (data is None or slices is None
            or getattr(ds, '_indices', None) is not None):
        data_list = [ds[i] for i in range(num_graphs)]
        ds = GraphList(data_list)
        data, slices = ds._data, ds.slices
    y = getattr(data, 'y', None)
    if y is None:
        raise DatasetFormatError(f"Dataset '{name}' has no graph labels")
    if y.size(0) != num_graphs:
        raise DatasetFormatError(f"Dataset '{name}' has {y.size(0)} labels "
                                 f"for {num_graphs} graphs")
    if task.task_type == 'multiclass':
        labels = y.view(num_graphs, -1)[:, 0]
        bad = ~torch.isfinite(labels.double()) | (labels < 0) | (
            labels >= task.num_classes) | (labels != labels.round())
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise DatasetFormatError(
                f"Dataset '{name}': graph {i} has label {labels[i].item()}, "
                f"outside the {task.num_classes} classes 0.."
                f"{task.num_classes - 1} ({int(bad.sum())} graphs affected)")
    for key, what in (('x', 'node'), ('edge_attr', 'edge')):
        value = getattr(data, key, None)
        if value is None or not value.is_floating_point():
            continue
        bad = ~torch.isfinite(value).view(value.size(0), -1).all(dim=-1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0])
            graph = _graph_of(slices[key], row)
            raise DatasetFormatError(
                f"Dataset '{name}' has NaN or infinite {what} features "
                f"({int(bad.sum())} {what}s; first in graph {graph})")
    edge_index = getattr(data, 'edge_index', None)
    if edge_index is None or edge_index.numel() == 0 or 'x' not in slices:
        return
    nodes = slices['x'].diff()
    per_edge = torch.repeat_interleave(nodes, slices['edge_index'].diff())
    bad = (edge_index < 0).any(0) | (edge_index >= per_edge).any(0)
    if bool(bad.any()):
        col = int(bad.nonzero()[0])
        graph = _graph_of(slices['edge_index'], col)
        raise DatasetFormatError(
            f"Dataset '{name}': graph {graph} has an edge "
            f"{edge_index[:, col].tolist()} to a node that does not exist "
            f"(it has {int(nodes[graph])} nodes)")

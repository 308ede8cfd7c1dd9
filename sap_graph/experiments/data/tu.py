r"""Datasets for graph classification: TUDataset, OGB molecules and an
embedded synthetic task.

Data roots follow PyG's and OGB's :obj:`root` argument: a TU dataset lives
in :obj:`<root>/<NAME>/raw/` and an OGB dataset in :obj:`<root>/ogbg_molhiv/`.
Without an explicit root, :envvar:`SAP_GRAPH_DATA` (a folder holding
:obj:`TUDataset/` and :obj:`ogb/`) and then :obj:`./data` (same layout) are
used.

Where :obj:`processed/` goes: as in PyG, a *writable* dataset folder gets
its :obj:`processed/` next to :obj:`raw/`; a read-only one is first copied
to a cache (:envvar:`SAP_GRAPH_CACHE`, else :obj:`~/.cache/sap_graph`),
which gets it instead. Two rules keep that safe:

* :obj:`processed/` is keyed to the raw files: a TU dataset's
  :obj:`processed/` records a fingerprint of :obj:`raw/` (names, sizes and
  modification times), and a cached copy records the fingerprint of its
  source. When the raw files change (edited, added or deleted), the data is
  processed again from them, so a stale :obj:`processed/` never hides them.
* Processing (and copying to the cache) happens under an exclusive
  :func:`fcntl.flock` on :obj:`<root>/.<NAME>.lock` (kept, never deleted):
  runs started together on a fresh root wait for the first to process the
  data and then read it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import os.path as osp
import shutil
import socket
import stat
import tempfile
from dataclasses import dataclass, field
from typing import (
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
)

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.utils import degree

from sap_graph.experiments.files import exclusive_lock

SYNTHETIC = 'synthetic'
ENV_DATA = 'SAP_GRAPH_DATA'
ENV_CACHE = 'SAP_GRAPH_CACHE'
DOWNLOAD_TIMEOUT = 30.0

#: Published sizes of common TU datasets: (graphs, classes).
TU_DATASETS: Dict[str, tuple] = {
    'MUTAG': (188, 2),
    'PTC_MR': (344, 2),
    'PROTEINS': (1113, 2),
    'NCI1': (4110, 2),
    'NCI109': (4127, 2),
    'ENZYMES': (600, 6),
    'DD': (1178, 2),
    'IMDB-BINARY': (1000, 2),
    'IMDB-MULTI': (1500, 3),
    'REDDIT-BINARY': (2000, 2),
    'REDDIT-MULTI-5K': (4999, 5),
    'COLLAB': (5000, 3),
}

#: Graphs per class (in label order) of the TU datasets of the readout
#: grid, counted from their ``*_graph_labels.txt``. A model that predicts
#: these frequencies has a cross-entropy equal to their entropy, which is
#: how ``benchmarks/render_accuracy.py`` tells a fold that never trained.
TU_CLASS_COUNTS: Dict[str, Tuple[int, ...]] = {
    'MUTAG': (63, 125),
    'PROTEINS': (663, 450),
    'NCI1': (2053, 2057),
    'ENZYMES': (100, 100, 100, 100, 100, 100),
    'DD': (691, 487),
    'IMDB-BINARY': (500, 500),
    'IMDB-MULTI': (500, 500, 500),
    'REDDIT-BINARY': (1000, 1000),
}

#: Largest degree for one-hot degree features, as in PyG's kernel benchmark;
#: datasets with larger degrees get constant features instead.
MAX_ONE_HOT_DEGREE = 1000


class DatasetNotFoundError(FileNotFoundError):
    r"""Raised when a dataset is neither on disk nor downloadable."""


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
        kind (str): :obj:`'tu'`, :obj:`'ogb'` or :obj:`'synthetic'`.
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

    def stats(self) -> Dict[str, Any]:
        r"""Returns the dataset statistics written to result files."""
        ds = self.dataset
        num_nodes = int(ds.slices['x'][-1]) if 'x' in ds.slices else None
        num_edges = int(ds.slices['edge_index'][-1])
        out: Dict[str, Any] = dict(
            name=self.name, kind=self.kind, num_graphs=len(ds),
            num_classes=self.num_classes, num_features=self.num_features,
            num_edge_features=self.num_edge_features, metric=self.metric,
            task_type=self.task_type, num_nodes=num_nodes,
            num_directed_edges=num_edges,
            avg_nodes=None if num_nodes is None else num_nodes / len(ds),
            avg_directed_edges=num_edges / len(ds), source=self.source,
            notes=list(self.notes))
        if self.kind != 'ogb':
            out['class_counts'] = torch.bincount(
                self.labels.long(), minlength=self.num_classes).tolist()
        if self.split_idx is not None:
            out['split_sizes'] = {k: int(v.numel())
                                  for k, v in self.split_idx.items()}
        return out


class GraphList(InMemoryDataset):
    r"""An in-memory dataset built from a list of :class:`Data` objects."""

    def __init__(self, data_list: Sequence[Data]) -> None:
        super().__init__()
        self.data, self.slices = self.collate(list(data_list))


# Roots and caches #########################################################


def default_root(kind: str, root: Optional[str] = None) -> str:
    r"""Resolves the data root of a dataset family.

    Args:
        kind (str): :obj:`'tu'` or :obj:`'ogb'`.
        root (str, optional): An explicit root, returned unchanged (PyG's
            and OGB's meaning). (default: :obj:`None`, *i.e.*
            :obj:`$SAP_GRAPH_DATA/TUDataset` or :obj:`$SAP_GRAPH_DATA/ogb`,
            else :obj:`./data/TUDataset` or :obj:`./data/ogb`)
    """
    if root:
        return osp.expanduser(root)
    sub = {'tu': 'TUDataset', 'ogb': 'ogb'}[kind]
    base = os.environ.get(ENV_DATA) or 'data'
    return osp.join(osp.expanduser(base), sub)


def cache_root() -> str:
    r"""Returns the cache for copies of read-only data sources."""
    return osp.expanduser(os.environ.get(ENV_CACHE)
                          or osp.join('~', '.cache', 'sap_graph'))


def is_writable(path: str) -> bool:
    r"""Whether :obj:`path` (or the first existing folder above it) is
    writable. Write bits are honoured even for root, who :func:`os.access`
    would let write anywhere."""
    path = osp.abspath(path)
    while not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            return False
        path = parent
    mode = os.stat(path).st_mode
    return os.access(path, os.W_OK) and bool(mode & stat.S_IWUSR)


def _tree_writable(path: str) -> bool:
    if not is_writable(path):
        return False
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            if not is_writable(osp.join(dirpath, name)):
                return False
    return True


#: Fingerprint files: of the raw files a processed/ folder was made from,
#: and of the source folder a cached copy was made from.
RAW_STAMP = 'sap_graph_raw.txt'
SOURCE_STAMP = '.sap_graph_source.txt'


def fingerprint(folder: str, subs: Sequence[str] = ('raw', )) -> str:
    r"""Returns a digest of the names, sizes and modification times of the
    files in the sub-folders :obj:`subs` of :obj:`folder`: it changes when
    a file is edited, added or deleted."""
    digest = hashlib.sha1()
    for sub in subs:
        top = osp.join(folder, sub)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                path = osp.join(dirpath, name)
                st = os.stat(path)
                digest.update(f'{osp.relpath(path, folder)}\0{st.st_size}'
                              f'\0{st.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


def _read_stamp(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write_stamp(path: str, value: str) -> None:
    with open(path, 'w') as f:
        f.write(value + '\n')


def cached_copy(
    src: str,
    dst: str,
    check: Sequence[str] = ('raw', ),
    prepare: Optional[Callable[[str], Any]] = None,
) -> str:
    r"""Copies the dataset folder :obj:`src` to :obj:`dst` unless an
    up-to-date copy exists (one made when the sub-folders :obj:`check` of
    :obj:`src` had the same :func:`fingerprint`). The copy is made (and
    prepared) under a temporary folder and then moved into place, so a
    killed run never leaves a partial or half-processed copy; call it under
    :func:`~sap_graph.experiments.files.exclusive_lock` when runs may be
    concurrent.

    Args:
        src (str): The read-only dataset folder.
        dst (str): Its copy.
        check (sequence of str, optional): Sub-folders that must match;
            the others are not copied. (default: :obj:`('raw', )`)
        prepare (callable, optional): Called with the root of the
            temporary copy (a folder holding :obj:`basename(dst)`) before
            it is moved into place, *e.g.* to write :obj:`processed/`.
            (default: :obj:`None`)
    """
    source = fingerprint(src, check)
    if osp.isdir(dst) and _read_stamp(osp.join(dst, SOURCE_STAMP)) == source:
        return dst
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix='.tmp-', dir=parent)
    skip = [name for name in os.listdir(src) if name not in check
            and osp.isdir(osp.join(src, name))
            and name in ('raw', 'processed')]
    try:
        tmp = osp.join(tmp_root, osp.basename(dst))
        shutil.copytree(src, tmp, copy_function=shutil.copyfile,
                        ignore=lambda folder, names: [
                            n for n in names
                            if folder == src and n in skip])
        for dirpath, dirnames, filenames in os.walk(tmp):  # Owner-writable.
            for name in dirnames + filenames:
                path = osp.join(dirpath, name)
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
        if prepare is not None:
            prepare(tmp_root)
        _write_stamp(osp.join(tmp, SOURCE_STAMP), source)
        if osp.isdir(dst):
            shutil.rmtree(dst, ignore_errors=True)
        try:
            os.replace(tmp, dst)
        except OSError:  # Another run moved its copy into place first.
            pass
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return dst


@contextlib.contextmanager
def _download_timeout(seconds: float = DOWNLOAD_TIMEOUT) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _missing(paths: Sequence[str]) -> List[str]:
    return [p for p in paths if not osp.exists(p)]


# TUDataset ################################################################


def _tu_expected(folder: str, name: str) -> List[str]:
    raw = osp.join(folder, 'raw')
    return [osp.join(raw, f'{name}_{part}.txt')
            for part in ('A', 'graph_indicator', 'graph_labels')]


def _tu_not_found(name: str, folder: str, reason: str) -> Exception:
    files = ', '.join(osp.basename(p) for p in _tu_expected(folder, name))
    known = ', '.join(TU_DATASETS)
    return DatasetNotFoundError(
        f"TU dataset '{name}' not found: expected {files} (and optional "
        f"{name}_node_labels.txt, ...) in '{osp.join(folder, 'raw')}' "
        f"({reason}). Pass --root DIR with DIR/{name}/raw/, or set "
        f"${ENV_DATA} to a folder holding TUDataset/{name}/raw/. "
        f"Common names: {known}")


def add_node_features(dataset: InMemoryDataset, mode: str = 'auto',
                      max_degree: int = MAX_ONE_HOT_DEGREE) -> tuple:
    r"""Returns :obj:`(data_list, note)` with node features for graphs
    that have none, as in the literature (Xu et al. 2019; Errica et al.
    2020): one-hot degrees when the largest degree is at most
    :obj:`max_degree`, else a constant feature.

    Args:
        dataset (InMemoryDataset): Graphs without :obj:`x`.
        mode (str, optional): :obj:`'auto'`, :obj:`'degree'` (one-hot,
            degrees clipped to :obj:`max_degree`) or :obj:`'constant'`.
            (default: :obj:`'auto'`)
        max_degree (int, optional): Largest one-hot degree.
            (default: :obj:`1000`)
    """
    degrees = []
    for data in dataset:
        degrees.append(degree(data.edge_index[0], data.num_nodes,
                              dtype=torch.long))
    top = int(max(int(d.max()) if d.numel() else 0 for d in degrees))
    if mode == 'auto':
        mode = 'degree' if top <= max_degree else 'constant'
    if mode not in ('degree', 'constant'):
        raise ValueError(f"Unknown node feature mode '{mode}' (expected "
                         f"'auto', 'degree' or 'constant')")
    width = min(top, max_degree) + 1
    out = []
    for data, deg in zip(dataset, degrees, strict=True):
        data = data.clone()
        if mode == 'degree':
            deg = deg.clamp(max=width - 1)
            data.x = torch.nn.functional.one_hot(deg, width).float()
        else:
            data.x = torch.ones(data.num_nodes, 1)
        out.append(data)
    note = (f'one-hot degree features ({width} channels)'
            if mode == 'degree' else 'constant node features (1 channel)')
    return out, note


def load_tu(
    name: str,
    root: Optional[str] = None,
    node_features: str = 'auto',
    download: bool = True,
    use_node_attr: bool = False,
) -> GraphTask:
    r"""Loads a TUDataset by name, adding node features to datasets that
    have none (see :func:`add_node_features`).

    Args:
        name (str): Dataset name, *e.g.* :obj:`'MUTAG'` or
            :obj:`'IMDB-BINARY'`.
        root (str, optional): PyG root holding :obj:`<name>/raw/`.
            (default: see :func:`default_root`)
        node_features (str, optional): For datasets without node features:
            :obj:`'auto'`, :obj:`'degree'` or :obj:`'constant'`.
            (default: :obj:`'auto'`)
        download (bool, optional): Try to download a missing dataset.
            (default: :obj:`True`)
        use_node_attr (bool, optional): Also use the continuous node
            attributes (``<name>_node_attributes.txt``, *e.g.* the 18 of
            ENZYMES) next to the one-hot node labels, as PyG's
            :class:`TUDataset` does with :obj:`use_node_attr=True`.
            (default: :obj:`False`)
    """
    root = default_root('tu', root)
    folder = osp.join(root, name)
    raw_dir = osp.join(folder, 'raw')
    processed_dir = osp.join(folder, 'processed')
    expected = _tu_expected(folder, name)
    have_raw = not _missing(expected[:2])
    have_processed = osp.isdir(processed_dir)
    if have_raw and have_processed and _read_stamp(
            osp.join(processed_dir, RAW_STAMP)) != fingerprint(folder):
        have_processed = False  # Stale: made from other raw files.

    partial = [p for p in _missing(expected) if osp.isdir(raw_dir)
               and any(f.startswith(f'{name}_') for f in os.listdir(raw_dir))]
    if partial and not have_processed:  # Never download over user files.
        raise DatasetFormatError(
            f"TU dataset '{name}' in '{raw_dir}' is incomplete: missing "
            f"{', '.join(osp.basename(p) for p in partial)}")

    empty = [p for p in expected if osp.isfile(p) and osp.getsize(p) == 0]
    if empty and not have_processed:
        raise DatasetFormatError(
            f"TU dataset '{name}' in '{raw_dir}' is empty or partial: "
            f"empty {', '.join(osp.basename(p) for p in empty)}")

    in_place = (have_raw or have_processed) and _tree_writable(folder)
    if (have_raw or have_processed) and not in_place:
        work_root = osp.join(cache_root(), 'TUDataset')
    elif not have_raw and not have_processed:
        if not download:
            raise _tu_not_found(name, folder, 'downloads disabled')
        work_root = root if is_writable(root) else osp.join(cache_root(),
                                                            'TUDataset')
    else:
        work_root = root
    os.makedirs(work_root, exist_ok=True)
    with exclusive_lock(osp.join(work_root, f'.{name}.lock')):
        return _load_tu_locked(name, root, work_root, have_raw,
                               have_processed, in_place, node_features,
                               use_node_attr)


def _load_tu_locked(name: str, root: str, work_root: str, have_raw: bool,
                    have_processed: bool, in_place: bool, node_features: str,
                    use_node_attr: bool) -> GraphTask:
    from torch_geometric.datasets import TUDataset

    folder = osp.join(root, name)
    raw_dir = osp.join(folder, 'raw')
    work = osp.join(work_root, name)
    processed = osp.join(work, 'processed')
    created = processed_before = False

    def prepare(tmp_root: str) -> None:
        TUDataset(tmp_root, name)
        copy = osp.join(tmp_root, name)
        if have_raw:
            _write_stamp(osp.join(copy, 'processed', RAW_STAMP),
                         fingerprint(copy))

    try:
        if (have_raw or have_processed) and not in_place:
            check = ('raw', ) if have_raw else ('processed', )
            cached_copy(folder, work, check, prepare=prepare)
        elif not have_raw and not have_processed:
            created = not osp.exists(work)
        if have_raw and _read_stamp(osp.join(processed, RAW_STAMP)) != (
                fingerprint(work)):
            shutil.rmtree(processed, ignore_errors=True)  # Stale.
        processed_before = osp.isdir(processed)
        with _download_timeout():
            dataset = TUDataset(work_root, name, use_node_attr=use_node_attr)
    except DatasetNotFoundError:
        raise
    except (OSError, ValueError, RuntimeError, IndexError, TypeError) as e:
        if not (have_raw or have_processed):
            if created:
                shutil.rmtree(work, ignore_errors=True)
            reason = f'download failed: {type(e).__name__}: {e}'
            raise _tu_not_found(name, folder, reason.strip()) from None
        if have_raw and not processed_before:  # A failed try.
            shutil.rmtree(processed, ignore_errors=True)
        raise DatasetFormatError(
            f"cannot read TU dataset '{name}' from '{raw_dir}': corrupt or "
            f"inconsistent files ({type(e).__name__}: "
            f"{_one_line(e)})") from None
    if getattr(dataset, 'y', None) is None or len(dataset) == 0:
        raise DatasetFormatError(
            f"TU dataset '{name}' in '{raw_dir}' has no graphs or no graph "
            f"labels ({name}_graph_labels.txt)")

    notes: List[str] = []
    if use_node_attr:
        if dataset.num_node_attributes == 0:
            raise DatasetFormatError(
                f"TU dataset '{name}' has no continuous node attributes "
                f"({name}_node_attributes.txt); drop --use_node_attr")
        notes.append(f'{dataset.num_node_attributes} continuous node '
                     f'attributes used')
    if dataset.num_node_features == 0:
        data_list, note = add_node_features(dataset, node_features)
        dataset = GraphList(data_list)
        notes.append(note)
    task = GraphTask(
        name=name, dataset=dataset, num_features=dataset.num_node_features,
        num_classes=int(dataset.y.max()) + 1,
        num_edge_features=dataset.num_edge_features, kind='tu',
        source=folder, notes=notes)
    try:
        check_task(task)
    except DatasetFormatError as e:
        if not processed_before:  # Do not keep it.
            shutil.rmtree(processed, ignore_errors=True)
        raise DatasetFormatError(f"{e} (corrupt or inconsistent files in "
                                 f"'{raw_dir}')") from None
    if have_raw and not processed_before and osp.isdir(processed):
        _write_stamp(osp.join(processed, RAW_STAMP), fingerprint(work))
    return task


def _one_line(error: BaseException, limit: int = 200) -> str:
    text = ' '.join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + '...'


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


# OGB ######################################################################


def _require_ogb() -> Any:
    try:
        import ogb.graphproppred as graphproppred
    except ImportError as e:
        raise ImportError(
            "OGB datasets need the optional 'ogb' package: pip install "
            "'sap-graph[ogb]' (or pip install ogb)") from e
    return graphproppred


def allow_pyg_in_torch_load() -> None:
    r"""Allow-lists PyG's data classes for :func:`torch.load`, which
    ogb 1.3.6 calls without :obj:`weights_only=False` (needed on
    torch >= 2.6)."""
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:  # torch < 2.4: nothing to do.
        return
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage
    add([DataEdgeAttr, DataTensorAttr, GlobalStorage])


def ogb_meta(name: str) -> Dict[str, str]:
    r"""Returns OGB's meta information of the graph dataset :obj:`name`."""
    import pandas as pd
    graphproppred = _require_ogb()
    path = osp.join(osp.dirname(graphproppred.__file__), 'master.csv')
    master = pd.read_csv(path, index_col=0, keep_default_na=False)
    names = [n for n in master.columns if n.startswith('ogbg-mol')]
    if name not in names:
        raise UnknownDatasetError(
            f"Unknown OGB dataset '{name}' (expected an ogbg-mol* dataset: "
            f"{', '.join(names)})")
    return {k: str(v) for k, v in master[name].items()}


def _ogb_expected(folder: str, meta: Dict[str, str]) -> List[str]:
    raw = osp.join(folder, 'raw')
    files = [osp.join(folder, f"RELEASE_v{meta['version']}.txt")]
    files += [osp.join(raw, f'{n}.csv.gz')
              for n in ('edge', 'num-node-list', 'num-edge-list',
                        'graph-label')]
    if meta['has_node_attr'] == 'True':
        files.append(osp.join(raw, 'node-feat.csv.gz'))
    if meta['has_edge_attr'] == 'True':
        files.append(osp.join(raw, 'edge-feat.csv.gz'))
    split = osp.join(folder, 'split', meta['split'])
    files += [osp.join(split, f'{s}.csv.gz')
              for s in ('train', 'valid', 'test')]
    return files


def load_ogbg(name: str, root: Optional[str] = None,
              download: bool = True) -> GraphTask:
    r"""Loads an OGB graph property prediction dataset (:obj:`ogbg-mol*`)
    with its official split.

    Args:
        name (str): Dataset name, *e.g.* :obj:`'ogbg-molhiv'`.
        root (str, optional): OGB root holding :obj:`ogbg_molhiv/`.
            (default: see :func:`default_root`)
        download (bool, optional): Try to download a missing dataset.
            (default: :obj:`True`)
    """
    graphproppred = _require_ogb()
    meta = ogb_meta(name)
    allow_pyg_in_torch_load()

    root = default_root('ogb', root)
    dir_name = name.replace('-', '_')
    if osp.isdir(osp.join(root, dir_name + '_pyg')):
        dir_name += '_pyg'
    folder = osp.join(root, dir_name)
    expected = _ogb_expected(folder, meta)
    missing = _missing(expected)
    processed = osp.join(folder, 'processed', 'geometric_data_processed.pt')

    def not_found(reason: str) -> DatasetNotFoundError:
        rel = ', '.join(osp.relpath(p, folder) for p in missing) or 'none'
        return DatasetNotFoundError(
            f"OGB dataset '{name}' not found in '{folder}' ({reason}; "
            f"missing: {rel}). Expected the OGB layout {dir_name}/"
            f"{{RELEASE_v{meta['version']}.txt, raw/*.csv.gz, "
            f"split/{meta['split']}/*.csv.gz}}. Pass --root DIR with "
            f"DIR/{dir_name}/, or set ${ENV_DATA} to a folder holding "
            f"ogb/{dir_name}/")

    work_root, copy = root, False
    if osp.isdir(folder):
        release = expected[0]
        if not osp.exists(release):
            # ogb would ask on stdin whether to re-download.
            raise not_found('the folder has no ' + osp.basename(release))
        if missing and not osp.exists(processed):
            raise not_found('incomplete folder')
        if not _tree_writable(folder):
            work_root, copy = osp.join(cache_root(), 'ogb'), True
    else:
        if not download:
            raise not_found('downloads disabled')
        if not is_writable(root):
            work_root = osp.join(cache_root(), 'ogb')
    os.makedirs(work_root, exist_ok=True)
    with exclusive_lock(osp.join(work_root, f'.{dir_name}.lock')):
        created = not osp.exists(osp.join(work_root, dir_name))
        if copy:
            cached_copy(folder, osp.join(work_root, dir_name),
                        ('raw', 'processed'),
                        prepare=lambda tmp_root: graphproppred.
                        PygGraphPropPredDataset(name=name, root=tmp_root))
            created = False
        try:
            with _download_timeout():
                dataset = graphproppred.PygGraphPropPredDataset(
                    name=name, root=work_root)
        except (OSError, ValueError, RuntimeError) as e:
            if created:
                shutil.rmtree(osp.join(work_root, dir_name),
                              ignore_errors=True)
                raise not_found(f'download failed: {type(e).__name__}: '
                                f'{e}') from None
            raise
    split_idx = dataset.get_idx_split()
    num_tasks = int(dataset.num_tasks)
    return GraphTask(
        name=name, dataset=dataset, num_features=dataset.num_node_features,
        num_classes=num_tasks, num_edge_features=dataset.num_edge_features,
        kind='ogb', metric=dataset.eval_metric, task_type=dataset.task_type,
        split_idx=split_idx, source=folder)


# Synthetic ################################################################


def synthetic_graphs(
    num_graphs: int = 1000,
    num_classes: int = 2,
    num_features: int = 8,
    min_pairs: int = 10,
    max_pairs: int = 30,
    min_signal_pairs: int = 1,
    max_signal_pairs: int = 2,
    shift: float = 3.0,
    noise: float = 0.5,
    seed: int = 0,
) -> List[Data]:
    r"""Generates the embedded synthetic task: a few *signal* nodes hidden
    among many *distractor* nodes; only the signal nodes carry the label.

    Every graph is a set of bonded node pairs (dimers): :math:`n \sim
    U[	ext{min_pairs}, 	ext{max_pairs}]` distractor pairs and
    :math:`k \sim U[	ext{min_signal_pairs}, 	ext{max_signal_pairs}]`
    signal pairs (so 20-60 distractors and 2 or 4 signal nodes by
    default). Node features are:

    * feature 0, a *salience* marker: :math:`b + 1` on signal nodes and
      :math:`b + U[-1, 0]` on distractors, with a per-graph offset
      :math:`b \sim U[-	ext{shift}, 	ext{shift}]`; signal nodes are the
      most salient nodes *of their graph*, but no fixed threshold
      separates them across graphs;
    * features :math:`1, \dots, C`, a node *type*: :math:`+1` in the
      type's feature and :math:`-1` in the others, plus Gaussian
      :obj:`noise`. Signal nodes have the graph's label as type,
      distractors a uniformly random type;
    * the remaining features, standard normal noise.

    Pairs never mix signal and distractor nodes, and every node has degree
    one, so message passing neither leaks the label into distractors nor
    marks signal nodes by their degree. The label is the majority type of
    the few most salient nodes: a softmax attention over each graph's nodes
    selects them directly, whereas sum or mean pooling of per-node features
    can only gate by absolute thresholds and is swamped by the random types
    of the distractors. Deterministic for a given :obj:`seed`; no files.

    Args:
        num_graphs (int, optional): Number of graphs. (default: :obj:`1000`)
        num_classes (int, optional): Number of classes :math:`C`.
            (default: :obj:`2`)
        num_features (int, optional): Node feature width, at least
            :math:`C + 1`. (default: :obj:`8`)
        min_pairs (int, optional): Fewest distractor pairs.
            (default: :obj:`10`)
        max_pairs (int, optional): Most distractor pairs.
            (default: :obj:`30`)
        min_signal_pairs (int, optional): Fewest signal pairs.
            (default: :obj:`1`)
        max_signal_pairs (int, optional): Most signal pairs.
            (default: :obj:`2`)
        shift (float, optional): Range of the per-graph salience offset.
            (default: :obj:`3.0`)
        noise (float, optional): Noise on the type features.
            (default: :obj:`0.5`)
        seed (int, optional): Random seed. (default: :obj:`0`)
    """
    if num_features < num_classes + 1:
        raise ValueError(f"'num_features' must be at least num_classes + 1 "
                         f"= {num_classes + 1} (got {num_features})")
    rng = np.random.default_rng(seed)
    data_list = []
    for i in range(num_graphs):
        label = i % num_classes
        n = 2 * int(rng.integers(min_pairs, max_pairs + 1))
        k = 2 * int(rng.integers(min_signal_pairs, max_signal_pairs + 1))
        x = rng.standard_normal((n + k, num_features)).astype(np.float32)
        offset = rng.uniform(-shift, shift)
        x[:n, 0] = offset + rng.uniform(-1.0, 0.0, n)
        x[n:, 0] = offset + 1.0 + 0.1 * rng.standard_normal(k)
        types = np.concatenate([rng.integers(0, num_classes, n),
                                np.full(k, label)])
        onehot = -np.ones((n + k, num_classes), dtype=np.float32)
        onehot[np.arange(n + k), types] = 1.0
        x[:, 1:1 + num_classes] = (
            onehot + noise * rng.standard_normal((n + k, num_classes)))
        # Pair up the distractors at random and the signal nodes in order,
        # then shuffle the node order.
        pairs = np.concatenate([rng.permutation(n), np.arange(n, n + k)])
        pairs = pairs.reshape(-1, 2).T
        perm = rng.permutation(n + k)
        inv = np.empty_like(perm)
        inv[perm] = np.arange(n + k)
        x, pairs = x[perm], inv[pairs]
        edge_index = np.concatenate([pairs, pairs[::-1]], axis=1)
        data_list.append(Data(
            x=torch.from_numpy(np.ascontiguousarray(x)),
            edge_index=torch.from_numpy(edge_index).long(),
            y=torch.tensor([label]),
            num_nodes=n + k,
        ))
    order = rng.permutation(num_graphs)
    return [data_list[i] for i in order]


def load_synthetic(seed: int = 0, **kwargs: Any) -> GraphTask:
    r"""Returns the embedded synthetic task of :func:`synthetic_graphs` as a
    :class:`GraphTask` (no files, no network).

    Args:
        seed (int, optional): Random seed of the generator.
            (default: :obj:`0`)
        **kwargs (optional): Further arguments of :func:`synthetic_graphs`.
    """
    num_classes = kwargs.get('num_classes', 2)
    dataset = GraphList(synthetic_graphs(seed=seed, **kwargs))
    return GraphTask(
        name=SYNTHETIC, dataset=dataset,
        num_features=dataset.num_node_features, num_classes=num_classes,
        num_edge_features=0, kind='synthetic',
        notes=[f'generated in code (seed={seed})'])


def load_dataset(
    name: str = SYNTHETIC,
    root: Optional[str] = None,
    node_features: str = 'auto',
    download: bool = True,
    seed: int = 0,
    use_node_attr: bool = False,
) -> GraphTask:
    r"""Loads a dataset by name: :obj:`'synthetic'`, an OGB name
    (:obj:`'ogbg-mol*'`) or a TUDataset name.

    Args:
        name (str, optional): Dataset name. (default: :obj:`'synthetic'`)
        root (str, optional): PyG/OGB root. (default: see
            :func:`default_root`)
        node_features (str, optional): Features for TU datasets without
            any. (default: :obj:`'auto'`)
        download (bool, optional): Try to download missing datasets.
            (default: :obj:`True`)
        seed (int, optional): Seed of the synthetic generator.
            (default: :obj:`0`)
        use_node_attr (bool, optional): TU datasets: also use continuous
            node attributes (see :func:`load_tu`). (default: :obj:`False`)
    """
    if not name:
        raise UnknownDatasetError('Empty dataset name')
    if use_node_attr and (name.lower() == SYNTHETIC or
                          name.lower().startswith('ogbg-')):
        raise ValueError(f"--use_node_attr is for TU datasets (got "
                         f"'{name}')")
    if name.lower() == SYNTHETIC:
        return load_synthetic(seed=seed)
    if name.lower().startswith('ogbg-'):
        return load_ogbg(name.lower(), root=root, download=download)
    if osp.sep in name or name.startswith('.'):
        raise UnknownDatasetError(
            f"Invalid dataset name '{name}' (expected '{SYNTHETIC}', an "
            f"'ogbg-mol*' name or a TU name such as "
            f"{', '.join(TU_DATASETS)}; use --root for the folder)")
    upper = {k.upper(): k for k in TU_DATASETS}
    name = upper.get(name.upper(), name)
    return load_tu(name, root=root, node_features=node_features,
                   download=download, use_node_attr=use_node_attr)

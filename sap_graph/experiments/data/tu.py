r"""TUDataset: raw files to a :class:`GraphTask`, with node features
for datasets that have none.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
from typing import (
    Dict,
    List,
    Optional,
    Tuple,
)

import torch
from torch_geometric.data import InMemoryDataset
from torch_geometric.utils import degree

from sap_graph.experiments.data.cache import (
    ENV_DATA,
    RAW_STAMP,
    _download_timeout,
    _missing,
    _read_stamp,
    _tree_writable,
    _write_stamp,
    cache_root,
    cached_copy,
    default_root,
    fingerprint,
    is_writable,
)
from sap_graph.experiments.data.task import (
    DatasetFormatError,
    DatasetNotFoundError,
    GraphList,
    GraphTask,
    check_task,
)
from sap_graph.experiments.errors import one_line
from sap_graph.experiments.files import exclusive_lock

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
        f"({reason}). Pass root=DIR with DIR/{name}/raw/, or set "
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
            f"{one_line(e, 200)})") from None
    if getattr(dataset, 'y', None) is None or len(dataset) == 0:
        raise DatasetFormatError(
            f"TU dataset '{name}' in '{raw_dir}' has no graphs or no graph "
            f"labels ({name}_graph_labels.txt)")

    notes: List[str] = []
    if use_node_attr:
        if dataset.num_node_attributes == 0:
            raise DatasetFormatError(
                f"TU dataset '{name}' has no continuous node attributes "
                f"({name}_node_attributes.txt); do not ask for them "
                f"(use_node_attr)")
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

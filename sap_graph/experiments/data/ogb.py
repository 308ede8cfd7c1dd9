r"""OGB graph property prediction datasets (:obj:`ogbg-mol*`) with
their official split; needs the optional :obj:`ogb` package.
"""
from __future__ import annotations

import os
import os.path as osp
import shutil
import warnings
from contextlib import contextmanager
from typing import (
    Any,
    Dict,
    Iterator,
    List,
    Optional,
)

import torch

from sap_graph.experiments.data.cache import (
    ENV_DATA,
    _download_timeout,
    _missing,
    _tree_writable,
    cache_root,
    cached_copy,
    default_root,
    is_writable,
)
from sap_graph.experiments.data.task import (
    DatasetNotFoundError,
    GraphTask,
    UnknownDatasetError,
)
from sap_graph.experiments.files import exclusive_lock

# OGB ######################################################################


def require_ogb() -> Any:
    try:
        import ogb.graphproppred as graphproppred
    except ImportError as e:
        raise ImportError(
            "OGB datasets need the optional 'ogb' package: pip install "
            "'sap-graph[ogb]' (or pip install ogb)") from e
    return graphproppred


@contextmanager
def quiet_processing() -> Iterator[None]:
    r"""Hides one warning of OGB's processing: ogb 1.3.6 makes the labels
    with :func:`torch.from_numpy` of a pandas array that pandas (copy on
    write) marks read-only, and torch warns that writing to the tensor is
    undefined. Nothing writes to it (batching copies), so a first
    :obj:`ogbg-*` run need not print an alarm about it."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            'ignore', message='The given NumPy array is not writable',
            category=UserWarning)
        yield


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


def _processed(graphproppred: Any, name: str, root: str) -> Any:
    with quiet_processing():
        return graphproppred.PygGraphPropPredDataset(name=name, root=root)


def ogb_meta(name: str) -> Dict[str, str]:
    r"""Returns OGB's meta information of the graph dataset :obj:`name`."""
    import pandas as pd
    graphproppred = require_ogb()
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
    graphproppred = require_ogb()
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
            f"split/{meta['split']}/*.csv.gz}}. Pass root=DIR with "
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
                        prepare=lambda tmp_root: _processed(
                            graphproppred, name, tmp_root))
            created = False
        try:
            with _download_timeout():
                dataset = _processed(graphproppred, name, work_root)
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

r"""Loads a dataset by name: synthetic, OGB or TU.
"""
from __future__ import annotations

import os.path as osp
from typing import (
    Optional,
)

from sap_graph.experiments.data.ogb import (
    load_ogbg,
)
from sap_graph.experiments.data.synthetic import (
    SYNTHETIC,
    load_synthetic,
)
from sap_graph.experiments.data.task import (
    GraphTask,
    UnknownDatasetError,
)
from sap_graph.experiments.data.tu import (
    TU_DATASETS,
    load_tu,
)
from sap_graph.experiments.errors import ConfigError


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
        raise ConfigError('use_node_attr', f"continuous node attributes "
                          f"are for TU datasets (got '{name}')")
    if name.lower() == SYNTHETIC:
        return load_synthetic(seed=seed)
    if name.lower().startswith('ogbg-'):
        return load_ogbg(name.lower(), root=root, download=download)
    if osp.sep in name or name.startswith('.'):
        raise UnknownDatasetError(
            f"Invalid dataset name '{name}' (expected '{SYNTHETIC}', an "
            f"'ogbg-mol*' name or a TU name such as "
            f"{', '.join(TU_DATASETS)}; pass the folder as root")
    upper = {k.upper(): k for k in TU_DATASETS}
    name = upper.get(name.upper(), name)
    return load_tu(name, root=root, node_features=node_features,
                   download=download, use_node_attr=use_node_attr)

r"""Loads a dataset by name, through its kind (:mod:`.kinds`): synthetic,
OGB, a CSV of molecules or TU.
"""
from __future__ import annotations

from typing import (
    List,
    Optional,
)

from sap_graph.experiments.data.kinds import kind_of
from sap_graph.experiments.data.synthetic import SYNTHETIC
from sap_graph.experiments.data.task import GraphTask
from sap_graph.experiments.errors import ConfigError


def load_dataset(
    name: str = SYNTHETIC,
    root: Optional[str] = None,
    node_features: str = 'auto',
    download: bool = True,
    seed: int = 0,
    use_node_attr: bool = False,
    smiles_column: str = 'smiles',
    targets: Optional[List[str]] = None,
) -> GraphTask:
    r"""Loads a dataset by name: :obj:`'synthetic'`, an OGB name
    (:obj:`'ogbg-mol*'`), a CSV file of molecules (:obj:`*.csv`,
    :obj:`*.csv.gz`) or a TUDataset name (see
    :data:`~sap_graph.experiments.data.kinds.KINDS`).

    Args:
        name (str, optional): Dataset name or CSV path.
            (default: :obj:`'synthetic'`)
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
        smiles_column (str, optional): CSV of molecules: the column of
            SMILES strings. (default: :obj:`'smiles'`)
        targets (list of str, optional): CSV of molecules: the target
            columns (required for a CSV). (default: :obj:`None`)
    """
    kind = kind_of(name)
    if use_node_attr and kind.name != 'tu':
        raise ConfigError('use_node_attr', f"continuous node attributes "
                          f"are for TU datasets (got '{name}')")
    if targets and kind.name != 'molecules':
        raise ConfigError('targets', f"target columns are for a CSV of "
                          f"molecules (got '{name}')")
    return kind.load(name, root=root, node_features=node_features,
                     download=download, seed=seed,
                     use_node_attr=use_node_attr,
                     smiles_column=smiles_column, targets=targets)

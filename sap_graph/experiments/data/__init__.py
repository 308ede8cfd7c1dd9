r"""Datasets for graph classification: TUDataset (:mod:`.tu`), OGB
molecules (:mod:`.ogb`), molecules from a CSV (:mod:`.molecules`, with
scaffold splits in :mod:`.splits`) and an embedded synthetic task
(:mod:`.synthetic`), loaded by name with :func:`load_dataset`; roots,
caches and where :obj:`processed/` goes are in :mod:`.cache`.
"""
from sap_graph.experiments.data.cache import (
    ENV_CACHE,
    ENV_DATA,
    cache_root,
    cached_copy,
    default_root,
    fingerprint,
    is_writable,
)
from sap_graph.experiments.data.load import (
    load_configured,
    load_dataset,
    with_metric,
)
from sap_graph.experiments.data.molecules import (
    MoleculeGraphs,
    load_molecule_csv,
    mol_to_graph,
)
from sap_graph.experiments.data.ogb import (
    allow_pyg_in_torch_load,
    load_ogbg,
    ogb_meta,
    require_ogb,
)
from sap_graph.experiments.data.splits import (
    murcko_scaffold,
    murcko_scaffolds,
    require_rdkit,
    scaffold_split,
    split_scaffolds,
)
from sap_graph.experiments.data.synthetic import (
    SYNTHETIC,
    load_synthetic,
    synthetic_graphs,
)
from sap_graph.experiments.data.task import (
    DatasetFormatError,
    DatasetNotFoundError,
    GraphList,
    GraphTask,
    UnknownDatasetError,
    check_task,
)
from sap_graph.experiments.data.tu import (
    MAX_ONE_HOT_DEGREE,
    TU_CLASS_COUNTS,
    TU_DATASETS,
    add_node_features,
    load_tu,
)

__all__ = [
    'DatasetFormatError', 'DatasetNotFoundError', 'ENV_CACHE', 'ENV_DATA',
    'GraphList', 'GraphTask', 'MAX_ONE_HOT_DEGREE', 'MoleculeGraphs',
    'SYNTHETIC',
    'TU_CLASS_COUNTS', 'TU_DATASETS', 'UnknownDatasetError',
    'add_node_features', 'allow_pyg_in_torch_load', 'cache_root',
    'cached_copy', 'check_task', 'default_root', 'fingerprint',
    'is_writable', 'load_configured', 'load_dataset', 'load_molecule_csv',
    'load_ogbg', 'load_synthetic', 'load_tu', 'mol_to_graph', 'murcko_scaffold',
    'murcko_scaffolds', 'ogb_meta', 'require_ogb', 'require_rdkit',
    'scaffold_split', 'split_scaffolds', 'synthetic_graphs', 'with_metric',
]

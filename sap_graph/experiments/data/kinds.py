r"""The dataset kinds: one table (:data:`KINDS`) saying, per kind, which
names it takes, how it loads, its training defaults, its evaluation
protocol and its input encoders. Adding a kind of dataset is one entry
here and its loader.

========== ================================= =================== =========
kind       names                             protocol            encoders
========== ================================= =================== =========
synthetic  ``synthetic``                     stratified k-fold   --
ogb        ``ogbg-mol*``                     official split      atom/bond
molecules  ``*.csv``, ``*.csv.gz`` (SMILES)  scaffold split      atom/bond
tu         any other name (TUDataset)        stratified k-fold   --
graphs     a PyG dataset passed from Python  k-fold              --
========== ================================= =================== =========
"""
from __future__ import annotations

import os.path as osp
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

from sap_graph.experiments.data.task import GraphTask, UnknownDatasetError

#: The protocols: stratified (or plain, for regression) k-fold
#: cross-validation with an inner validation split; the official split of
#: the dataset, one run per seed; a Bemis-Murcko scaffold split drawn
#: anew for every seed.
PROTOCOLS = ('kfold', 'official', 'scaffold')


@dataclass(frozen=True)
class DatasetKind:
    r"""How to recognise, load, train and score one kind of dataset.

    Args:
        name (str): The kind, also :obj:`GraphTask.kind`.
        matches (callable): :obj:`matches(name)` is true for the dataset
            names of this kind.
        load (callable): :obj:`load(name, **options)` returns the
            :class:`GraphTask` (options: :obj:`root`, :obj:`download`,
            :obj:`seed`, :obj:`node_features`, :obj:`use_node_attr`,
            :obj:`smiles_column`, :obj:`targets`; each loader takes what
            it needs).
        defaults (dict): :class:`TrainConfig` values for the fields left
            at :obj:`None`.
        protocol (str): One of :data:`PROTOCOLS`.
        encoders (bool): Categorical OGB atom and bond features, embedded
            by OGB's :class:`AtomEncoder` and :class:`BondEncoder`.
        data_folder (str, optional): Sub-folder of
            :envvar:`SAP_GRAPH_DATA` (and :obj:`./data`) holding the data.
        evaluator (callable, optional): :obj:`evaluator(task)` returns the
            kind's own scorer (OGB's :class:`Evaluator`); :obj:`None`
            scores with :mod:`sap_graph.experiments.train.metrics`.
    """
    name: str
    matches: Callable[[str], bool]
    load: Callable[..., GraphTask]
    defaults: Dict[str, Any] = field(default_factory=dict)
    protocol: str = 'kfold'
    encoders: bool = False
    data_folder: Optional[str] = None
    evaluator: Optional[Callable[[GraphTask], Any]] = None


def _load_synthetic(name: str, seed: int = 0, **_: Any) -> GraphTask:
    from sap_graph.experiments.data.synthetic import load_synthetic
    return load_synthetic(seed=seed)


def _load_ogb(name: str, root: Optional[str] = None, download: bool = True,
              **_: Any) -> GraphTask:
    from sap_graph.experiments.data.ogb import load_ogbg
    return load_ogbg(name.lower(), root=root, download=download)


def _load_molecules(name: str, smiles_column: str = 'smiles',
                    targets: Optional[list] = None, **_: Any) -> GraphTask:
    from sap_graph.experiments.data.molecules import load_molecule_csv
    return load_molecule_csv(name, smiles_column=smiles_column,
                             targets=targets)


def _load_tu(name: str, root: Optional[str] = None,
             node_features: str = 'auto', download: bool = True,
             use_node_attr: bool = False, **_: Any) -> GraphTask:
    from sap_graph.experiments.data.tu import TU_DATASETS, load_tu
    if osp.sep in name or name.startswith('.'):
        raise UnknownDatasetError(
            f"Invalid dataset name '{name}' (expected 'synthetic', an "
            f"'ogbg-mol*' name, a CSV file of molecules or a TU name such "
            f"as {', '.join(TU_DATASETS)}; pass a TU folder as root)")
    upper = {k.upper(): k for k in TU_DATASETS}
    return load_tu(upper.get(name.upper(), name), root=root,
                   node_features=node_features, download=download,
                   use_node_attr=use_node_attr)


def _no_load(name: str, **_: Any) -> GraphTask:
    raise UnknownDatasetError(f"'{name}': datasets of kind 'graphs' are "
                              f"passed as objects, not loaded by name")


def _ogb_evaluator(task: GraphTask) -> Any:
    from sap_graph.experiments.data.ogb import require_ogb
    return require_ogb().Evaluator(task.name)


def _is_csv(name: str) -> bool:
    return name.lower().endswith(('.csv', '.csv.gz'))


# Xu et al. (2019) GIN: hidden 64, 5 layers, batch 32, Adam 0.01 halved
# every 50 epochs, dropout 0.5 before the last layer.
_TU = dict(conv='gin', hidden_channels=64, num_layers=5, dropout=0.5,
           layer_dropout=0.0, batch_size=32, lr=0.01, lr_step=50,
           epochs=100, folds=10)

#: Every kind, in the order names are matched (the last matches any).
KINDS: Dict[str, DatasetKind] = {kind.name: kind for kind in (
    DatasetKind(
        'synthetic', lambda n: n.lower() == 'synthetic', _load_synthetic,
        dict(_TU, hidden_channels=32, num_layers=2, epochs=40, folds=5)),
    # OGB's reference GIN: emb_dim 300, 5 layers, drop_ratio 0.5, batch
    # 32, Adam 0.001 without decay, 100 epochs.
    DatasetKind(
        'ogb', lambda n: n.lower().startswith('ogbg-'), _load_ogb,
        dict(conv='gine', hidden_channels=300, num_layers=5, dropout=0.0,
             layer_dropout=0.5, batch_size=32, lr=0.001, lr_step=0,
             epochs=100, seeds=[0, 1, 2]),
        protocol='official', encoders=True, data_folder='ogb',
        evaluator=_ogb_evaluator),
    # SMILES in a CSV: the OGB molecule model at a CPU-sized budget
    # (chemprop's defaults: 3 message passing steps, 30 epochs, 5 seeds
    # of a balanced scaffold split).
    DatasetKind(
        'molecules', _is_csv, _load_molecules,
        dict(conv='gine', hidden_channels=64, num_layers=3, dropout=0.0,
             layer_dropout=0.1, batch_size=32, lr=0.001, lr_step=0,
             epochs=30, seeds=[0, 1, 2, 3, 4]),
        protocol='scaffold', encoders=True),
    DatasetKind('tu', lambda n: True, _load_tu, _TU,
                data_folder='TUDataset'),
    DatasetKind('graphs', lambda n: False, _no_load, _TU),
)}


def kind_of(name_or_task: Any) -> DatasetKind:
    r"""Returns the :class:`DatasetKind` of a dataset name or of a loaded
    :class:`GraphTask`."""
    if isinstance(name_or_task, GraphTask):
        return KINDS[name_or_task.kind]
    name = str(name_or_task)
    if not name:
        raise UnknownDatasetError('Empty dataset name')
    return next(k for k in KINDS.values() if k.matches(name))


def protocol_of(task: GraphTask, folds: Optional[int] = None) -> str:
    r"""The protocol of :obj:`task`: its kind's, except that molecules
    from a CSV are cross-validated when :obj:`folds` is given."""
    kind = kind_of(task)
    if kind.protocol == 'scaffold' and folds:
        return 'kfold'
    return kind.protocol


__all__ = ['DatasetKind', 'KINDS', 'PROTOCOLS', 'kind_of', 'protocol_of']

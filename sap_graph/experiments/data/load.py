r"""Loads a dataset by name, through its kind (:mod:`.kinds`): synthetic,
OGB, a CSV of molecules or TU.
"""
from __future__ import annotations

from dataclasses import replace
from typing import (
    Any,
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


#: The metrics a regression task may be scored with (the first is the
#: default).
REGRESSION_METRICS = ('rmse', 'mae')


def with_metric(task: GraphTask, metric: Optional[str]) -> GraphTask:
    r"""Returns :obj:`task` scored (and its epochs and learning rates
    selected) by :obj:`metric` instead of its default: :obj:`'rmse'` or
    :obj:`'mae'` (MoleculeNet's metric for QM7, QM8 and QM9), for the
    regression targets of a CSV of molecules or of graphs passed from
    Python. :obj:`None` keeps the default.

    Raises:
        ConfigError: For another metric, a task that is not regression,
            or one scored by OGB's :class:`Evaluator` (its metric is part
            of the benchmark).
    """
    if metric is None or metric == task.metric:
        return task
    if metric not in REGRESSION_METRICS:
        raise ConfigError('metric', f"'metric' must be one of "
                          f"{', '.join(REGRESSION_METRICS)} (got {metric!r})")
    if task.task_type != 'regression':
        raise ConfigError('metric', f"'metric' {metric!r} is for regression "
                          f"targets; '{task.name}' is {task.task_type}, "
                          f"scored by {task.metric}")
    if kind_of(task).evaluator is not None:
        raise ConfigError('metric', f"'{task.name}' is scored by OGB's "
                          f"Evaluator, with {task.metric}")
    return replace(task, metric=metric)


def load_configured(cfg: Any) -> GraphTask:
    r"""Loads :obj:`cfg.dataset` with the data fields of a
    :class:`~sap_graph.experiments.train.TrainConfig` (root, node
    features, SMILES and target columns, metric, ...); an unsuitable
    :obj:`cfg.metric` fails before the data is read."""
    if cfg.metric is not None and kind_of(cfg.dataset).name != 'molecules':
        raise ConfigError('metric', f"'metric' is for the regression "
                          f"targets of a CSV of molecules (got "
                          f"'{cfg.dataset}')")
    task = load_dataset(cfg.dataset, root=cfg.root,
                        node_features=cfg.node_features,
                        download=cfg.download, seed=cfg.seed,
                        use_node_attr=cfg.use_node_attr,
                        smiles_column=cfg.smiles_column,
                        targets=cfg.targets)
    return with_metric(task, cfg.metric)

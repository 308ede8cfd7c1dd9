r"""Explains a checkpoint (:obj:`sap-graph explain`): rebuilds its
model and dataset and draws what the readout attends to.
"""
from __future__ import annotations

import os.path as osp
import warnings
from dataclasses import dataclass, fields, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch_geometric.data import Batch

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.explain.drawing import (
    check_image_outputs,
    draw_attention,
)
from sap_graph.experiments.explain.statistics import (
    draw_attention_statistics,
)
from sap_graph.experiments.explain.targets import (
    graph_outcomes,
    outcomes_text,
    target_names,
)
from sap_graph.experiments.explain.weights import (
    TU_ATOM_SYMBOLS,
    TU_BOND_TYPES,
    TU_CLASS_NAMES,
    _sap_readout,
    atom_symbols_for,
    attention_statistics,
    attention_weights,
    head_entropy,
)

# Checkpoints ##############################################################

#: Data fields of a checkpoint's config that also hold for another dataset.
_PORTABLE = ('node_features', 'download', 'seed', 'use_node_attr')

#: Data fields that also hold for another CSV of molecules (when the
#: checkpoint's dataset was one): its columns and metric.
_CSV_FIELDS = ('smiles_column', 'targets', 'metric')


@dataclass
class Explained:
    r"""A checkpoint's model and dataset as :func:`load_explained` loads
    them, with the data config, the target names and the standardisation
    of regression targets (:obj:`None`: unknown, outputs shown as is)."""
    model: Any
    task: Any
    config: Any
    names: List[str]
    scale: Optional[Dict[str, List[float]]] = None
    scale_from: Optional[str] = None


def load_explained(
    checkpoint: str,
    dataset: Optional[str] = None,
    root: Optional[str] = None,
    smiles_column: Optional[str] = None,
    targets: Optional[Sequence[str]] = None,
) -> Tuple[Any, Any]:
    r"""Rebuilds the model of a :obj:`sap-graph train --checkpoint` file
    (its readout must be :obj:`'sap'`) and loads its dataset the way
    training did (same root, node features and synthetic seed, SMILES and
    target columns, from the checkpoint's :obj:`'train'` config).

    Args:
        checkpoint (str): The checkpoint file.
        dataset (str, optional): Dataset name. (default: :obj:`None`,
            *i.e.* the checkpoint's)
        root (str, optional): Data root. (default: :obj:`None`, *i.e.* the
            checkpoint's, else :func:`~sap_graph.experiments.data.default_root`)
        smiles_column (str, optional): A CSV's SMILES column. (default:
            :obj:`None`, *i.e.* the checkpoint's when it was trained on a
            CSV, else :obj:`'smiles'`)
        targets (list of str, optional): A CSV's target columns.
            (default: :obj:`None`, *i.e.* the checkpoint's when it was
            trained on a CSV)

    Returns:
        The model (in evaluation mode) and the
        :class:`~sap_graph.experiments.data.GraphTask`.

    Raises:
        ConfigError: If the dataset has other targets than the model
            predicts (their number or kind).
        DatasetFormatError: If a CSV lacks the columns.
    """
    loaded = _load(checkpoint, dataset, root, smiles_column, targets)
    return loaded.model, loaded.task


def _load(checkpoint: str, dataset: Optional[str], root: Optional[str],
          smiles_column: Optional[str] = None,
          targets: Optional[Sequence[str]] = None) -> Explained:
    from sap_graph.experiments.checkpoint import read_checkpoint
    from sap_graph.experiments.data import DatasetFormatError, load_configured
    from sap_graph.experiments.data.kinds import kind_of
    from sap_graph.experiments.models import model_from_checkpoint
    from sap_graph.experiments.train.config import TrainConfig

    state = read_checkpoint(checkpoint)
    config = state['config']
    if config['model'].get('readout') != 'sap':
        raise ValueError(f"'{checkpoint}' has readout "
                         f"'{config['model'].get('readout')}'; attention "
                         f"weights need readout 'sap'")
    model = model_from_checkpoint(state, checkpoint)
    _sap_readout(model)

    train = config.get('train') or {}
    trained_on = train.get('dataset') or (config.get('dataset') or {}).get(
        'name')
    name = dataset or trained_on
    if not name:
        raise ConfigError('dataset', f"'{checkpoint}' does not name its "
                          f"dataset; name it")
    same = trained_on is not None and name.lower() == trained_on.lower()
    csv = kind_of(name).name == 'molecules'
    source = (config.get('dataset') or {}).get('source')
    if same and csv and not osp.isfile(name) and source and (
            osp.isfile(source)):
        name = source  # Trained from another folder: the file it read.
    both_csv = csv and trained_on is not None and (
        kind_of(trained_on).name == 'molecules')
    # The training config's data fields; another dataset keeps those that
    # are not about the trained one (root, and a CSV's columns and metric
    # for another CSV).
    saved = {f.name: train[f.name] for f in fields(TrainConfig)
             if f.name in train and (same or f.name in _PORTABLE
                                     or (both_csv and f.name in _CSV_FIELDS))}
    given = {k: v for k, v in (('smiles_column', smiles_column),
                               ('targets', targets)) if v is not None}
    cfg = replace(TrainConfig(**saved), dataset=name, **{
        k: list(v) if k == 'targets' else v for k, v in given.items()})
    try:
        task = load_configured(replace(cfg, root=root or cfg.root))
    except DatasetFormatError as e:
        hint = _columns_hint(cfg, given, saved) if csv else None
        if hint is None:
            raise
        raise DatasetFormatError(f'{e} ({hint})') from None
    if (model.node_encoder is None
            and task.num_features != model.in_channels):
        raise ValueError(f"{task.name} has {task.num_features} node "
                         f"features but the model of '{checkpoint}' "
                         f"expects {model.in_channels}")
    _check_targets(checkpoint, config, model, task, csv)
    # The outputs are those of the trained targets, whatever columns the
    # labels are read from; recomputing their scale needs those columns.
    trained = train.get('targets')
    names = target_names(task.task_type, task.num_classes,
                         trained if trained else cfg.targets)
    same_targets = same and (cfg.targets or None) == (trained or None) and (
        cfg.smiles_column == train.get('smiles_column', cfg.smiles_column))
    scale, scale_from = _target_scale(checkpoint, config, task, cfg,
                                      same_targets)
    return Explained(model, task, cfg, names, scale, scale_from)


def _columns_hint(cfg: Any, given: Dict[str, Any],
                  saved: Dict[str, Any]) -> Optional[str]:
    r"""Which CSV columns came from the checkpoint, and the flags that
    choose others (:obj:`None` when the user chose them all)."""
    parts, flags = [], []
    if 'smiles_column' not in given and 'smiles_column' in saved:
        parts.append(f"SMILES column '{cfg.smiles_column}'")
        flags.append('--smiles_column')
    if 'targets' not in given and saved.get('targets'):
        parts.append(f"target column(s) "
                     f"{', '.join(map(repr, cfg.targets))}")
        flags.append('--target')
    if not parts:
        return None
    return (f"explain read the checkpoint's {' and '.join(parts)}; choose "
            f"others with "
            f"{' and '.join(flags)}")


def _count(n: int, task_type: Optional[str]) -> str:
    word = 'class' if task_type == 'multiclass' else 'target'
    return f"{n} {word}{'' if n == 1 else ('es' if word == 'class' else 's')}"


def _check_targets(checkpoint: str, config: Dict[str, Any], model: Any,
                   task: Any, csv: bool) -> None:
    r"""The model must predict the dataset's targets: the same kind of
    task (regression, binary or multiclass) and as many outputs."""
    field = 'targets' if csv else 'dataset'
    trained = (config.get('dataset') or {}).get('task_type')
    if trained is not None and trained != task.task_type:
        raise ConfigError(field, f"the model of '{checkpoint}' was trained "
                          f"for {trained} but the targets of {task.name} "
                          f"are {task.task_type}")
    if task.num_classes != model.out_channels:
        raise ConfigError(field, f"the model of '{checkpoint}' predicts "
                          f"{_count(model.out_channels, trained)} but "
                          f"{task.name} has "
                          f"{_count(task.num_classes, task.task_type)}")


def _target_scale(checkpoint: str, config: Dict[str, Any], task: Any,
                  cfg: Any, same: bool
                  ) -> Tuple[Optional[Dict[str, List[float]]], Optional[str]]:
    r"""The mean and std of the regression targets the model was trained
    on (standardised), and where they come from: the checkpoint, or, for
    a checkpoint written before they were saved, the training part of its
    selected split recomputed from the same data."""
    if task.task_type != 'regression':
        return None, None
    scale = config.get('target_scale')
    if scale is not None:
        return scale, 'checkpoint'
    if same:
        from sap_graph.experiments.train.config import resolve_config
        from sap_graph.experiments.train.runs import selected_target_scale
        try:
            scale = selected_target_scale(
                task, resolve_config(cfg, task.kind),
                config.get('selected') or {})
        except (ValueError, KeyError, TypeError):
            scale = None
        if scale is not None:
            warnings.warn(f"'{checkpoint}' does not keep the mean and std "
                          f"of its standardised targets (written before "
                          f"they were saved); recomputed them from the "
                          f"training part of its selected split",
                          stacklevel=3)
            return scale, 'recomputed'
    warnings.warn(f"'{checkpoint}' does not keep the mean and std of its "
                  f"standardised targets and they cannot be recomputed "
                  f"from {task.name}; predictions are shown in "
                  f"standardised units (retrain to save them)", stacklevel=3)
    return None, None


def explain_checkpoint(
    checkpoint: str,
    out: str,
    index: int = 0,
    dataset: Optional[str] = None,
    root: Optional[str] = None,
    stats_out: Optional[str] = None,
    smiles_column: Optional[str] = None,
    targets: Optional[Sequence[str]] = None,
) -> Dict[str, Any]:
    r"""Draws the attention of graph :obj:`index` of a checkpoint's
    dataset (and, with :obj:`stats_out`, the statistics over the whole
    dataset), with model and data from :func:`load_explained`. Used by
    :obj:`sap-graph explain`.

    Args:
        checkpoint (str): The checkpoint file.
        out (str): The image of graph :obj:`index`.
        index (int, optional): The graph. (default: :obj:`0`)
        dataset (str, optional): Dataset name. (default: :obj:`None`,
            *i.e.* the checkpoint's)
        root (str, optional): Data root. (default: :obj:`None`, *i.e.* the
            checkpoint's, else :func:`~sap_graph.experiments.data.default_root`)
        stats_out (str, optional): The image of the dataset statistics.
            (default: :obj:`None`, *i.e.* none)
        smiles_column (str, optional): A CSV's SMILES column, see
            :func:`load_explained`. (default: :obj:`None`)
        targets (list of str, optional): A CSV's target columns, see
            :func:`load_explained`. (default: :obj:`None`)

    Returns:
        A dict describing the explained graph: its :obj:`'label'`,
        :obj:`'prediction'` and :obj:`'confidence'` (of the first target;
        :obj:`None` for regression) and, per target, :obj:`'targets'`
        (see :func:`~sap_graph.experiments.explain.targets.graph_outcomes`;
        regression predictions in the units of the data).
    """
    # Before the model and the data are loaded.
    check_image_outputs({'out': out, 'stats': stats_out})
    loaded = _load(checkpoint, dataset, root, smiles_column, targets)
    model, task = loaded.model, loaded.task
    size = len(task.dataset)
    if not 0 <= index < size:
        raise ConfigError('index', f"graph {index} is out of range: "
                          f"{task.name} has {size} graphs (0 to "
                          f"{size - 1})")

    data = task.dataset[index]
    batch = Batch.from_data_list([data])
    alpha = attention_weights(model, batch)[0]
    with torch.no_grad():
        logits = model(batch.x, batch.edge_index, batch.batch,
                       edge_attr=getattr(batch, 'edge_attr', None),
                       ptr=batch.ptr, num_graphs=1)[0]
    outcomes = graph_outcomes(task.task_type, logits,
                              getattr(data, 'y', None), loaded.names,
                              loaded.scale)
    first = outcomes[0]

    symbols = atom_symbols_for(task.name, data)
    key = task.name.upper()
    bonds = {k.upper(): v for k, v in TU_BOND_TYPES.items()}.get(key)
    classes = {k.upper(): v for k, v in TU_CLASS_NAMES.items()}.get(key)
    multiclass = task.task_type == 'multiclass'
    draw_attention(data, alpha, out, title=f'{task.name} graph {index}',
                   atom_symbols=symbols, prediction=first['prediction'],
                   confidence=first['confidence'], bond_types=bonds,
                   class_names=classes,
                   outcome=None if multiclass else outcomes_text(outcomes))

    top = []
    for h in range(alpha.size(1)):
        i = int(alpha[:, h].argmax())
        what = f'{symbols[i]} ' if symbols is not None else ''
        top.append({'head': h + 1, 'node': i, 'symbol': what.strip() or None,
                    'weight': float(alpha[i, h])})
    result: Dict[str, Any] = dict(
        dataset=task.name, index=index, num_nodes=int(data.num_nodes),
        heads=int(alpha.size(1)), task_type=task.task_type,
        label=first['label'], prediction=first['prediction'],
        confidence=first['confidence'], targets=outcomes,
        target_scale=loaded.scale_from,
        entropy=head_entropy(alpha).tolist(), top=top, out=out)
    if stats_out is not None:
        stats = attention_statistics(model, task.dataset,
                                     task_type=task.task_type)
        types = {k.upper(): v for k, v in TU_ATOM_SYMBOLS.items()}.get(key)
        by = ''
        if len(loaded.names) > 1:
            by = (f', grouped by {loaded.names[0]} (the first of '
                  f'{len(loaded.names)} targets)')
        draw_attention_statistics(
            stats, stats_out, type_names=types, class_names=classes,
            target_name=None if multiclass else loaded.names[0],
            title=f'{task.name}: attention of the SAP readout over all '
                  f'{size} graphs{by}')
        result['stats_out'] = stats_out
    return result

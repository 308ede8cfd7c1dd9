r"""Explains a checkpoint (:obj:`sap-graph explain`): rebuilds its
model and dataset and draws what the readout attends to.
"""
from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, Dict, Optional, Tuple

import torch
from torch_geometric.data import Batch

from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.explain.drawing import (
    draw_attention,
    graph_label,
    require_matplotlib,
)
from sap_graph.experiments.explain.statistics import (
    draw_attention_statistics,
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


def load_explained(
    checkpoint: str,
    dataset: Optional[str] = None,
    root: Optional[str] = None,
) -> Tuple[Any, Any]:
    r"""Rebuilds the model of a :obj:`sap-graph train --checkpoint` file
    (its readout must be :obj:`'sap'`) and loads its dataset the way
    training did (same root, node features and synthetic seed, from the
    checkpoint's :obj:`'train'` config).

    Args:
        checkpoint (str): The checkpoint file.
        dataset (str, optional): Dataset name. (default: :obj:`None`,
            *i.e.* the checkpoint's)
        root (str, optional): Data root. (default: :obj:`None`, *i.e.* the
            checkpoint's, else :func:`~sap_graph.experiments.data.default_root`)

    Returns:
        The model (in evaluation mode) and the
        :class:`~sap_graph.experiments.data.GraphTask`.
    """
    from sap_graph.experiments.checkpoint import read_checkpoint
    from sap_graph.experiments.data import load_configured
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
    # The training config's data fields; another dataset keeps those that
    # are not about the trained one (root, columns, metric).
    saved = {f.name: train[f.name] for f in fields(TrainConfig)
             if f.name in train and (same or f.name in _PORTABLE)}
    cfg = replace(TrainConfig(**saved), dataset=name)
    task = load_configured(replace(cfg, root=root or cfg.root))
    if (model.node_encoder is None
            and task.num_features != model.in_channels):
        raise ValueError(f"{task.name} has {task.num_features} node "
                         f"features but the model of '{checkpoint}' "
                         f"expects {model.in_channels}")
    return model, task


def explain_checkpoint(
    checkpoint: str,
    out: str,
    index: int = 0,
    dataset: Optional[str] = None,
    root: Optional[str] = None,
    stats_out: Optional[str] = None,
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

    Returns:
        A dict describing the explained graph.
    """
    require_matplotlib()  # Before the model and the data are loaded.
    model, task = load_explained(checkpoint, dataset, root)
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
    if task.task_type == 'multiclass':
        probs = logits.softmax(dim=-1)
        prediction = int(probs.argmax())
        confidence = float(probs[prediction])
    else:  # OGB binary tasks: the first task.
        p = float(torch.sigmoid(logits[0]))
        prediction, confidence = int(p > 0.5), max(p, 1 - p)

    symbols = atom_symbols_for(task.name, data)
    key = task.name.upper()
    bonds = {k.upper(): v for k, v in TU_BOND_TYPES.items()}.get(key)
    classes = {k.upper(): v for k, v in TU_CLASS_NAMES.items()}.get(key)
    draw_attention(data, alpha, out, title=f'{task.name} graph {index}',
                   atom_symbols=symbols, prediction=prediction,
                   confidence=confidence, bond_types=bonds,
                   class_names=classes)

    top = []
    for h in range(alpha.size(1)):
        i = int(alpha[:, h].argmax())
        what = f'{symbols[i]} ' if symbols is not None else ''
        top.append({'head': h + 1, 'node': i, 'symbol': what.strip() or None,
                    'weight': float(alpha[i, h])})
    result: Dict[str, Any] = dict(
        dataset=task.name, index=index, num_nodes=int(data.num_nodes),
        heads=int(alpha.size(1)), label=graph_label(data),
        prediction=prediction, confidence=confidence,
        entropy=head_entropy(alpha).tolist(), top=top, out=out)
    if stats_out:
        stats = attention_statistics(model, task.dataset)
        types = {k.upper(): v for k, v in TU_ATOM_SYMBOLS.items()}.get(key)
        draw_attention_statistics(
            stats, stats_out, type_names=types, class_names=classes,
            title=f'{task.name}: attention of the SAP readout over all '
                  f'{size} graphs')
        result['stats_out'] = stats_out
    return result

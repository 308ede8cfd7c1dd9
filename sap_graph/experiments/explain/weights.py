r"""The attention weights of a :class:`~sap_graph.SAPAggregation`
readout, per graph and over a dataset, their per-head entropy, and
what the nodes are (types, atom symbols). No :obj:`matplotlib`.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Batch, Data

from sap_graph.experiments.data.kinds import kind_of
from sap_graph.experiments.explain.targets import (
    first_targets,
    is_classes,
    target_groups,
)
from sap_graph.nn.aggr import SAPAggregation

#: Atom symbols of the one-hot node labels of TU molecule datasets, in
#: feature order, as listed in each dataset's :obj:`README.txt`.
TU_ATOM_SYMBOLS: Dict[str, List[str]] = {
    'MUTAG': ['C', 'N', 'O', 'F', 'I', 'Cl', 'Br'],
}

#: Bond types of the one-hot edge labels of TU molecule datasets, in
#: feature order, as listed in each dataset's :obj:`README.txt`.
TU_BOND_TYPES: Dict[str, List[str]] = {
    'MUTAG': ['aromatic', 'single', 'double', 'triple'],
}

#: Names of the (0-based) graph classes of TU datasets. MUTAG's raw labels
#: are -1 (63 graphs) and +1 (125 mutagenic compounds), which PyG maps to
#: 0 and 1.
TU_CLASS_NAMES: Dict[str, List[str]] = {
    'MUTAG': ['non-mutagenic', 'mutagenic'],
}


def _sap_readout(model: Module) -> SAPAggregation:
    readout = getattr(model, 'readout', None)
    if not isinstance(readout, SAPAggregation):
        name = type(readout).__name__ if readout is not None else 'none'
        raise ValueError(f"Attention weights need a model whose readout is "
                         f"a SAPAggregation (got readout {name})")
    if not hasattr(model, 'node_embeddings'):
        raise ValueError(f"Expected a GraphClassifier with a "
                         f"'node_embeddings' method (got "
                         f"{type(model).__name__})")
    return readout


def _as_batch(batch: Any) -> Batch:
    if isinstance(batch, Batch):
        return batch
    if isinstance(batch, Data):
        return Batch.from_data_list([batch])
    if isinstance(batch, (list, tuple)):
        return Batch.from_data_list(list(batch))
    raise TypeError(f"Expected a PyG Batch, Data or list of Data (got "
                    f"{type(batch).__name__})")


def attention_weights(model: Module, batch: Any) -> List[Tensor]:
    r"""Returns the attention weights of the :class:`SAPAggregation`
    readout of :obj:`model`, one :obj:`[n_b, heads]` tensor per graph of
    :obj:`batch` in the node order of that graph. The weights of each head
    sum to one over the nodes of each graph.

    The model runs in evaluation mode (no dropout, running batch norm
    statistics) without gradients; its training mode is restored
    afterwards.

    Args:
        model (GraphClassifier): A model with a :obj:`'sap'` readout.
        batch (Batch): The graphs, as built by PyG's
            :class:`~torch_geometric.loader.DataLoader` or
            :meth:`Batch.from_data_list` (a single :class:`Data` or a list
            of them is batched first).

    Raises:
        ValueError: If the readout of :obj:`model` is not a
            :class:`SAPAggregation`.
    """
    readout = _sap_readout(model)
    batch = _as_batch(batch)
    num_graphs = int(batch.num_graphs)
    index = batch.batch
    ptr = getattr(batch, 'ptr', None)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = model.node_embeddings(batch.x, batch.edge_index,
                                      getattr(batch, 'edge_attr', None))
            _, alpha = readout(x, index, ptr=ptr, dim_size=num_graphs,
                               return_attention_weights=True)
    finally:
        model.train(was_training)
    if ptr is not None:
        bounds = ptr.tolist()
        return [alpha[bounds[b]:bounds[b + 1]] for b in range(num_graphs)]
    return [alpha[index == b] for b in range(num_graphs)]


def head_entropy(alpha: Tensor) -> Tensor:
    r"""Returns the entropy (in nats) of the attention of each head,
    :math:`H_h = -\sum_i \alpha_{ih} \log \alpha_{ih}`, for the weights
    :obj:`[n, heads]` of one graph. It is :math:`\log n` for uniform
    attention and :math:`0` for attention on one node; :math:`\exp(H_h)` is
    the effective number of attended nodes."""
    alpha = alpha.double()
    logs = torch.where(alpha > 0, alpha.log(), torch.zeros_like(alpha))
    return -(alpha * logs).sum(dim=0).float()


# Node types and molecules #################################################


def default_node_types(data: Data) -> Tensor:
    r"""Returns the type of every node: the argmax of one-hot (float) node
    features, or the first column of categorical (integer) features such
    as OGB's atom features."""
    x = data.x
    if x is None:
        return torch.zeros(data.num_nodes, dtype=torch.long)
    if not x.is_floating_point():
        return x.view(x.size(0), -1)[:, 0].long()
    return x.argmax(dim=-1)


def _is_one_hot(x: Tensor) -> bool:
    return (x.is_floating_point() and x.dim() == 2 and x.size(0) > 0
            and bool(((x == 0) | (x == 1)).all())
            and bool((x.sum(dim=-1) == 1).all()))


def atom_symbols_for(name: str, data: Data) -> Optional[List[str]]:
    r"""Returns the atom symbol of every node of a molecule graph, or
    :obj:`None` when the dataset is not a known molecule dataset.

    TU chemical datasets (:obj:`TU_ATOM_SYMBOLS`) encode the atom type as
    a one-hot node label; OGB molecule datasets (:obj:`ogbg-mol*`) and
    molecules from a CSV (OGB's atom features) store the atomic number
    minus one in the first atom feature (symbols then need RDKit).

    Args:
        name (str): The dataset name, *e.g.* :obj:`'MUTAG'`.
        data (Data): One graph of that dataset.
    """
    if data.x is None:
        return None
    table = {k.upper(): v for k, v in TU_ATOM_SYMBOLS.items()}.get(
        name.upper())
    if table is not None:
        if not _is_one_hot(data.x) or data.x.size(-1) != len(table):
            return None
        return [table[int(t)] for t in data.x.argmax(dim=-1)]
    ogb_atoms = (name.lower().startswith('ogbg-mol') or
                 kind_of(name).name == 'molecules')
    if ogb_atoms and not data.x.is_floating_point():
        try:
            from rdkit import Chem
        except ImportError:
            return None
        table_ = Chem.GetPeriodicTable()
        return [table_.GetElementSymbol(int(z) + 1)
                for z in data.x.view(data.num_nodes, -1)[:, 0]]
    return None


# Statistics over a dataset ################################################


def attention_statistics(
    model: Module,
    dataset: Sequence[Data],
    batch_size: int = 64,
    node_types: Optional[Callable[[Data], Tensor]] = None,
    task_type: Optional[str] = None,
    bins: int = 4,
) -> Dict[str, Any]:
    r"""Collects the attention of the :class:`SAPAggregation` readout of
    :obj:`model` over :obj:`dataset`.

    Graphs are grouped by the class of their (first) label, or, for a
    regression target, by its quantile bin (see :func:`target_groups`):
    a bin of target values is to a regression task what a class is to a
    classification task, and every bin holds about as many graphs.

    Args:
        model (GraphClassifier): A model with a :obj:`'sap'` readout.
        dataset (sequence of Data): The graphs.
        batch_size (int, optional): Graphs per forward pass.
            (default: :obj:`64`)
        node_types (callable, optional): Returns the type of every node of
            a graph, a :obj:`[n]` integer tensor. (default:
            :func:`default_node_types`, the argmax of one-hot features)
        task_type (str, optional): :obj:`'regression'` groups by quantile
            bins, anything else by class. (default: :obj:`None`, *i.e.*
            integer labels and float labels all 0 or 1 are classes, other
            float labels regression targets)
        bins (int, optional): Quantile bins of a regression target.
            (default: :obj:`4`)

    Returns:
        A dict of tensors over the :math:`G` graphs: :obj:`'num_nodes'`
        :obj:`[G]`, :obj:`'entropy'` :obj:`[G, heads]` (see
        :func:`head_entropy`), :obj:`'peak'` :obj:`[G, heads]` (the
        largest weight of each head), :obj:`'label'` :obj:`[G]` (the
        class, :obj:`-1` if unknown; for regression the target, NaN if
        unknown), :obj:`'prediction'` :obj:`[G]` (the class; for
        regression the first output of the model, in its units),
        :obj:`'group'` :obj:`[G]` (class or bin, :obj:`-1` if unknown),
        :obj:`'group_by'` (:obj:`'class'` or :obj:`'quantile'`),
        :obj:`'group_names'` (the bins' ranges; :obj:`None` for classes),
        and per group :math:`c` and node type :math:`t`:
        :obj:`'type_mass'` :obj:`[C, T, heads]`, the mean attention mass
        on nodes of type :math:`t` in graphs of group :math:`c`,
        :obj:`'type_share'` :obj:`[C, T]`, the mean share of such nodes
        (the mass under uniform attention), and :obj:`'class_counts'`
        :obj:`[C]`, the graphs of each group.
    """
    from torch_geometric.loader import DataLoader

    _sap_readout(model)
    node_types = node_types or default_node_types
    graphs = list(dataset)
    first = first_targets(graphs)
    regression = (task_type == 'regression' if task_type is not None
                  else not is_classes(graphs, first))
    was_training = model.training
    model.eval()
    alphas: List[Tensor] = []
    preds: List[Tensor] = []
    try:
        for batch in DataLoader(graphs, batch_size=batch_size):
            alphas.extend(a.cpu() for a in attention_weights(model, batch))
            with torch.no_grad():
                logits = model(batch.x, batch.edge_index, batch.batch,
                               edge_attr=getattr(batch, 'edge_attr', None),
                               ptr=batch.ptr, num_graphs=batch.num_graphs)
            if regression:
                preds.append(logits[:, 0].cpu())
            elif task_type == 'multiclass' or (task_type is None
                                               and logits.size(-1) > 1):
                preds.append(logits.argmax(dim=-1).cpu())
            else:  # Binary tasks: the first.
                preds.append((logits[:, 0] > 0).long().cpu())
    finally:
        model.train(was_training)

    heads = int(_sap_readout(model).heads)
    types = [node_types(d).view(-1).long().cpu() for d in graphs]
    num_types = max([int(t.max()) + 1 for t in types if t.numel()] + [1])
    names: Optional[List[str]] = None
    if regression:
        labels = first.float()
        group, names = target_groups(first, bins)
        num_groups = max(len(names), 1)
    else:
        labels = torch.where(first.isnan() | (first < 0), -1.0,
                             first).long()
        group = labels
        num_groups = max(int(labels.max()) + 1 if labels.numel() else 0, 1)

    mass_sum = torch.zeros(num_groups, num_types, heads, dtype=torch.double)
    share_sum = torch.zeros(num_groups, num_types, dtype=torch.double)
    counts = torch.zeros(num_groups, dtype=torch.long)
    entropy = torch.zeros(len(graphs), heads)
    peak = torch.zeros(len(graphs), heads)
    for g, (alpha, t, c) in enumerate(zip(alphas, types, group.tolist(),
                                          strict=True)):
        if alpha.size(0) == 0:
            continue
        entropy[g] = head_entropy(alpha)
        peak[g] = alpha.amax(dim=0)
        if c < 0:
            continue
        mass = torch.zeros(num_types, heads, dtype=torch.double)
        mass.index_add_(0, t, alpha.double())
        mass_sum[c] += mass
        share_sum[c] += torch.bincount(t, minlength=num_types).double() / len(t)
        counts[c] += 1
    denom = counts.clamp(min=1).double()
    return {
        'num_nodes': torch.tensor([a.size(0) for a in alphas]),
        'entropy': entropy,
        'peak': peak,
        'label': labels,
        'prediction': torch.cat(preds) if preds else torch.zeros(0).long(),
        'group': group,
        'group_by': 'quantile' if regression else 'class',
        'group_names': names,
        'type_mass': (mass_sum / denom.view(-1, 1, 1)).float(),
        'type_share': (share_sum / denom.view(-1, 1)).float(),
        'class_counts': counts,
    }


def attention_sharpness(stats: Dict[str, Any]) -> List[Dict[str, float]]:
    r"""Summarises, per head, how sharp the attention of
    :func:`attention_statistics` is over the graphs with more than one
    node.

    Args:
        stats (dict): The output of :func:`attention_statistics`.

    Returns:
        One dict per head: :obj:`'graphs'` (how many were counted),
        :obj:`'nodes'` (their mean size :math:`n`), :obj:`'attended'` (the
        mean effective number of attended nodes :math:`\exp(H_h)`, which
        is :math:`n` for uniform attention and 1 for one node),
        :obj:`'entropy_ratio'` (the mean of :math:`H_h / \log n`: 1 is
        uniform, 0 one node), :obj:`'peak_median'` and :obj:`'peak_max'`
        (the median and the largest peak weight, against
        :obj:`'uniform_median'`, the median of :math:`1/n`) and
        :obj:`'sharp_share'` (the share of graphs whose peak weight is
        above 0.5).
    """
    n = stats['num_nodes'].double()
    keep = n > 1
    n = n[keep]
    entropy = stats['entropy'][keep].double()
    peak = stats['peak'][keep].double()
    out = []
    for h in range(entropy.size(1)):
        out.append({
            'graphs': int(keep.sum()),
            'nodes': float(n.mean()),
            'attended': float(entropy[:, h].exp().mean()),
            'entropy_ratio': float((entropy[:, h] / n.log()).mean()),
            'peak_median': float(peak[:, h].median()),
            'peak_max': float(peak[:, h].max()),
            'uniform_median': float((1 / n).median()),
            'sharp_share': float((peak[:, h] > 0.5).double().mean()),
        })
    return out

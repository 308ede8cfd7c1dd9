r"""See what the readout attends to: the attention weights of a
:class:`~sap_graph.SAPAggregation` readout, per graph and over a dataset,
and figures of them.

.. code-block:: python

    from torch_geometric.data import Batch
    from sap_graph.experiments.explain import attention_weights, draw_attention
    from sap_graph.experiments.models import load_checkpoint

    model = load_checkpoint('runs/mutag_sap.pt')
    batch = Batch.from_data_list([dataset[0], dataset[1]])
    alphas = attention_weights(model, batch)   # [[n_0, heads], [n_1, heads]]
    draw_attention(dataset[0], alphas[0], 'graph0.png',
                   atom_symbols=atom_symbols_for('MUTAG', dataset[0]))

The drawing functions need :obj:`matplotlib` (the :obj:`plot` extra) and
use its Agg canvas only (no :mod:`matplotlib.pyplot`, no display). Molecules
are laid out with RDKit's 2D depiction when RDKit is installed, other
graphs with a :obj:`networkx` spring layout (a circle without either).
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch.nn import Module
from torch_geometric.data import Batch, Data

from sap_graph.aggr import SAPAggregation

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


def attention_entropy(alpha: Tensor) -> Tensor:
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
    a one-hot node label; OGB molecule datasets (:obj:`ogbg-mol*`) store
    the atomic number minus one in the first atom feature (symbols then
    need RDKit).

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
    if name.lower().startswith('ogbg-mol') and not data.x.is_floating_point():
        try:
            from rdkit import Chem
        except ImportError:
            return None
        table_ = Chem.GetPeriodicTable()
        return [table_.GetElementSymbol(int(z) + 1)
                for z in data.x.view(data.num_nodes, -1)[:, 0]]
    return None


def _undirected_edges(data: Data) -> Tuple[np.ndarray, np.ndarray]:
    r"""Returns the unique undirected edges :obj:`[m, 2]` (without self
    loops) and, for each, the position of one of its directed copies."""
    edge_index = data.edge_index.cpu().numpy()
    if edge_index.size == 0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    pairs = np.sort(edge_index.T, axis=1)
    keep = pairs[:, 0] != pairs[:, 1]
    pos = np.nonzero(keep)[0]
    pairs, first = np.unique(pairs[keep], axis=0, return_index=True)
    return pairs, pos[first]


def _bond_orders(data: Data, bond_types: Optional[Sequence[str]],
                 positions: np.ndarray) -> List[str]:
    edge_attr = getattr(data, 'edge_attr', None)
    if (bond_types is None or edge_attr is None or edge_attr.dim() != 2
            or edge_attr.size(-1) != len(bond_types)):
        return ['single'] * len(positions)
    kinds = edge_attr.argmax(dim=-1).cpu().numpy()
    return [bond_types[int(kinds[p])] for p in positions]


def graph_layout(data: Data, atom_symbols: Optional[Sequence[str]] = None,
                 seed: int = 0) -> np.ndarray:
    r"""Returns 2D node positions :obj:`[num_nodes, 2]`.

    Molecules (:obj:`atom_symbols` given) get RDKit's 2D depiction
    coordinates when RDKit is installed (built from the atom symbols and
    the edge list; bond orders do not change the layout). Other graphs,
    or molecules without RDKit, get a :obj:`networkx` spring layout, or
    a circle when :obj:`networkx` is missing too.

    Args:
        data (Data): The graph.
        atom_symbols (list of str, optional): One atom symbol per node.
            (default: :obj:`None`)
        seed (int, optional): Seed of the spring layout.
            (default: :obj:`0`)
    """
    n = int(data.num_nodes)
    pairs, _ = _undirected_edges(data)
    if n == 0:
        return np.zeros((0, 2))
    if atom_symbols is not None:
        pos = _rdkit_layout(atom_symbols, pairs)
        if pos is not None:
            return pos
    try:
        import networkx as nx
    except ImportError:
        angle = 2 * math.pi * np.arange(n) / max(n, 1)
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from(pairs.tolist())
    layout = nx.spring_layout(graph, seed=seed)
    return np.array([layout[i] for i in range(n)], dtype=float)


def _rdkit_layout(symbols: Sequence[str],
                  pairs: np.ndarray) -> Optional[np.ndarray]:
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdDepictor
    except ImportError:
        return None
    RDLogger.DisableLog('rdApp.*')
    try:
        mol = Chem.RWMol()
        for symbol in symbols:
            try:
                atom = Chem.Atom(symbol)
            except RuntimeError:  # Unknown symbol: a dummy atom.
                atom = Chem.Atom(0)
            mol.AddAtom(atom)
        for i, j in pairs.tolist():
            mol.AddBond(int(i), int(j), Chem.BondType.SINGLE)
        mol = mol.GetMol()
        mol.UpdatePropertyCache(strict=False)
        Chem.FastFindRings(mol)
        rdDepictor.Compute2DCoords(mol)
        return np.asarray(mol.GetConformer().GetPositions())[:, :2]
    except (RuntimeError, ValueError):  # pragma: no cover - odd graphs.
        return None
    finally:
        RDLogger.EnableLog('rdApp.*')


# Drawing ##################################################################


def _figure(width: float, height: float) -> Any:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            "Drawing needs the optional 'matplotlib' package: pip install "
            "'sap-graph[plot]' (or pip install matplotlib)") from e
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_path: str) -> str:
    folder = osp.dirname(osp.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(out_path, dpi=150, bbox_inches='tight', facecolor='white')
    return out_path


def _draw_bonds(ax: Any, pos: np.ndarray, pairs: np.ndarray,
                orders: Sequence[str], scale: float) -> None:
    style = dict(color='0.45', linewidth=1.6, zorder=1,
                 solid_capstyle='round')
    for (i, j), order in zip(pairs.tolist(), orders, strict=True):
        a, b = pos[i], pos[j]
        normal = np.array([a[1] - b[1], b[0] - a[0]])
        length = float(np.linalg.norm(normal))
        normal = normal / length if length > 0 else normal
        gap = 0.09 * scale
        if order == 'double':
            offsets, dashed = [-gap / 2, gap / 2], [False, False]
        elif order == 'triple':
            offsets, dashed = [-gap, 0.0, gap], [False] * 3
        elif order == 'aromatic':
            offsets, dashed = [-gap / 2, gap / 2], [False, True]
        else:
            offsets, dashed = [0.0], [False]
        for off, dash in zip(offsets, dashed, strict=True):
            p, q = a + off * normal, b + off * normal
            ax.plot([p[0], q[0]], [p[1], q[1]],
                    linestyle=(0, (2, 2)) if dash else '-', **style)


def _effective_nodes(alpha: Tensor) -> Tensor:
    return attention_entropy(alpha).exp()


def draw_attention(
    data: Data,
    alpha: Tensor,
    out_path: str,
    title: Optional[str] = None,
    atom_symbols: Optional[Sequence[str]] = None,
    prediction: Optional[int] = None,
    confidence: Optional[float] = None,
    bond_types: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
) -> str:
    r"""Draws one graph with every node coloured by its attention weight:
    one panel per head and one for the average over heads, sharing one
    colour bar. Each panel gives the effective number of attended nodes
    :math:`\exp(H_h)` (see :func:`attention_entropy`) out of :math:`n`.

    Molecules (:obj:`atom_symbols` given) are drawn with their atom
    symbols in RDKit's 2D layout (see :func:`graph_layout`); with
    :obj:`bond_types` (the names of the one-hot edge features, *e.g.*
    :obj:`TU_BOND_TYPES['MUTAG']`) double, triple and aromatic bonds are
    drawn as such.

    Args:
        data (Data): The graph.
        alpha (torch.Tensor): Its attention weights :obj:`[n, heads]` (or
            :obj:`[n]`), *e.g.* from :func:`attention_weights`.
        out_path (str): The image file (PNG, SVG or PDF, by extension).
        title (str, optional): Start of the figure title; the label
            (:obj:`data.y`) and prediction are appended.
            (default: :obj:`None`)
        atom_symbols (list of str, optional): One atom symbol per node,
            *e.g.* from :func:`atom_symbols_for`. (default: :obj:`None`)
        prediction (int, optional): The predicted class.
            (default: :obj:`None`)
        confidence (float, optional): The probability of the predicted
            class. (default: :obj:`None`)
        bond_types (list of str, optional): Names of the one-hot edge
            features among :obj:`'single'`, :obj:`'double'`,
            :obj:`'triple'` and :obj:`'aromatic'`. (default: :obj:`None`)
        class_names (list of str, optional): Names of the classes.
            (default: :obj:`None`)

    Returns:
        :obj:`out_path`.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Circle

    alpha = alpha.detach().float().cpu()
    if alpha.dim() == 1:
        alpha = alpha.unsqueeze(-1)
    n, heads = alpha.shape
    if n != data.num_nodes:
        raise ValueError(f"Expected attention weights for {data.num_nodes} "
                         f"nodes (got {n})")
    if atom_symbols is not None and len(atom_symbols) != n:
        raise ValueError(f"Expected {n} atom symbols (got "
                         f"{len(atom_symbols)})")

    pos = graph_layout(data, atom_symbols)
    pairs, first = _undirected_edges(data)
    orders = _bond_orders(data, bond_types, first)
    lengths = (np.linalg.norm(pos[pairs[:, 0]] - pos[pairs[:, 1]], axis=1)
               if len(pairs) else np.ones(1))
    scale = float(np.median(lengths)) if len(lengths) else 1.0
    scale = scale if scale > 0 else 1.0

    panels = [alpha[:, h] for h in range(heads)]
    names = [f'head {h + 1}' for h in range(heads)]
    if heads > 1:
        panels.append(alpha.mean(dim=1))
        names.append('mean over heads')
    effective = _effective_nodes(torch.stack(panels, dim=1))

    cols = len(panels) if len(panels) <= 3 else 3
    rows = math.ceil(len(panels) / cols)
    radius = 0.3 * scale
    low = pos.min(axis=0) - 1.6 * radius if n > 0 else np.zeros(2)
    high = pos.max(axis=0) + 1.6 * radius if n > 0 else np.ones(2)
    span = np.maximum(high - low, 1e-9)
    panel_w = 3.6
    panel_h = float(np.clip(panel_w * span[1] / span[0], 1.8, 4.5))
    fig = _figure(panel_w * cols + 1.0, panel_h * rows + 1.1)
    axes = fig.subplots(rows, cols, squeeze=False)
    # Points per data unit of the (equal-aspect) panels, to size the text.
    ppu = 72 * min(panel_w / span[0], panel_h / span[1])
    font = float(np.clip(1.1 * radius * ppu, 4.0, 10.0))

    cmap = colormaps['YlOrRd']
    vmax = max(float(torch.stack(panels).max()) if n else 1.0, 1e-6)
    norm = Normalize(vmin=0.0, vmax=vmax)

    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= len(panels):
            continue
        values = panels[k].numpy()
        _draw_bonds(ax, pos, pairs, orders, scale)
        for i in range(n):
            ax.add_patch(Circle((pos[i, 0], pos[i, 1]), radius,
                                facecolor=cmap(norm(values[i])),
                                edgecolor='0.25', linewidth=0.8, zorder=2))
            if atom_symbols is not None:
                dark = values[i] > 0.6 * vmax
                ax.text(pos[i, 0], pos[i, 1], atom_symbols[i], ha='center',
                        va='center', fontsize=font, zorder=3,
                        color='white' if dark else 'black')
        ax.set_title(f'{names[k]}: {float(effective[k]):.1f} of {n} nodes '
                     f'attended', fontsize=9)
        ax.set_xlim(low[0], high[0])
        ax.set_ylim(low[1], high[1])
        ax.set_aspect('equal')

    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap),
                       ax=axes.ravel().tolist(), shrink=0.9, pad=0.03,
                       fraction=0.03)
    bar.set_label('attention weight (sums to 1 per head)', fontsize=8)
    bar.ax.tick_params(labelsize=7)
    if n > 0:
        bar.ax.axhline(1.0 / n, color='black', linewidth=1.2)
        bar.ax.text(-0.3, 1.0 / n, f'uniform\n1/{n}', va='center',
                    ha='right', fontsize=7,
                    transform=bar.ax.get_yaxis_transform())
    fig.suptitle(_title(data, title, prediction, confidence, class_names),
                 fontsize=11)
    return _save(fig, out_path)


def _class_name(c: int, class_names: Optional[Sequence[str]]) -> str:
    if class_names is not None and 0 <= c < len(class_names):
        return f'{c} ({class_names[c]})'
    return str(c)


def _graph_label(data: Data) -> Optional[int]:
    y = getattr(data, 'y', None)
    if y is None or y.numel() == 0:
        return None
    value = y.view(-1)[0]
    if value.is_floating_point() and not bool(torch.isfinite(value)):
        return None
    return int(value)


def _title(data: Data, title: Optional[str], prediction: Optional[int],
           confidence: Optional[float],
           class_names: Optional[Sequence[str]]) -> str:
    parts = []
    label = _graph_label(data)
    if label is not None:
        parts.append(f'label {_class_name(label, class_names)}')
    if prediction is not None:
        text = f'predicted {_class_name(prediction, class_names)}'
        if confidence is not None:
            text += f' (p = {confidence:.2f})'
        parts.append(text)
    body = ', '.join(parts)
    if title and body:
        return f'{title}: {body}'
    return title or body


# Statistics over a dataset ################################################


def attention_statistics(
    model: Module,
    dataset: Sequence[Data],
    batch_size: int = 64,
    node_types: Optional[Callable[[Data], Tensor]] = None,
) -> Dict[str, Any]:
    r"""Collects the attention of the :class:`SAPAggregation` readout of
    :obj:`model` over :obj:`dataset`.

    Args:
        model (GraphClassifier): A model with a :obj:`'sap'` readout.
        dataset (sequence of Data): The graphs.
        batch_size (int, optional): Graphs per forward pass.
            (default: :obj:`64`)
        node_types (callable, optional): Returns the type of every node of
            a graph, a :obj:`[n]` integer tensor. (default:
            :func:`default_node_types`, the argmax of one-hot features)

    Returns:
        A dict of tensors over the :math:`G` graphs: :obj:`'num_nodes'`
        :obj:`[G]`, :obj:`'entropy'` :obj:`[G, heads]` (see
        :func:`attention_entropy`), :obj:`'label'` :obj:`[G]` (:obj:`-1`
        if unknown), :obj:`'prediction'` :obj:`[G]`, and per class
        :math:`c` and node type :math:`t`: :obj:`'type_mass'`
        :obj:`[C, T, heads]`, the mean attention mass on nodes of type
        :math:`t` in graphs of class :math:`c`, :obj:`'type_share'`
        :obj:`[C, T]`, the mean share of such nodes (the mass under
        uniform attention), and :obj:`'class_counts'` :obj:`[C]`.
    """
    from torch_geometric.loader import DataLoader

    _sap_readout(model)
    node_types = node_types or default_node_types
    graphs = list(dataset)
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
            preds.append(logits.argmax(dim=-1).cpu() if logits.size(-1) > 1
                         else (logits.view(-1) > 0).long().cpu())
    finally:
        model.train(was_training)

    heads = int(_sap_readout(model).heads)
    types = [node_types(d).view(-1).long().cpu() for d in graphs]
    num_types = max([int(t.max()) + 1 for t in types if t.numel()] + [1])
    labels = torch.tensor([-1 if (y := _graph_label(d)) is None else y
                           for d in graphs], dtype=torch.long)
    num_classes = max(int(labels.max()) + 1 if labels.numel() else 0, 1)

    mass_sum = torch.zeros(num_classes, num_types, heads, dtype=torch.double)
    share_sum = torch.zeros(num_classes, num_types, dtype=torch.double)
    counts = torch.zeros(num_classes, dtype=torch.long)
    entropy = torch.zeros(len(graphs), heads)
    for g, (alpha, t, y) in enumerate(zip(alphas, types, labels.tolist(),
                                          strict=True)):
        if alpha.size(0) == 0:
            continue
        entropy[g] = attention_entropy(alpha)
        if y < 0:
            continue
        mass = torch.zeros(num_types, heads, dtype=torch.double)
        mass.index_add_(0, t, alpha.double())
        mass_sum[y] += mass
        share_sum[y] += torch.bincount(t, minlength=num_types).double() / len(t)
        counts[y] += 1
    denom = counts.clamp(min=1).double()
    return {
        'num_nodes': torch.tensor([a.size(0) for a in alphas]),
        'entropy': entropy,
        'label': labels,
        'prediction': torch.cat(preds) if preds else torch.zeros(0).long(),
        'type_mass': (mass_sum / denom.view(-1, 1, 1)).float(),
        'type_share': (share_sum / denom.view(-1, 1)).float(),
        'class_counts': counts,
    }


def draw_attention_statistics(
    stats: Dict[str, Any],
    out_path: str,
    type_names: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
) -> str:
    r"""Draws the attention over a dataset, from
    :func:`attention_statistics`:

    * left, the entropy of every head's attention against the graph size
      (one colour per head), with :math:`\log n` (uniform attention) as a
      reference; points far below the line attend to few nodes;
    * right, per class, the mean attention mass (averaged over heads) that
      each node type receives, with black ticks at the mean share of nodes
      of that type (the mass under uniform attention). Node types that
      never occur are left out.

    Args:
        stats (dict): The output of :func:`attention_statistics`.
        out_path (str): The image file.
        type_names (list of str, optional): Names of the node types, *e.g.*
            :obj:`TU_ATOM_SYMBOLS['MUTAG']`. (default: :obj:`None`, *i.e.*
            :obj:`'type 0'`, ...)
        class_names (list of str, optional): Names of the classes.
            (default: :obj:`None`)
        title (str, optional): Figure title. (default: :obj:`None`)

    Returns:
        :obj:`out_path`.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    num_nodes = stats['num_nodes'].numpy()
    entropy = stats['entropy'].numpy()
    mass = stats['type_mass'].mean(dim=-1).numpy()  # [C, T]
    share = stats['type_share'].numpy()
    counts = stats['class_counts'].numpy()
    heads = entropy.shape[1]
    num_classes, num_types = mass.shape

    fig = _figure(12.5, 5.0)
    ax_ent, ax_bar = fig.subplots(1, 2, gridspec_kw={'width_ratios': [1, 1]})

    keep = num_nodes > 0
    rng = np.random.default_rng(0)
    jitter = rng.uniform(-0.25, 0.25, size=len(num_nodes))
    head_colors = colormaps['tab10']
    for h in range(heads):
        ax_ent.scatter(num_nodes[keep] + jitter[keep], entropy[keep, h],
                       s=12, alpha=0.6, color=head_colors(h % 10),
                       label=f'head {h + 1}', linewidths=0)
    if keep.any():
        grid = np.linspace(max(num_nodes[keep].min(), 1),
                           num_nodes[keep].max(), 200)
        ax_ent.plot(grid, np.log(grid), color='black', linestyle='--',
                    linewidth=1.2, label='uniform attention, log n')
    ax_ent.set_ylim(bottom=-0.05)
    ax_ent.set_xlabel('nodes per graph n')
    ax_ent.set_ylabel('attention entropy (nats)')
    ax_ent.set_title('Entropy of each head vs graph size', fontsize=10)
    ax_ent.legend(fontsize=8, loc='upper center', ncol=min(heads + 1, 5),
                  bbox_to_anchor=(0.5, -0.13), frameon=False)
    ax_ent.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_ent.grid(alpha=0.3)

    present = np.nonzero(share.sum(axis=0) > 0)[0]
    if len(present) == 0:
        present = np.arange(num_types)
    names = [type_names[t] if type_names is not None and t < len(type_names)
             else f'type {t}' for t in present]
    classes = [c for c in range(num_classes) if counts[c] > 0]
    width = 0.8 / max(len(classes), 1)
    class_colors = colormaps['Set2']
    x = np.arange(len(present))
    for k, c in enumerate(classes):
        offset = (k - (len(classes) - 1) / 2) * width
        label = (f'class {_class_name(c, class_names)}, '
                 f'{int(counts[c])} graphs')
        ax_bar.bar(x + offset, mass[c, present], width=width * 0.95,
                   color=class_colors(k % 8), label=label)
        ax_bar.hlines(share[c, present], x + offset - width * 0.45,
                      x + offset + width * 0.45, color='black',
                      linewidth=1.6)
    handles, labels = ax_bar.get_legend_handles_labels()
    handles.append(Line2D([], [], color='black', linewidth=1.6))
    labels.append('share of nodes (uniform attention)')
    ax_bar.legend(handles, labels, fontsize=8, loc='upper right',
                  framealpha=0.9)
    ax_bar.set_xticks(x, names)
    ax_bar.set_xlabel('node type')
    ax_bar.set_ylabel('mean attention mass per graph (mean over heads)')
    ax_bar.set_title('Where the attention goes, per class', fontsize=10)
    ax_bar.set_ylim(0, max(float(mass.max()), float(share.max()), 1e-6)
                    * 1.25)
    ax_bar.grid(axis='y', alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, out_path)


# Checkpoints ##############################################################


def _read_checkpoint(path: str) -> Dict[str, Any]:
    from sap_graph.experiments.checkpoint import safe_load
    state = safe_load(path, 'checkpoint')
    if (not isinstance(state, dict) or 'state_dict' not in state
            or 'model' not in state.get('config', {})):
        raise ValueError(f"'{path}' is not a sap-graph checkpoint (expected "
                         f"a dict with 'state_dict' and 'config')")
    return state


def explain_checkpoint(
    checkpoint: str,
    out: str,
    index: int = 0,
    dataset: Optional[str] = None,
    root: Optional[str] = None,
    stats_out: Optional[str] = None,
) -> Dict[str, Any]:
    r"""Rebuilds the model of a :obj:`sap-graph train --checkpoint` file,
    loads its dataset the way training did (same root, node features and
    synthetic seed, from the checkpoint's :obj:`'train'` config), and draws
    the attention of graph :obj:`index` (and, with :obj:`stats_out`, the
    statistics over the whole dataset). Used by :obj:`sap-graph explain`.

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
    from sap_graph.experiments.data import load_dataset
    from sap_graph.experiments.models import load_checkpoint

    state = _read_checkpoint(checkpoint)
    config = state['config']
    if config['model'].get('readout') != 'sap':
        raise ValueError(f"'{checkpoint}' has readout "
                         f"'{config['model'].get('readout')}'; attention "
                         f"weights need readout 'sap'")
    model = load_checkpoint(checkpoint)
    _sap_readout(model)

    train = config.get('train') or {}
    trained_on = train.get('dataset') or (config.get('dataset') or {}).get(
        'name')
    name = dataset or trained_on
    if not name:
        raise ValueError(f"'{checkpoint}' does not name its dataset; pass "
                         f"--dataset")
    same = trained_on is not None and name.lower() == trained_on.lower()
    task = load_dataset(
        name, root=root or (train.get('root') if same else None),
        node_features=train.get('node_features', 'auto'),
        download=train.get('download', True), seed=train.get('seed', 0),
        use_node_attr=train.get('use_node_attr', False))
    if (model.node_encoder is None
            and task.num_features != model.in_channels):
        raise ValueError(f"{task.name} has {task.num_features} node "
                         f"features but the model of '{checkpoint}' "
                         f"expects {model.in_channels}")
    size = len(task.dataset)
    if not 0 <= index < size:
        raise ValueError(f"--index {index} is out of range: {task.name} has "
                         f"{size} graphs (0 to {size - 1})")

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
        heads=int(alpha.size(1)), label=_graph_label(data),
        prediction=prediction, confidence=confidence,
        entropy=attention_entropy(alpha).tolist(), top=top, out=out)
    if stats_out:
        stats = attention_statistics(model, task.dataset)
        types = {k.upper(): v for k, v in TU_ATOM_SYMBOLS.items()}.get(key)
        draw_attention_statistics(
            stats, stats_out, type_names=types, class_names=classes,
            title=f'{task.name}: attention of the SAP readout over all '
                  f'{size} graphs')
        result['stats_out'] = stats_out
    return result


__all__ = [
    'TU_ATOM_SYMBOLS',
    'TU_BOND_TYPES',
    'TU_CLASS_NAMES',
    'atom_symbols_for',
    'attention_entropy',
    'attention_statistics',
    'attention_weights',
    'default_node_types',
    'draw_attention',
    'draw_attention_statistics',
    'explain_checkpoint',
    'graph_layout',
]

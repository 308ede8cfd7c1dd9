r"""Figures of attention weights: a graph with its nodes shaded by
attention (one panel per head), and statistics over a dataset.

Needs :obj:`matplotlib` and uses its Agg canvas only (no
:mod:`matplotlib.pyplot`, no display). Molecules are laid out with
RDKit's 2D depiction when RDKit is installed, other graphs with a
:obj:`networkx` spring layout (a circle without either).
"""
from __future__ import annotations

import math
import os
import os.path as osp
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Data

from sap_graph.experiments.explain.targets import format_value, graph_label
from sap_graph.experiments.explain.weights import head_entropy


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


def require_matplotlib() -> None:
    r"""Raises :class:`ImportError` naming the :obj:`plot` extra when
    :obj:`matplotlib` cannot be imported (the :obj:`train` extra does not
    install it)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "drawing needs matplotlib, which the 'plot' extra installs: "
            "pip install 'sap-graph[plot]' (or pip install matplotlib)"
        ) from e


def check_image_outputs(outputs: Dict[str, Optional[str]]) -> None:
    r"""Checks, before anything is loaded or drawn, each image file of
    :obj:`outputs` (option name -> path, :obj:`None` when not asked for):
    its extension names a format matplotlib writes (without one it would
    add :obj:`.png` to the name), it can be written, and no two options
    name one file (the second figure would replace the first).

    Raises:
        ConfigError: For a path without a known image format, or two
            options naming one file.
        OutputError: For a file that cannot be written.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sap_graph.experiments.errors import ConfigError
    from sap_graph.experiments.files import DistinctFiles, check_writable
    # PGF needs a LaTeX installation to be written: not offered.
    formats = {f for f in FigureCanvasAgg.get_supported_filetypes()
               if f != 'pgf'}
    files = DistinctFiles()
    for name, path in outputs.items():
        if path is None:
            continue
        extension = osp.splitext(str(path))[1][1:].lower()
        if extension not in formats:
            raise ConfigError(name, f"'{path}' names no image format by its "
                              f"extension: end it in one of "
                              f"{', '.join('.' + f for f in sorted(formats))}")
        check_writable(path, 'image')
        other = files.claim(name, path)
        if other is not None:
            raise ConfigError(name, f"'{path}' is also the {other} image: "
                              f"each figure needs a file of its own")


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
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
    return head_entropy(alpha).exp()


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
    outcome: Optional[str] = None,
) -> str:
    r"""Draws one graph with every node coloured by its attention weight:
    one panel per head and one for the average over heads, sharing one
    colour bar. Each panel gives the effective number of attended nodes
    :math:`\exp(H_h)` (see :func:`head_entropy`) out of :math:`n`.

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
        outcome (str, optional): The label(s) and prediction(s) for the
            title instead of the class label of :obj:`data.y` and
            :obj:`prediction`, *e.g.* from
            :func:`~sap_graph.experiments.explain.targets.outcomes_text`
            for regression or several targets. (default: :obj:`None`)

    Returns:
        :obj:`out_path`.
    """
    require_matplotlib()
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
    fig.suptitle(_title(data, title, prediction, confidence, class_names,
                        outcome), fontsize=11)
    return _save(fig, out_path)


def _class_name(c: Any, class_names: Optional[Sequence[str]]) -> str:
    if not isinstance(c, int):  # A regression target.
        return format_value(c)
    if class_names is not None and 0 <= c < len(class_names):
        return f'{c} ({class_names[c]})'
    return str(c)


def _title(data: Data, title: Optional[str], prediction: Optional[int],
           confidence: Optional[float],
           class_names: Optional[Sequence[str]],
           outcome: Optional[str] = None) -> str:
    parts = [] if outcome is None else [outcome]
    label = graph_label(data) if outcome is None else None
    if label is not None:
        parts.append(f'label {_class_name(label, class_names)}')
    if prediction is not None and outcome is None:
        text = f'predicted {_class_name(prediction, class_names)}'
        if confidence is not None:
            text += f' (p = {confidence:.2f})'
        parts.append(text)
    body = ', '.join(parts)
    if title and body:
        return f'{title}: {body}'
    return title or body

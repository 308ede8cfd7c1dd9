r"""The dataset-level attention figure: attention entropy against graph
size per head, and the weight of every node type, by class (by quantile
bin of a regression target).

Needs :obj:`matplotlib` (Agg canvas only), like :mod:`.drawing`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from sap_graph.experiments.explain.drawing import (
    _class_name,
    _figure,
    _save,
    require_matplotlib,
)


def draw_attention_statistics(
    stats: Dict[str, Any],
    out_path: str,
    type_names: Optional[Sequence[str]] = None,
    class_names: Optional[Sequence[str]] = None,
    title: Optional[str] = None,
    target_name: Optional[str] = None,
) -> str:
    r"""Draws the attention over a dataset, from
    :func:`attention_statistics`:

    * left, the entropy of every head's attention against the graph size
      (one colour per head), with :math:`\log n` (uniform attention) as a
      reference; points far below the line attend to few nodes;
    * right, per class (for a regression target: per quantile bin of its
      values, :obj:`stats['group_names']`), the mean attention mass
      (averaged over heads) that each node type receives, with black ticks
      at the mean share of nodes of that type (the mass under uniform
      attention). Node types that never occur are left out.

    Args:
        stats (dict): The output of :func:`attention_statistics`.
        out_path (str): The image file.
        type_names (list of str, optional): Names of the node types, *e.g.*
            :obj:`TU_ATOM_SYMBOLS['MUTAG']`. (default: :obj:`None`, *i.e.*
            :obj:`'type 0'`, ...)
        class_names (list of str, optional): Names of the classes.
            (default: :obj:`None`)
        title (str, optional): Figure title. (default: :obj:`None`)
        target_name (str, optional): The target the graphs are grouped by,
            for the legend. (default: :obj:`None`)

    Returns:
        :obj:`out_path`.
    """
    require_matplotlib()
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
    bins = stats.get('group_names') if stats.get('group_by') == 'quantile' \
        else None
    of = f' of {target_name}' if target_name else ''
    for k, c in enumerate(classes):
        offset = (k - (len(classes) - 1) / 2) * width
        group = (f'{target_name or "target"} {bins[c]}' if bins is not None
                 else f'class {_class_name(c, class_names)}{of}')
        label = f'{group}, {int(counts[c])} graphs'
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
    ax_bar.set_title('Where the attention goes, per ' + (
        f'quantile bin of {target_name or "the target"}' if bins is not None
        else 'class'), fontsize=10)
    ax_bar.set_ylim(0, max(float(mass.max()), float(share.max()), 1e-6)
                    * 1.25)
    ax_bar.grid(axis='y', alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, out_path)

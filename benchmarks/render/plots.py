"""The two figures of a rendering (matplotlib, optional)."""
from __future__ import annotations

import math
import os.path as osp
import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .load import (
    READOUT_NAMES,
    Cells,
    display,
    expected_units,
    order_datasets,
    order_readouts,
)
from .markdown import column_name


def _colours(readouts: Sequence[str]) -> Dict[str, Any]:
    from matplotlib import colormaps
    names = list(READOUT_NAMES) + [r for r in readouts
                                   if r not in READOUT_NAMES]
    cmap = colormaps['tab10' if len(names) <= 10 else 'tab20']
    return {r: cmap(names.index(r) % cmap.N) for r in readouts}


def write_plots(cells: Cells, out_dir: str,
                labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """Writes the two figures; returns the file names written (none when
    matplotlib is missing or there is nothing to plot)."""
    if not cells:
        return []
    try:
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib.figure import Figure
    except ImportError:
        warnings.warn('matplotlib is not installed: no plots', stacklevel=2)
        return []
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    colours = _colours(readouts)
    expected = {d: expected_units([c for (dd, _), c in cells.items()
                                   if dd == d]) for d in datasets}

    # Mean test score per dataset, one dodged point per readout.
    fig = Figure(figsize=(max(6.0, 1.3 * len(datasets) + 4.0), 4.5))
    ax = fig.add_subplot()
    width = 0.8 / len(readouts)
    for j, r in enumerate(readouts):
        xs, ys, es, full = [], [], [], []
        for i, d in enumerate(datasets):
            if (d, r) in cells:
                c = cells[d, r]
                xs.append(i + (j - (len(readouts) - 1) / 2) * width)
                ys.append(c.mean)
                es.append(0.0 if math.isnan(c.std) else c.std)
                full.append(c.n >= expected[d])
        if not xs:
            continue
        ax.errorbar(xs, ys, yerr=es, fmt='none', ecolor=colours[r],
                    capsize=2, lw=1)
        for x, y, f in zip(xs, ys, full, strict=True):
            ax.plot([x], [y], 'o', color=colours[r], ms=5,
                    mfc=colours[r] if f else 'white')
        ax.plot([], [], 'o', color=colours[r], label=display(r))
    for i in range(len(datasets) - 1):
        ax.axvline(i + 0.5, color='0.85', lw=0.8)
    ax.set_xticks(range(len(datasets)))
    ax.set_xticklabels([column_name(d, cells, labels) for d in datasets],
                       rotation=20, ha='right', fontsize=8)
    ax.set_xlim(-0.5, len(datasets) - 0.5)
    ax.set_ylabel('test score (%), mean ± std')
    ax.set_title('Readouts: test accuracy (TU) / ROC-AUC (OGB)')
    ax.grid(axis='y', color='0.9')
    ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(osp.join(out_dir, 'accuracy.png'), dpi=130)

    # Score against seconds per epoch, one panel per dataset.
    ncols = min(3, len(datasets))
    nrows = math.ceil(len(datasets) / ncols)
    spare = nrows * ncols > len(datasets)  # An empty slot holds the legend.
    fig = Figure(figsize=(4.0 * ncols + (0.0 if spare else 2.5),
                          3.3 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, d in enumerate(datasets):
        ax = axes[k // ncols][k % ncols]
        times = []
        for r in readouts:
            if (d, r) not in cells:
                continue
            c = cells[d, r]
            if math.isnan(c.epoch_time):
                continue
            times.append(c.epoch_time)
            ax.errorbar([c.epoch_time], [c.mean],
                        yerr=[0.0 if math.isnan(c.std) else c.std],
                        fmt='o', color=colours[r], capsize=2, ms=5,
                        mfc=colours[r] if c.n >= expected[d] else 'white')
        if times and min(times) > 0 and max(times) / min(times) > 4:
            ax.set_xscale('log')
        ax.set_title(column_name(d, cells, labels), fontsize=9)
        ax.set_xlabel('s / training epoch', fontsize=8)
        ax.set_ylabel('test score (%)', fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(color='0.9')
    for k in range(len(datasets), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles = [axes[0][0].plot([], [], 'o', color=colours[r],
                               label=display(r))[0] for r in readouts]
    if spare:
        axes[-1][-1].set_visible(True)
        axes[-1][-1].axis('off')
        axes[-1][-1].legend(handles=handles, fontsize=8, loc='center')
        fig.tight_layout()
    else:
        fig.legend(handles=handles, fontsize=7, loc='center right')
        fig.tight_layout(rect=(0, 0, 1 - 2.3 / fig.get_figwidth(), 1))
    fig.savefig(osp.join(out_dir, 'accuracy_vs_time.png'), dpi=130)
    return ['accuracy.png', 'accuracy_vs_time.png']

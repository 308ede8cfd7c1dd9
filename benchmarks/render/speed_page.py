"""The page (``speed.md``) and the scaling plot of ``benchmarks/speed.py``
(``python -m benchmarks.speed``)."""
from __future__ import annotations

import argparse
import math
from typing import Any, Dict, List

import sap_graph

Table = Dict[str, Dict[str, Dict[str, float]]]


def render_page(table: Table, memory: Dict[str, float], x_bytes: int,
                header: str, args: argparse.Namespace, sizes: List[Any],
                projection: str, memory_size: Any, sap_defaults: str) -> str:
    """The time, ratio and memory sections of ``speed.md``: ``table`` is
    ``size name -> readout -> {'ms': ...}``, ``sizes`` the ``Size`` rows
    (name, graphs, nodes, channels) and ``projection`` the name of the
    value-projection-only row."""
    by_name = {s.name: s for s in sizes}
    names = list(next(iter(table.values())).keys())
    lines = [
        '# Readout speed and memory', '',
        f'{header}', '',
        f'Command: `python -m benchmarks.speed{args.cmdline}` '
        f'(device {args.device}, median of {args.repeats} interleaved '
        f'repeats after {args.warmup} warm-up rounds; forward+backward with '
        f'`x.requires_grad_()`). Graph sizes are uniform in [n/2, 3n/2]. '
        f'`sap h=k` is `SAPAggregation(d, heads=k)` with the defaults of '
        f'sap_graph {sap_graph.__version__} ({sap_defaults}).',
        '', '## Time per forward+backward (ms)', '',
        '| readout | ' + ' | '.join(
            f'{s} ({by_name[s].graphs}x~{by_name[s].nodes}, '
            f'd={by_name[s].channels})' for s in table) + ' |',
        '|---|' + '---|' * len(table),
    ]
    for name in names:
        cells = []
        for size_name in table:
            ms = table[size_name][name]['ms']
            cells.append('skipped' if math.isnan(ms) else f'{ms:.2f}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    lines += ['', '## Ratios', '',
              'Time of the row readout divided by time of the column '
              'readout, per size (lower is better for SAP).', '',
              '| ratio | ' + ' | '.join(table) + ' |',
              '|---|' + '---|' * len(table)]
    pairs = [('sap h=1', 'mean'), ('sap h=4', 'mean'), ('sap h=8', 'mean')]
    pairs += [(projection, 'mean')]
    pairs += [('sap h=4', peer) for peer in names
              if not peer.startswith('sap') and peer != 'mean']
    for a, b in pairs:
        cells = []
        for size_name in table:
            ta, tb = table[size_name][a]['ms'], table[size_name][b]['ms']
            cells.append('–' if math.isnan(ta) or math.isnan(tb) else
                         f'{ta / tb:.2f}')
        lines.append(f'| {a} / {b} | ' + ' | '.join(cells) + ' |')
    cells = []
    for t in table.values():
        rest = t['sap h=4']['ms'] - t[projection]['ms']
        cells.append(f"{rest / t['mean']['ms']:.2f}")
    lines.append('| (sap h=4 − its value projection) / mean | ' +
                 ' | '.join(cells) + ' |')
    lines += ['', f'`{projection}` times `SAPAggregation.project` alone on '
              'pooled features of the same shape: the `B x 4 x d x d` '
              'multiply-adds of the four per-head value projections '
              '(forward, and twice in backward), which do not depend on the '
              'number of nodes. Where it alone takes more than 3x mean '
              'pooling (d=300), no implementation of this layer can meet '
              'the 3x target; the last row is the rest of SAP\'s time.']
    if memory:
        lines += ['', f'## Extra peak memory of one forward+backward '
                  f'(N={memory_size.graphs * memory_size.nodes:,}, '
                  f'd={memory_size.channels}, size of X = '
                  f'{x_bytes / 2**20:.1f} MiB)', '',
                  'Peak resident memory above the inputs (CPU: `VmHWM` '
                  'after resetting it; includes `x.grad`).', '',
                  '| readout | extra peak (MiB) | / size of X |',
                  '|---|---|---|']
        for name, value in memory.items():
            lines.append(f'| {name} | {value / 2**20:.1f} | '
                         f'{value / x_bytes:.2f} |')
    return '\n'.join(lines) + '\n'


def scaling_section(scaling: Table) -> str:
    """The ``## Scaling`` table under the plot (empty without a sweep)."""
    if not scaling:
        return ''
    text = ('\n## Scaling\n\n![time versus N](speed.png)\n\n' +
            '| readout | ' + ' | '.join(scaling) + ' |\n' + '|---|' +
            '---|' * len(scaling) + '\n')
    for name in next(iter(scaling.values())):
        text += f'| {name} | ' + ' | '.join(
            'skipped' if math.isnan(scaling[k][name]['ms']) else
            f"{scaling[k][name]['ms']:.2f}" for k in scaling) + ' |\n'
    return text


def plot_scaling(scaling: Table, sweep: List[Any], path: str,
                 header: str) -> bool:
    """Time against N per readout (log-log) from the ``sweep`` sizes."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - optional dependency
        print('matplotlib not installed: no plot written')
        return False
    sizes = [s for s in sweep if s.name in scaling]
    nodes = [s.graphs * s.nodes for s in sizes]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in next(iter(scaling.values())):
        ms = [scaling[s.name][name]['ms'] for s in sizes]
        pts = [(n, t) for n, t in zip(nodes, ms, strict=True)
               if not math.isnan(t) and not math.isinf(t)]
        if pts:
            style = '-o' if name.startswith('sap') else '--s'
            ax.plot(*zip(*pts, strict=True), style, label=name, ms=4)
    ax.set_xscale('log')
    ax.set_yscale('log')
    ax.set_xlabel('nodes per batch N (graphs of ~50 nodes, d=64)')
    ax.set_ylabel('forward+backward time (ms)')
    ax.set_title('Readout cost versus batch size', fontsize=10)
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.text(0.01, 0.01, header, fontsize=6)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True

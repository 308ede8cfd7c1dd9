"""Renders the readout grid of ``accuracy.py``: tables, tests and plots.

Reads every finished cell ``<cache>/<dataset>/<readout>/<unit>.json``
(``unit`` is ``fold_<k>`` or ``seed_<s>``) and writes into ``out_dir``:

* ``accuracy.md``: the results table (readouts x datasets, mean ± std in
  percent, published reference numbers in their own rows), average ranks,
  paired sign-flip tests of the default SAP against the best other
  readout, collapsed folds, the protocol as read from the cached configs,
  and the compute time;
* ``accuracy.csv``: one row per (dataset, readout): ``n`` finished
  folds/seeds, ``mean``/``std``/``val_mean`` of the test/validation metric
  in percent, ``epoch_time`` in seconds per training epoch, and more;
* ``accuracy.png`` and ``accuracy_vs_time.png`` (skipped without
  matplotlib).

The work is done by the modules of ``benchmarks/render/`` (pandas, scipy);
this file is the command line and keeps the names other scripts import.

Usage::

    python benchmarks/render_accuracy.py            # default cache/out
    python benchmarks/render_accuracy.py --cache /tmp/grid --out /tmp/out
    # learning rate selected on validation; ENZYMES with node attributes
    python benchmarks/render_accuracy.py \\
        --select_lr_from benchmarks/results/ablation_cache \\
        --override ENZYMES=benchmarks/results/enzymes_attr_cache \\
        --out benchmarks/results/lr_selected
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

HERE = osp.dirname(osp.realpath(__file__))
REPO = osp.dirname(HERE)
#: The default folders of ``accuracy.py`` (``--out`` and ``--cache``).
RESULTS = osp.join(HERE, 'results')
CACHE = osp.join(RESULTS, 'accuracy_cache')
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from render.load import (  # noqa: E402
    DATASET_ORDER,
    LR_SUFFIX,
    READOUT_NAMES,
    Cell,
    Cells,
    apply_overrides,
    comparable,
    constant_loss,
    display,
    expected_units,
    is_sap,
    load_cache,
    order_datasets,
    order_readouts,
    override_label,
    parse_override,
    select_learning_rate,
    unit_key,
)
from render.plots import write_plots  # noqa: E402
from render.protocol import (  # noqa: E402
    protocol_lines,
    time_lines,
    training_lines,
)
from render.references import REFERENCES, Reference  # noqa: E402
from render.stats import (  # noqa: E402
    CHANCE_LOSS,
    DEFAULT_SAP,
    EXACT_MAX,
    PairedResult,
    RankResult,
    average_ranks,
    average_ranks_complete,
    by_validation,
    paired_result,
    paired_tests,
    rank_descending,
    sign_flip_test,
)
from render.tables import (  # noqa: E402
    best_readouts,
    chosen_lr_lines,
    collapse_lines,
    format_cell,
    paired_lines,
    results_lines,
    summary_frame,
    write_csv,
)

__all__ = [
    'CACHE', 'RESULTS', 'DATASET_ORDER', 'LR_SUFFIX', 'READOUT_NAMES',
    'Cell', 'Cells', 'apply_overrides', 'comparable', 'constant_loss',
    'display', 'expected_units', 'is_sap', 'load_cache', 'order_datasets',
    'order_readouts', 'parse_override', 'select_learning_rate', 'unit_key',
    'write_plots', 'protocol_lines', 'time_lines', 'training_lines',
    'REFERENCES', 'Reference', 'CHANCE_LOSS', 'DEFAULT_SAP', 'EXACT_MAX',
    'PairedResult', 'RankResult', 'average_ranks', 'average_ranks_complete',
    'by_validation', 'paired_result', 'paired_tests', 'rank_descending',
    'sign_flip_test', 'best_readouts', 'chosen_lr_lines', 'collapse_lines',
    'format_cell', 'paired_lines', 'results_lines', 'summary_frame',
    'write_csv', 'render', 'render_command', 'render_markdown', 'main',
]

Override = Tuple[str, str]


def _shown(path: str) -> str:
    if osp.abspath(path).startswith(REPO + os.sep):
        return osp.relpath(osp.abspath(path), REPO)
    return path


def render_command(cache: str, out_dir: Optional[str] = None,
                   select_from: Optional[str] = None,
                   overrides: Sequence[Override] = (),
                   default_sap: str = DEFAULT_SAP) -> str:
    """The command that rerenders a folder, naming every non-default
    path and option."""
    words = ['python', 'benchmarks/accuracy.py', '--render']
    if osp.abspath(cache) != osp.abspath(CACHE):
        words += ['--cache', _shown(cache)]
    if select_from is not None:
        words += ['--select_lr_from', _shown(select_from)]
    for dataset, other in overrides:
        words += ['--override', f'{dataset}={_shown(other)}']
    if default_sap != DEFAULT_SAP:
        words += ['--default_sap', default_sap]
    if out_dir is None:
        words += [] if select_from is None else ['--out', '<folder>']
    elif osp.abspath(out_dir) != osp.abspath(RESULTS):
        words += ['--out', _shown(out_dir)]
    return ' '.join(words)


def _header(cells: Cells, cache: str, command: str,
            select_from: Optional[str], overrides: Sequence[Override],
            labels: Dict[str, str]) -> List[str]:
    if select_from is None:
        n_files = sum(c.n for c in cells.values())
        return [
            '# Readout comparison: accuracy', '',
            f'Generated by `benchmarks/render_accuracy.py` from {n_files} '
            f'cell files in `{_shown(cache)}` (`{command}` refreshes it); '
            'do not edit by hand.', '']
    picked = [r['selected'] for c in cells.values()
              for r in c.records.values()]
    low = sum(p.endswith(LR_SUFFIX) for p in picked)
    lines = [
        '# Readout comparison: learning rate selected on validation', '',
        'Generated by `benchmarks/render_accuracy.py` from the cells in '
        f'`{_shown(cache)}` (lr 0.01) and the `*{LR_SUFFIX}` cells in '
        f'`{_shown(select_from)}` (lr 0.001): `{command}`; do not edit by '
        'hand.', '']
    if overrides:
        lines += ['Overridden datasets (both learning rates from another '
                  'cache): ' + '; '.join(
                      f'{labels[d]} from `{_shown(c)}`'
                      for d, c in overrides) + '.', '']
    lines += [
        'Model selection as in Errica et al. 2020: in every fold, each '
        'readout is trained with both learning rates (0.01 and 0.001, '
        'everything else equal) and the run with the higher *validation* '
        'accuracy is scored on the test fold; a tie keeps 0.01. The test '
        'fold never takes part in the choice. Only readouts run at both '
        f'learning rates are shown. The lower rate was chosen in {low} of '
        f'{len(picked)} folds; per readout and dataset in "Chosen learning '
        'rates" below.', '']
    return lines


def render_markdown(cells: Cells, cache: str,
                    plots: Sequence[str] = (),
                    select_from: Optional[str] = None,
                    out_dir: Optional[str] = None,
                    overrides: Sequence[Override] = (),
                    labels: Optional[Dict[str, str]] = None,
                    default_sap: str = DEFAULT_SAP,
                    runs: Optional[Cells] = None) -> str:
    """The text of ``accuracy.md`` (with :obj:`select_from`: of the table
    with the learning rate selected on validation, see
    :func:`select_learning_rate`), rendered into :obj:`out_dir`.
    :obj:`runs` are the cells before that selection (both learning
    rates), for the collapsed folds."""
    labels = labels or {}
    command = render_command(cache, out_dir, select_from, overrides,
                             default_sap)
    lines = _header(cells, cache, command, select_from, overrides, labels)
    if not cells:
        return '\n'.join(lines + ['No finished cells yet.', ''])
    datasets = order_datasets([d for d, _ in cells])
    readouts = order_readouts([r for _, r in cells])
    lines += [
        '## Results', '',
        'Test accuracy (%) on the TU datasets, test ROC-AUC (%) on '
        'ogbg-molhiv: mean ± sample standard deviation over the finished '
        'folds (TU) or seeds (OGB); `(k/n)` marks a cell with only k of '
        'its n folds/seeds finished; `–` means no result. **Bold** is the '
        'best mean of our readouts on a dataset, compared only among the '
        'cells with the most finished folds/seeds on that dataset (the '
        'complete ones once any is complete; cells with fewer are never '
        'bold) and only when at least two such cells exist; ties at the '
        'shown precision are all bold. The published rows beneath are '
        'not our runs: each has its own protocol (notes below), which '
        'for Xu et al. is optimistic.', '']
    lines += results_lines(
        cells, average_ranks(cells, datasets, readouts),
        average_ranks_complete(cells, datasets, readouts), labels)
    if 'accuracy.png' in plots:
        lines += ['![Test score per dataset and readout](accuracy.png)', '',
                  '`accuracy.png`: mean test score per dataset, one colour '
                  'per readout, error bars = std over folds/seeds, hollow '
                  'markers = incomplete cells.', '']
    if 'accuracy_vs_time.png' in plots:
        lines += ['![Test score vs time per epoch](accuracy_vs_time.png)',
                  '', '`accuracy_vs_time.png`: mean test score against '
                  'mean seconds per training epoch, one point per '
                  '(dataset, readout), one panel per dataset.', '']
    lines += paired_lines(paired_tests(cells, datasets, default_sap),
                          default_sap, labels)
    if select_from is not None:
        lines += chosen_lr_lines(cells, labels)
    lines += collapse_lines(cells if runs is None else runs, readouts,
                            datasets, labels)
    lines += protocol_lines(cells, datasets, readouts, labels)
    lines += time_lines(cells, datasets, readouts, labels)
    lines += training_lines(cells, datasets, readouts, labels)
    lines += ['## Files', '',
              '`accuracy.csv`: one row per (dataset, readout) with `n` '
              'finished folds/seeds, `n_expected`, `mean`, `std` and '
              '`val_mean` of the metric in percent, `epoch_time` in '
              'seconds per training epoch, `wall_time` in seconds.', '']
    return '\n'.join(lines)


def render(cache: str, out_dir: str, select_from: Optional[str] = None,
           overrides: Sequence[Override] = (),
           default_sap: str = DEFAULT_SAP) -> str:
    """Renders the cache into :obj:`out_dir` (``accuracy.md``,
    ``accuracy.csv`` and the plots) and returns the markdown text.

    Args:
        cache: the cell cache (lr 0.01 cells).
        out_dir: the output folder.
        select_from: a cache holding the ``*_lr1e-3`` cells: renders the
            table with the learning rate selected on validation instead.
        overrides: ``(dataset, cache)`` pairs: every cell of that dataset
            (both learning rates) comes from that cache instead.
        default_sap: the SAP variant of the paired tests.
    """
    os.makedirs(out_dir, exist_ok=True)
    cells = load_cache(cache)
    labels = {d: override_label(d, c) for d, c in overrides}
    runs = None
    if select_from is not None:
        runs = apply_overrides({**load_cache(select_from), **cells},
                               overrides)
        cells = select_learning_rate(runs)
    elif overrides:
        cells = apply_overrides(cells, overrides)
    write_csv(cells, osp.join(out_dir, 'accuracy.csv'), labels)
    plots = write_plots(cells, out_dir, labels)
    text = render_markdown(cells, cache, plots, select_from, out_dir,
                           overrides, labels, default_sap, runs)
    with open(osp.join(out_dir, 'accuracy.md'), 'w') as f:
        f.write(text)
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The rendering options shared with ``accuracy.py --render``."""
    parser.add_argument(
        '--override', action='append', default=[], metavar='DATASET=CACHE',
        help='take every cell of DATASET (both learning rates) from CACHE, '
        'e.g. ENZYMES=benchmarks/results/enzymes_attr_cache; repeatable '
        '(default: none)')
    parser.add_argument(
        '--default_sap', default=DEFAULT_SAP,
        help=f'SAP variant of the paired tests (default: {DEFAULT_SAP})')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--cache', default=CACHE,
        help='cell cache (default: benchmarks/results/accuracy_cache)')
    parser.add_argument('--out', default=RESULTS,
                        help='output folder (default: benchmarks/results)')
    parser.add_argument('--select_lr_from', default=None,
                        help='cache with the *_lr1e-3 cells: render the '
                        'table with the learning rate selected on '
                        'validation (default: none)')
    add_arguments(parser)
    args = parser.parse_args()
    try:
        overrides = [parse_override(o) for o in args.override]
    except ValueError as e:
        parser.error(str(e))
    render(args.cache, args.out, args.select_lr_from, overrides,
           args.default_sap)
    print(f"Wrote {osp.join(args.out, 'accuracy.md')}")


if __name__ == '__main__':
    main()

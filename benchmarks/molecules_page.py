"""The summary page of the MoleculeNet runs (``molecules.md``): from each
set's comparison folder, the readouts' test scores (the learning rate and
epoch chosen per seed on validation), and the paired tests the issue asks
for: the SAP default and the best SAP variant by validation against the
best simple or learned non-SAP readout by validation, the default
against its frozen-query control (uniform attention), and the default
against each of sum / mean / max (is it ahead of all three, p < 0.05?).

Usage: ``python -m benchmarks.molecules --render``.
"""
from __future__ import annotations

import glob
import json
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence

from sap_graph.experiments.compare.render import fmt
from sap_graph.experiments.compare.report import (
    ComparisonResult,
    PairedTest,
)
from sap_graph.experiments.compare.variants import CONTROLS as VARIANT_CONTROLS

#: The SAP default.
DEFAULT = 'sap'
#: The SAP default and the other candidates, each with its frozen-query
#: control.
CONTROLS = {d: VARIANT_CONTROLS[d] for d in (DEFAULT, 'sap_log',
                                             'sap_rezero')}
#: The simple readouts the default must beat, each with p < 0.05.
SIMPLE = ('sum', 'mean', 'max')
#: The significance level of that test.
ALPHA = 0.05


def readouts_in(folder: str) -> List[str]:
    """The readouts that have finished runs in a comparison folder."""
    from sap_graph.experiments.compare.variants import VARIANTS
    seen = set()
    for path in glob.glob(osp.join(folder, 'runs', '*.json')):
        with open(path) as f:
            seen.add(json.load(f)['readout'])
    order = list(VARIANTS)
    return sorted(seen, key=lambda n: (order.index(n) if n in order
                                       else len(order), n))


def _by_val(result: ComparisonResult, names: Sequence[str]) -> Optional[str]:
    """The best of :obj:`names` by the comparison's validation rank (on
    the seeds every readout finished, while a set is partial)."""
    rows = [r for r in result.rows
            if r.readout in names and not math.isnan(r.rank)]  # Ranked.
    return min(rows, key=lambda r: r.rank).readout if rows else None


def _best_sap(result: ComparisonResult) -> Optional[str]:
    """The best SAP design (not a frozen-query control) by validation."""
    return _by_val(result, [r.readout for r in result.rows
                            if r.readout.startswith('sap')
                            and r.readout not in CONTROLS.values()])


def tests_of(result: ComparisonResult) -> List[tuple]:
    """(what, test) rows: default and best SAP by validation against the
    best non-SAP readout by validation; each default against its control."""
    names = [r.readout for r in result.rows]
    base = _by_val(result, [n for n in names if not n.startswith('sap')])
    best_sap = _best_sap(result)
    out = []
    if base and DEFAULT in names:
        out.append(('default vs best non-SAP', result.paired(DEFAULT, base)))
    if base and best_sap and best_sap != DEFAULT:
        out.append(('best SAP vs best non-SAP', result.paired(best_sap, base)))
    for design, control in CONTROLS.items():
        if design in names and control in names:
            what = 'default' if design == DEFAULT else design
            out.append((f'{what} vs frozen control',
                        result.paired(design, control)))
    return out


def against_simple(result: ComparisonResult,
                   readout: str = DEFAULT) -> List[PairedTest]:
    """:obj:`readout` (the default) against each simple readout, paired by
    seed."""
    names = [r.readout for r in result.rows]
    if readout not in names:
        return []
    return [result.paired(readout, n) for n in SIMPLE if n in names]


def ahead_of_all(tests: Sequence[PairedTest], higher: bool) -> bool:
    """Whether a readout beat every simple readout (:obj:`tests`, its
    :func:`against_simple`): mean difference in its favour and two-sided
    p below :data:`ALPHA` against each."""
    sign = 1.0 if higher else -1.0
    return len(tests) == len(SIMPLE) and all(
        sign * t.mean_diff > 0 and t.p_value < ALPHA for t in tests)


def simple_lines(results: Dict[str, ComparisonResult]) -> List[str]:
    head = ' | '.join(f'vs {n}' for n in SIMPLE)
    out = ['## The default and the best SAP variant against each simple '
           'readout', '',
           'Per seed, the test score of the default (and of the best SAP '
           'variant by validation, where that is another, and of its '
           'frozen-query control) minus that of sum / mean / max pooling '
           '(W/T/L and exact sign-flip p). Ahead of '
           f'all three means a mean difference in its favour and p < '
           f'{ALPHA:g} against each.', '',
           f'| set | seeds | readout | {head} | ahead of all three |',
           '| --- | ---: | --- |' + ' ---: |' * len(SIMPLE) + ' :---: |']
    for name, res in results.items():
        best = _best_sap(res)
        control = VARIANT_CONTROLS.get(best) if best != DEFAULT else None
        for readout in dict.fromkeys((DEFAULT, best, control)):
            tests = against_simple(res, readout) if readout else []
            if not tests:
                continue
            cells = [f'{fmt(t.mean_diff, res.metric, True)} '
                     f'({t.wins}/{t.ties}/{t.losses}, p {_p(t)})'
                     for t in tests]
            seeds = max(len(t.units) for t in tests)
            what = ('default' if readout == DEFAULT else
                    f'{readout} (best SAP)' if readout == best else
                    f'{readout} (its control)')
            out.append(f'| {name} | {seeds} | {what} | ' + ' | '.join(cells)
                       + ' | ' + ('yes' if ahead_of_all(
                           tests, res.higher_is_better) else 'no') + ' |')
    return out + ['']


def _p(t: PairedTest) -> str:
    return 'n/a' if math.isnan(t.p_value) else f'{t.p_value:.3f}'


def page(results: Dict[str, ComparisonResult], budget: str) -> str:
    names: List[str] = []
    for res in results.values():
        names += [r.readout for r in res.rows if r.readout not in names]
    out = ['# Readouts on MoleculeNet', '',
           'Generated by `python -m benchmarks.molecules --render` from the '
           'comparison folders `benchmarks/results/molecules/<set>/` '
           '(each with its own report.md, results.csv and compare.png).', '',
           budget, '',
           '## Test scores (mean ± std over seeds; bold: best by '
           'validation)', '',
           '| set | metric | seeds | ' + ' | '.join(names) + ' |',
           '| --- | --- | ---: |' + ' ---: |' * len(names)]
    for name, res in results.items():
        cells = []
        for n in names:
            row = next((r for r in res.rows if r.readout == n), None)
            text = ('–' if row is None else
                    f'{fmt(row.test_mean, res.metric)} ± '
                    f'{fmt(row.test_std, res.metric)}')
            cells.append(f'**{text}**' if n == res.best else text)
        arrow = '↑' if res.higher_is_better else '↓'
        n_units = max((r.n for r in res.rows), default=0)
        if res.missing:
            n_units = f'{n_units} (partial: {res.missing} runs to go)'
        out.append(f'| {name} | {res.metric} {arrow} | {n_units} | '
                   + ' | '.join(cells) + ' |')
    out += ['', '## Paired tests', '',
            'Per seed, test score of the first readout minus the second '
            '(readouts chosen by mean validation score, never by test); '
            'W/T/L from the first readout\'s side; exact two-sided '
            'sign-flip p (with n seeds the smallest p is 2 / 2^n).', '',
            '| set | test | readouts | mean difference | W/T/L | p |',
            '| --- | --- | --- | ---: | :---: | ---: |']
    for name, res in results.items():
        for what, t in tests_of(res):
            out.append(f'| {name} | {what} | {t.readout} vs {t.against} | '
                       f'{fmt(t.mean_diff, res.metric, True)} | '
                       f'{t.wins}/{t.ties}/{t.losses} | {_p(t)} |')
    out += [''] + simple_lines(results)
    return '\n'.join(out)


__all__ = ['against_simple', 'ahead_of_all', 'page', 'readouts_in',
           'tests_of']

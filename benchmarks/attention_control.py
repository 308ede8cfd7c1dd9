"""Does SAP's attention pay? Each attention design against its
frozen-query control (the same layer with its queries frozen at zero, so
uniform attention), from the output folders of ``sap-graph compare``, and
the sharpness of a trained model's attention (issue 25, item 2).

The designs and their controls (:data:`DESIGNS`): the default ``sap``
(residual max) and ``sap_sharp`` (its scores scaled by 10, so the queries
move the weights ten times faster) against ``sap_frozen``; ``sap_log``
(residual mean, log-size scaler) against ``sap_log_frozen``;
``sap_rezero`` (the attention gated by a ReZero gamma) against
``sap_rezero_frozen``. For every dataset folder (a ``sap-graph compare``
output with a design and its control among its readouts, by default every
folder under
``benchmarks/results/attention/`` (TU, k-fold) and
``benchmarks/results/molecules/`` (scaffold splits, seeds)), the runs
chosen on validation (the learning rate per fold or seed, by
:func:`sap_graph.experiments.compare.report.summarise`) are paired unit by
unit with :func:`~sap_graph.experiments.compare.report.paired_test`, first
on their validation scores, then on their test scores: mean difference
(design minus control), W/T/L and the exact two-sided sign-flip p-value.

The sharpness comes from one ``sap-graph train --checkpoint`` model per
dataset and design: ``--checkpoint DATASET=PATH`` reads its attention over
the whole dataset (:func:`~sap_graph.experiments.explain.attention_statistics`)
and keeps the per-head summary in ``<DATASET>/sharpness-<design>.json``
(the design is read from the checkpoint's readout options; checkpoints are
not committed), which later renders read.

Usage::

    python -m benchmarks.attention_control \\
        --checkpoint MUTAG=runs/mutag_sap.pt MUTAG=runs/mutag_sharp.pt
    python -m benchmarks.attention_control          # render only

writes ``benchmarks/results/attention/attention_control.md``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import os.path as osp
import re
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from sap_graph.experiments.compare.variants import CONTROLS

from .attention_sharpness import (
    checkpoint_sharpness,
    mean_head,
    read_sharpness,
    sharpness_table,
)

HERE = osp.dirname(osp.realpath(__file__))
RESULTS = osp.join(HERE, 'results', 'attention')
MOLECULES = osp.join(HERE, 'results', 'molecules')
#: Each attention design and its frozen-query control.
DESIGNS: Dict[str, str] = CONTROLS


def load_records(folder: str) -> List[Dict[str, Any]]:
    """The finished runs of a ``sap-graph compare`` folder."""
    records = []
    for path in sorted(glob.glob(osp.join(folder, 'runs', '*.json'))):
        with open(path) as f:
            records.append(json.load(f))
    if not records:
        raise FileNotFoundError(f"no finished runs in '{folder}/runs'")
    return records


def _unit_order(unit: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t
                 for t in re.split(r'(\d+)', unit))


def control_comparison(records: Sequence[Dict[str, Any]], name: str,
                       sap: str = 'sap', control: str = 'sap_frozen'
                       ) -> Dict[str, Any]:
    """Chooses the learning rate per readout and fold on validation and
    pairs :obj:`sap` with :obj:`control` on the folds both finished.

    Returns:
        A dict: :obj:`'result'` (the
        :class:`~sap_graph.experiments.compare.ComparisonResult` of all
        readouts), :obj:`'val'` and
        :obj:`'test'` (the
        :class:`~sap_graph.experiments.compare.PairedTest` of sap minus
        control on validation and on test scores), :obj:`'lrs'` (how
        often each learning rate was chosen for :obj:`sap`) and
        :obj:`'unfinished'` (folds some design or control has not finished
        at every learning rate; each pair uses the folds both finished).
    """
    from sap_graph.experiments.compare import parse_variant
    from sap_graph.experiments.compare.report import summarise
    from sap_graph.experiments.train.metrics import METRICS

    names = list(dict.fromkeys(r['readout'] for r in records))
    for needed in (sap, control):
        if needed not in names:
            raise ValueError(f"{name}: no '{needed}' runs (readouts: "
                             f"{', '.join(names)})")
    names.sort(key=lambda n: (n not in (sap, control), n != sap))
    metrics = {r['metric'] for r in records}
    if len(metrics) != 1:
        raise ValueError(f"{name}: runs with several metrics {metrics}")
    metric = metrics.pop()
    higher = METRICS.get(metric, True)
    every = sorted({r['unit'] for r in records}, key=_unit_order)
    # summarise() counts a readout's fold once it is finished at every
    # learning rate; each design is paired with its control on the folds
    # both finished.
    result = summarise(records, [parse_variant(n) for n in names], every,
                       {'name': name}, metric, higher, 'kfold', {},
                       len(records))
    paired = [n for n in names if n in DESIGNS or n in DESIGNS.values()]
    return pair({'result': result,
                 'unfinished': [u for u in every if not all(
                     (n, u) in result.selected for n in paired)]},
                sap, control)


def pair(cmp: Dict[str, Any], sap: str, control: str) -> Dict[str, Any]:
    """:obj:`cmp` (a :func:`control_comparison`) with :obj:`sap` paired
    with :obj:`control` instead, from the same chosen runs."""
    from sap_graph.experiments.compare.report import paired_test
    res = cmp['result']
    on_val = {k: {**r, 'test': r['val']} for k, r in res.selected.items()}
    return {**cmp,
            'val': paired_test(on_val, sap, control, res.units,
                               res.higher_is_better),
            'test': res.paired(sap, control),
            'lrs': Counter(res.row(sap).lrs.values())}


def _pct(x: float, metric: str) -> str:
    return f'{100 * x:.2f}' if metric in ('acc', 'rocauc') else f'{x:.4f}'


def _signed(x: float, metric: str) -> str:
    return ('+' if x >= 0 else '') + _pct(x, metric)


def _report_command(folder: str) -> Optional[str]:
    path = osp.join(folder, 'report.md')
    if not osp.exists(path):
        return None
    with open(path) as f:
        blocks = re.findall(r'```(?:bash)?\n(.*?)```', f.read(), re.S)
    return blocks[-1].strip() if blocks else None


def _units_word(units: Sequence[str]) -> str:
    return 'seeds' if units and units[0].startswith('seed') else 'folds'


def dataset_section(name: str, cmps: Dict[str, Dict[str, Any]],
                    sharp: Dict[str, Dict[str, Any]],
                    command: Optional[str]) -> List[str]:
    """The page section of one dataset: its readouts, each design against
    the control (:obj:`cmps`, by design) and the measured sharpness."""
    res = next(iter(cmps.values()))['result']
    m = res.metric
    word = _units_word(next(iter(cmps.values()))['val'].units)
    out = [f'## {name}', '',
           f'Runs chosen on validation (learning rate per '
           f'{word[:-1]}); metric {m}'
           f'{" (%)" if m in ("acc", "rocauc") else ""}.', '',
           f'| readout | {word} | val mean | test mean ± std | lr chosen '
           f'({word}) |', '| --- | --- | --- | --- | --- |']
    for row in res.rows:
        lrs = Counter(row.lrs.values())
        chosen = ', '.join(f'{lr:g}: {k}' for lr, k in sorted(lrs.items()))
        out.append(f'| {row.readout} | {row.n} | {_pct(row.val_mean, m)} | '
                   f'{_pct(row.test_mean, m)} ± {_pct(row.test_std, m)} | '
                   f'{chosen} |')
    unfinished = next(iter(cmps.values()))['unfinished']
    if unfinished:
        out += ['', f"Not finished by every design and control at every "
                f"learning rate (each pair uses the {word} both "
                f"finished): {', '.join(unfinished)}."]
    out += ['', '**Each design minus its control**, paired by '
            f'{word[:-1]} (W/T/L: {word} where the design is better / '
            f'equal / worse; p: exact two-sided sign-flip test):', '',
            f'| design | control | scores | {word} | mean difference | '
            f'W/T/L | p |', '| --- | --- | --- | --- | --- | --- | --- |']
    for design, cmp in cmps.items():
        for label in ('val', 'test'):
            t = cmp[label]
            out.append(f'| {design} | {DESIGNS[design]} | '
                       f'{"validation" if label == "val" else "test"} | '
                       f'{len(t.units)} | {_signed(t.mean_diff, m)} | '
                       f'{t.wins}/{t.ties}/{t.losses} | {t.p_value:.4f} |')
    out.append('')
    for design in cmps:
        if design in sharp:
            out += sharpness_table(sharp[design])
        else:
            out += [f'Attention sharpness of `{design}`: no checkpoint '
                    f'measured.', '']
    if command:
        out += ['Comparison:', '', '```bash', command, '```', '']
    return out


def _summary(rows: List[List[str]]) -> List[str]:
    return ['## Summary', '',
            'Per dataset and design: the design minus the control on '
            'validation (the choice) and on test (read after it), '
            'mean difference (W/T/L, p); and the sharpness of one trained '
            'model, averaged over its heads (uniform: H / log n = 1 and '
            'every node attended).', '',
            '| dataset | metric | design - control | validation | test | '
            'attended '
            'exp(H) of n | H / log n |',
            '| --- | --- | --- | --- | --- | --- | --- |',
            *('| ' + ' | '.join(r) + ' |' for r in rows), '']


def _cell(t: Any, m: str) -> str:
    return (f'{_signed(t.mean_diff, m)} ({t.wins}/{t.ties}/{t.losses}, '
            f'p {t.p_value:.3f})')


def render(folders: Sequence[str]) -> str:
    """The page for the dataset folders :obj:`folders` (each a ``sap-graph
    compare`` output folder named after its dataset)."""
    sections, summary, measured = [], [], []
    for folder in folders:
        name = osp.basename(osp.normpath(folder))
        records = load_records(folder)
        present = {r['readout'] for r in records}
        pairs = [(d, c) for d, c in DESIGNS.items() if {d, c} <= present]
        if not pairs:
            raise ValueError(f"{name}: no design with its control among "
                             f"its readouts")
        # One choice of runs per folder, paired once per design.
        first = control_comparison(records, name, *pairs[0])
        cmps = {d: pair(first, d, c) for d, c in pairs}
        sharp = read_sharpness(folder)
        measured += [(name, d) for d in cmps if d in sharp]
        sections += dataset_section(name, cmps, sharp,
                                    _report_command(folder))
        for design, cmp in cmps.items():
            m = cmp['result'].metric
            s = sharp.get(design)
            higher = cmp['result'].higher_is_better
            summary.append([
                name, f"{m} {'↑' if higher else '↓'}",
                f'`{design}` - `{DESIGNS[design]}`',
                _cell(cmp['val'], m), _cell(cmp['test'], m),
                '' if s is None else (f"{mean_head(s, 'attended'):.1f} of "
                                      f"{s['heads'][0]['nodes']:.1f}"),
                '' if s is None else f"{mean_head(s, 'entropy_ratio'):.3f}"])
    pairs = '; '.join(f'`{d}` against `{c}`' for d, c in DESIGNS.items())
    lines = ['# Does the attention of SAP pay?', '',
             f'Each attention design against its control, the same layer '
             f'with its queries frozen at zero (uniform attention: '
             f'`sap_frozen` is the mean of the values plus max pooling, '
             f'`sap_log_frozen` log(1 + n) x the mean of the values plus '
             f'mean pooling, `sap_rezero_frozen` a learned gamma x the mean '
             f'of the values plus max pooling): {pairs}; same model, budget '
             f'and folds or '
             f'seeds. Generated by `python -m benchmarks.attention_control` '
             f'from '
             f'`sap-graph compare` folders (TU sets: '
             f'`benchmarks/results/attention/`; MoleculeNet: '
             f'`benchmarks/results/molecules/`).', '', *_summary(summary),
             *sections]
    args = ' '.join(f'{n}=<{n}-{d}.pt>' for n, d in measured)
    lines += ['## This page', '', '```bash',
              'python -m benchmarks.attention_control' +
              (f' --checkpoint {args}' if args else ''), '```', '']
    return '\n'.join(lines).rstrip() + '\n'


def dataset_folders(roots: Sequence[str]) -> List[str]:
    """Every compare folder under :obj:`roots` with the control's runs."""
    out = []
    for root in roots:
        if not osp.isdir(root):
            continue
        for d in sorted(os.listdir(root)):
            runs = osp.join(root, d, 'runs')
            if osp.isdir(runs) and any(glob.glob(
                    osp.join(runs, f'{c}-*.json'))
                    for c in set(DESIGNS.values())):
                out.append(osp.join(root, d))
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', nargs='+', default=[RESULTS, MOLECULES],
                        help='folders of the compare folders (default: '
                        'benchmarks/results/attention and '
                        'benchmarks/results/molecules)')
    parser.add_argument('--datasets', nargs='+', default=None,
                        help='compare folders to read (default: every '
                        'subfolder with runs of the control)')
    parser.add_argument('--checkpoint', nargs='+', default=[],
                        metavar='DATASET=PATH',
                        help='measure the attention of these checkpoints '
                        'into <DATASET>/sharpness-<design>.json first')
    parser.add_argument('--out', default=None, help='the page (default: '
                        'attention_control.md in the first root)')
    args = parser.parse_args(argv)
    folders = dataset_folders(args.root)
    if args.datasets:
        folders = [f for f in folders
                   if osp.basename(f) in set(args.datasets)]
    by_name = {osp.basename(f): f for f in folders}
    for item in args.checkpoint:
        name, sep, path = item.partition('=')
        if not sep:
            parser.error(f"--checkpoint takes DATASET=PATH (got '{item}')")
        sharp = {**checkpoint_sharpness(path), 'name': name}
        folder = by_name.get(name, osp.join(args.root[0], name))
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, f"sharpness-{sharp['design']}.json"),
                  'w') as f:
            json.dump(sharp, f, indent=1, sort_keys=True)
            f.write('\n')
    text = render(folders)
    out = args.out or osp.join(args.root[0], 'attention_control.md')
    with open(out, 'w') as f:
        f.write(text)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()

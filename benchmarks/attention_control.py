"""Does the attention of the SAP default pay? The SAP default against its
frozen-query control (``sap_frozen``: the same layer with its queries
frozen at zero, so uniform attention, i.e. the mean of the values plus max
pooling), from the output folders of ``sap-graph compare``, and the
sharpness of a trained default's attention (issue 25, item 2).

For every dataset folder (``benchmarks/results/attention/<DATASET>/``, a
``sap-graph compare`` output with ``sap`` and ``sap_frozen`` among its
readouts), the runs chosen on validation (the learning rate per fold, by
:func:`sap_graph.experiments.compare.report.summarise`) are paired fold by
fold with :func:`~sap_graph.experiments.compare.report.paired_test`, first
on their validation scores, then on their test scores: mean difference
(sap minus control), W/T/L and the exact two-sided sign-flip p-value.

The sharpness comes from one ``sap-graph train --checkpoint`` model per
dataset: ``--checkpoint DATASET=PATH`` reads its attention over the whole
dataset (:func:`~sap_graph.experiments.explain.attention_statistics`) and
keeps the per-head summary in ``<DATASET>/sharpness.json`` (checkpoints are
not committed), which later renders read.

Usage::

    python -m benchmarks.attention_control \\
        --checkpoint MUTAG=runs/attn_mutag.pt PROTEINS=runs/attn_proteins.pt
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
import shlex
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

HERE = osp.dirname(osp.realpath(__file__))
RESULTS = osp.join(HERE, 'results', 'attention')
SAP, CONTROL = 'sap', 'sap_frozen'


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
                       sap: str = SAP, control: str = CONTROL
                       ) -> Dict[str, Any]:
    """Chooses the learning rate per readout and fold on validation and
    pairs :obj:`sap` with :obj:`control` on the folds both finished.

    Returns:
        A dict: :obj:`'result'` (the
        :class:`~sap_graph.experiments.compare.ComparisonResult` of all
        readouts), :obj:`'val'` and :obj:`'test'` (the
        :class:`~sap_graph.experiments.compare.PairedTest` of sap minus
        control on validation and on test scores), :obj:`'lrs'` (how
        often each learning rate was chosen for :obj:`sap`) and
        :obj:`'unfinished'` (folds left out: some readout has not finished
        them at every learning rate).
    """
    from sap_graph.experiments.compare import parse_variant
    from sap_graph.experiments.compare.report import paired_test, summarise
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
    lrs = {r['lr'] for r in records}
    done: Dict[tuple, set] = {}
    for r in records:
        done.setdefault((r['readout'], r['unit']), set()).add(r['lr'])
    every = sorted({r['unit'] for r in records}, key=_unit_order)
    # A fold counts once every readout finished it at every learning rate
    # (the choice on validation of a half-finished fold is not the one
    # the finished comparison makes).
    units = [u for u in every if all(done.get((n, u)) == lrs for n in names)]
    records = [r for r in records if r['unit'] in units]
    result = summarise(records, [parse_variant(n) for n in names], units,
                       {'name': name}, metric, higher, 'kfold', {},
                       len(records))
    on_val = {k: {**r, 'test': r['val']} for k, r in result.selected.items()}
    return {
        'result': result,
        'val': paired_test(on_val, sap, control, units, higher),
        'test': paired_test(result.selected, sap, control, units, higher),
        'lrs': Counter(result.row(sap).lrs.values()),
        'unfinished': [u for u in every if u not in units],
    }


def checkpoint_sharpness(checkpoint: str) -> Dict[str, Any]:
    """Per head, how sharp the attention of a ``sap-graph train
    --checkpoint`` model is over every graph of its dataset, with the
    model's training budget."""
    from sap_graph.experiments.checkpoint import read_checkpoint
    from sap_graph.experiments.explain import (
        attention_sharpness,
        attention_statistics,
        load_explained,
    )
    model, task = load_explained(checkpoint)
    rows = attention_sharpness(attention_statistics(model, task.dataset))
    state = read_checkpoint(checkpoint)
    train = state['config'].get('train') or {}
    selected = state['config'].get('selected') or {}
    keep = ('dataset', 'readout', 'heads', 'readout_kwargs', 'epochs', 'lr',
            'lr_step', 'folds', 'seed', 'hidden_channels', 'num_layers')
    return {'dataset': task.name, 'heads': rows,
            'train': {k: train.get(k) for k in keep},
            'selected': {k: selected.get(k) for k in (
                'fold', 'unit', 'best_epoch', f'val_{task.metric}',
                f'test_{task.metric}')}}


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


def _train_command(s: Dict[str, Any]) -> str:
    t = s['train']
    args = ['sap-graph', 'train', '--dataset', t['dataset'], '--readout',
            t['readout'], '--epochs', t['epochs'], '--lr', t['lr'],
            '--lr_step', t['lr_step'], '--folds', t['folds'],
            '--checkpoint', f"<{s['dataset']}.pt>"]
    if t.get('readout_kwargs'):
        args[5:5] = ['--readout_kwargs', json.dumps(t['readout_kwargs'])]
    return ' '.join(shlex.quote(str(a)) for a in args)


def dataset_section(name: str, cmp: Dict[str, Any],
                    sharp: Optional[Dict[str, Any]],
                    command: Optional[str]) -> List[str]:
    res = cmp['result']
    m = res.metric
    out = [f'## {name}', '',
           f'Runs chosen on validation (learning rate per fold); metric '
           f'{m}{" (%)" if m in ("acc", "rocauc") else ""}.', '',
           '| readout | folds | val mean | test mean ± std | lr chosen '
           '(folds) |', '| --- | --- | --- | --- | --- |']
    for row in res.rows:
        lrs = Counter(row.lrs.values())
        chosen = ', '.join(f'{lr:g}: {k}' for lr, k in sorted(lrs.items()))
        out.append(f'| {row.readout} | {row.n} | {_pct(row.val_mean, m)} | '
                   f'{_pct(row.test_mean, m)} ± {_pct(row.test_std, m)} | '
                   f'{chosen} |')
    if cmp['unfinished']:
        out += ['', f"Left out, not finished by every readout at every "
                f"learning rate: {', '.join(cmp['unfinished'])}."]
    out += ['', f'**{SAP} minus {CONTROL}**, paired by fold (W/T/L: folds '
            f'where {SAP} is better / equal / worse; p: exact two-sided '
            f'sign-flip test):', '',
            '| scores | folds | mean difference | W/T/L | p |',
            '| --- | --- | --- | --- | --- |']
    for label in ('val', 'test'):
        t = cmp[label]
        out.append(f'| {"validation" if label == "val" else "test"} | '
                   f'{len(t.units)} | {_signed(t.mean_diff, m)} | '
                   f'{t.wins}/{t.ties}/{t.losses} | {t.p_value:.4f} |')
    out.append('')
    if sharp is None:
        out += ['Attention sharpness: no checkpoint measured.', '']
    else:
        h0 = sharp['heads'][0]
        sel = sharp['selected']
        unit = sel.get('unit') or (None if sel.get('fold') is None
                                   else f"fold_{sel['fold']}")
        out += [f"Attention of one trained `{SAP}` model over all "
                f"{h0['graphs']} graphs with more than one node (mean size "
                f"{h0['nodes']:.1f} nodes; uniform attention: exp(H) = n, "
                f"H / log n = 1, peak weight 1/n, median "
                f"{h0['uniform_median']:.3f}). The model is the fold chosen "
                f"on validation ({unit}, epoch "
                f"{sel.get('best_epoch')}) of", '', '```bash',
                _train_command(sharp), '```', '',
                '| head | attended exp(H) | H / log n | peak weight, median |'
                ' peak weight, max | graphs with peak > 0.5 |',
                '| --- | --- | --- | --- | --- | --- |']
        for h, r in enumerate(sharp['heads'], 1):
            out.append(f"| {h} | {r['attended']:.1f} of {r['nodes']:.1f} | "
                       f"{r['entropy_ratio']:.3f} | {r['peak_median']:.3f} | "
                       f"{r['peak_max']:.3f} | {100 * r['sharp_share']:.0f}% "
                       f"|")
        out.append('')
    if command:
        out += ['Comparison:', '', '```bash', command, '```', '']
    return out


def render(root: str, datasets: Sequence[str]) -> str:
    lines = ['# Does the attention of the SAP default pay?', '',
             f'`{SAP}` (the SAP default) against `{CONTROL}` (the same layer '
             f'with its queries frozen at zero: uniform attention, i.e. the '
             f'mean of the values plus max pooling), same model, budget and '
             f'folds. Generated by `python -m benchmarks.attention_control` '
             f'from the `sap-graph compare` folders under '
             f'`benchmarks/results/attention/`.', '']
    measured = []
    for name in datasets:
        folder = osp.join(root, name)
        cmp = control_comparison(load_records(folder), name)
        path = osp.join(folder, 'sharpness.json')
        sharp = None
        if osp.exists(path):
            with open(path) as f:
                sharp = json.load(f)
            measured.append(name)
        lines += dataset_section(name, cmp, sharp, _report_command(folder))
    args = ' '.join(f'{n}=<{n}.pt>' for n in measured)
    lines += ['## This page', '', '```bash',
              'python -m benchmarks.attention_control' +
              (f' --checkpoint {args}' if args else ''), '```', '']
    return '\n'.join(lines).rstrip() + '\n'


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', default=RESULTS,
                        help='folder of the compare folders (default: '
                        'benchmarks/results/attention)')
    parser.add_argument('--datasets', nargs='+', default=None,
                        help='compare folders to read (default: every '
                        'subfolder with a runs/ folder)')
    parser.add_argument('--checkpoint', nargs='+', default=[],
                        metavar='DATASET=PATH',
                        help='measure the attention of these checkpoints '
                        'into <DATASET>/sharpness.json first')
    args = parser.parse_args(argv)
    for item in args.checkpoint:
        name, sep, path = item.partition('=')
        if not sep:
            parser.error(f"--checkpoint takes DATASET=PATH (got '{item}')")
        sharp = checkpoint_sharpness(path)
        os.makedirs(osp.join(args.root, name), exist_ok=True)
        with open(osp.join(args.root, name, 'sharpness.json'), 'w') as f:
            json.dump(sharp, f, indent=1, sort_keys=True)
            f.write('\n')
    datasets = args.datasets or sorted(
        d for d in os.listdir(args.root)
        if osp.isdir(osp.join(args.root, d, 'runs')))
    text = render(args.root, datasets)
    out = osp.join(args.root, 'attention_control.md')
    with open(out, 'w') as f:
        f.write(text)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()

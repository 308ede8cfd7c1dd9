"""The protocol, compute-time and training-diagnostics sections, read
from the configs and fields stored with the cells."""
from __future__ import annotations

import json
import statistics
from typing import Any, Dict, List, Mapping, Optional, Sequence

from .load import METRIC_NAMES, Cells, constant_loss, display
from .markdown import fmt_duration, label, rows_table
from .stats import CHANCE_LOSS


def _distinct(values: Sequence[Any]) -> str:
    seen: List[str] = []
    for v in values:
        text = v if isinstance(v, str) else json.dumps(v)
        if text not in seen:
            seen.append(text)
    return ' / '.join(seen) if seen else '?'


def _lr_text(config: Dict[str, Any]) -> str:
    text = f"Adam {config.get('lr', '?'):g}" if isinstance(
        config.get('lr'), (int, float)) else 'Adam ?'
    step = config.get('lr_step')
    if step:
        text += f", x{config.get('lr_gamma', 0.5):g} every {step} epochs"
    else:
        text += ', constant'
    if config.get('weight_decay'):
        text += f", wd {config['weight_decay']:g}"
    return text


def _units_text(record: Dict[str, Any]) -> str:
    config = record.get('config', {})
    if record.get('unit', '').startswith('seed_') or \
            record.get('protocol') == 'ogb_official_split':
        seeds = config.get('seeds') or []
        return f'{len(seeds)} seeds ({_distinct([seeds])})'
    return (f"{config.get('folds', '?')}-fold CV, val "
            f"{config.get('val_ratio', 0.1):.0%} of train fold, split "
            f"seed {config.get('seed', '?')}")


def _model_text(config: Dict[str, Any]) -> str:
    return (f"{str(config.get('conv', '?')).upper()} "
            f"{config.get('num_layers', '?')} x "
            f"{config.get('hidden_channels', '?')}, JK "
            f"{config.get('jk', 'last')}")


def _dropout_text(config: Dict[str, Any]) -> str:
    return (f"{config.get('dropout', '?')} head / "
            f"{config.get('layer_dropout', '?')} layers")


def _versions_text(versions: Dict[str, Any]) -> str:
    first = ['python', 'torch', 'torch_geometric', 'ogb', 'numpy',
             'sap_graph']
    keys = [k for k in first if k in versions]
    keys += sorted(set(versions) - set(keys))
    return ', '.join(f'{k} {versions[k]}' for k in keys
                     if versions[k] is not None)


def _readout_text(config: Dict[str, Any]) -> str:
    name = config.get('readout', '?')
    text = f'`{name}`'
    if name in ('sap', 'gmt', 'set_transformer'):
        text += f", heads={config.get('heads')}"
    if name == 'sap':
        text += f", concat={config.get('concat')}"
    if config.get('readout_kwargs'):
        text += f", {json.dumps(config['readout_kwargs'], sort_keys=True)}"
    return text


def protocol_lines(cells: Cells, datasets: Sequence[str],
                   readouts: Sequence[str],
                   labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """The protocol, generated from the configs stored with the cells."""
    records = {d: [r for (dd, _), c in cells.items() if dd == d
                   for r in c.records.values()] for d in datasets}
    lines = ['## Protocol', '']
    protocols = {r.get('protocol') for rs in records.values() for r in rs}
    if 'stratified_kfold_cv' in protocols:
        lines += [
            '**Cross-validated datasets** (`stratified_kfold_cv`): '
            'stratified k-fold cross-validation as in Errica et al. 2020. '
            'In every fold a fresh model (seeded with seed + fold) is '
            'trained on the training part, the epoch is selected on a '
            'stratified validation split carved from the training fold, '
            'and only the selected weights are scored once on the test '
            'fold. All readouts share the folds, so their per-fold scores '
            'are paired. The table reports test accuracy.', '']
    if 'ogb_official_split' in protocols:
        lines += [
            '**OGB datasets** (`ogb_official_split`): the official split '
            'and the OGB `Evaluator`; the test ROC-AUC is read at the epoch '
            'with the best validation ROC-AUC; one cell per seed.', '']
    if 'ogbg-molhiv' in datasets:
        cfgs = [r.get('config', {}) for r in records['ogbg-molhiv']]
        hidden = _distinct([c.get('hidden_channels') for c in cfgs])
        epochs = _distinct([c.get('epochs') for c in cfgs])
        seeds = _distinct([len(c.get('seeds') or []) for c in cfgs])
        lines += [
            '**ogbg-molhiv caveats.** (1) The local copy was rebuilt from '
            "the MoleculeNet SMILES with ogb's own `smiles2graph` under a "
            'newer RDKit (2022.09.5; see `shared/data/README.md`): graph '
            'structure, labels and the scaffold split are byte-identical '
            'to the official release, but a few atom/bond feature values '
            'differ (about 300 atom-feature values in 241 of 41,127 '
            'molecules, mostly radical electrons / hybridisation of metal '
            f'atoms). (2) The model budget is reduced: hidden width {hidden}'
            f' and {epochs} epochs over {seeds} seeds here, against 300 '
            'hidden, 100 epochs and 10 seeds for the OGB leaderboard GIN, '
            'so the leaderboard rows are context, not a like-for-like '
            'comparison.', '']
    rows = []
    for d in datasets:
        rs = records[d]
        cfgs = [r.get('config', {}) for r in rs]
        rows.append([
            label(d, labels), _distinct([r.get('protocol', '?') for r in rs]),
            _distinct([METRIC_NAMES.get(r.get('metric', 'acc'), '?')
                       for r in rs]),
            _distinct([_model_text(c) for c in cfgs]),
            _distinct([c.get('epochs') for c in cfgs]),
            _distinct([_lr_text(c) for c in cfgs]),
            _distinct([c.get('batch_size') for c in cfgs]),
            _distinct([_dropout_text(c) for c in cfgs]),
            _distinct([_units_text(r) for r in rs]),
            _distinct([r.get('threads', '?') for r in rs]),
            _distinct([c.get('device', '?') for c in cfgs]),
        ])
    lines += ['Per dataset, as stored in the cell configs (`a / b`: the '
              'cells differ):', '']
    lines += rows_table(['dataset', 'protocol', 'metric', 'encoder',
                         'epochs', 'optimiser, lr schedule', 'batch',
                         'dropout', 'folds / seeds', 'CPU threads',
                         'device'], rows, 'l' * 11)
    lines += ['', 'Readout variants (every other setting is shared):', '']
    for r in readouts:
        cfgs = [rec.get('config', {}) for (_, rr), c in cells.items()
                if rr == r for rec in c.records.values()]
        lines.append(f'- {display(r)} (`{r}`): '
                     + _distinct([_readout_text(c) for c in cfgs]))
    versions: Dict[str, int] = {}
    for rs in records.values():
        for r in rs:
            text = _versions_text(r.get('versions', {}))
            versions[text] = versions.get(text, 0) + 1
    lines += ['', 'Versions: ' + '; '.join(
        f'{v} ({n} cells)' if len(versions) > 1 else v
        for v, n in versions.items()) + '.', '']
    return lines


def time_lines(cells: Cells, datasets: Sequence[str],
               readouts: Sequence[str],
               labels: Optional[Mapping[str, str]] = None) -> List[str]:
    lines = ['## Compute time', '',
             'Sum of the `wall_time` of the cells (training and scoring of '
             'one fold/seed, without loading the data). Shards run in '
             'parallel add up, so this is job time, not elapsed time. '
             '"on GPU": the part of it from cells run on a CUDA device.', '']
    rows = []
    total, gpu_total, count = 0.0, 0.0, 0
    for d in datasets:
        ds = [c for (dd, _), c in cells.items() if dd == d]
        t, n = sum(c.wall_time for c in ds), sum(c.n for c in ds)
        gpu = sum(r.get('wall_time', 0.0) for c in ds
                  for r in c.records.values()
                  if str(r.get('config', {}).get('device', '')).startswith(
                      'cuda'))
        total, gpu_total, count = total + t, gpu_total + gpu, count + n
        rows.append([label(d, labels), str(n), fmt_duration(t),
                     fmt_duration(gpu) if gpu else '–'])
    rows.append(['**total**', str(count), f'**{fmt_duration(total)}**',
                 fmt_duration(gpu_total) if gpu_total else '–'])
    lines += rows_table(['dataset', 'cells', 'wall time', 'on GPU'], rows)
    lines += ['', 'Mean seconds per training epoch:', '']
    rows = []
    for r in readouts:
        rows.append([display(r)] + [
            f'{cells[d, r].epoch_time:.3f}' if (d, r) in cells else '–'
            for d in datasets])
    lines += rows_table(['readout'] + [label(d, labels) for d in datasets],
                        rows)
    return lines + ['']


def training_lines(cells: Cells, datasets: Sequence[str],
                   readouts: Sequence[str],
                   labels: Optional[Mapping[str, str]] = None) -> List[str]:
    """Did the models train? Final training loss and selected epoch."""
    rows = []
    for d in datasets:
        for r in readouts:
            cell = cells.get((d, r))
            if cell is None:
                continue
            recs = [cell.records[u] for u in cell.units]
            losses = [rec['final_train_loss'] for rec in recs
                      if rec.get('final_train_loss') is not None]
            epochs = [rec['best_epoch'] for rec in recs
                      if rec.get('best_epoch') is not None]
            if not losses or not epochs:
                continue
            chance = constant_loss(d)
            stuck = ('–' if chance is None else str(sum(
                loss >= CHANCE_LOSS * chance for loss in losses)))
            rows.append([label(d, labels), display(r), str(cell.n), stuck,
                         f'{statistics.fmean(losses):.3f}',
                         f'{min(losses):.3f}-{max(losses):.3f}',
                         f'{min(epochs)}-{max(epochs)}',
                         _distinct([rec.get('config', {}).get('epochs')
                                    for rec in recs])])
    if not rows:
        return []
    shown = {row[0] for row in rows}
    chance_text = ', '.join(
        f'{label(d, labels)} {constant_loss(d):.3f}' for d in datasets
        if label(d, labels) in shown and constant_loss(d) is not None)
    lines = ['## Training diagnostics', '',
             'Per cell: mean and range over the folds/seeds of the final '
             'training loss, the folds that never trained (final loss at '
             f'least {CHANCE_LOSS:g} x the loss of the best constant '
             'prediction, the entropy of the class frequencies: '
             f'{chance_text}), and the range of the selected epoch '
             '(near the last epoch: still improving when the budget '
             'ended).', '']
    lines += rows_table(['dataset', 'readout', 'n', 'never trained',
                         'final train loss', 'range', 'selected epoch',
                         'epochs'], rows)
    lines.append('')
    return lines

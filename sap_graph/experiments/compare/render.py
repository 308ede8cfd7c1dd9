r"""The files of a comparison: :obj:`report.md` (:func:`markdown`) and
:obj:`compare.png` (:func:`figure`, needs matplotlib).
"""
from __future__ import annotations

import math
from typing import Any, List, Sequence

from sap_graph.experiments.compare.report import (
    CHANCE_LOSS,
    PERCENT,
    ComparisonResult,
    finite,
)
from sap_graph.experiments.compare.stats import EXACT_MAX, SAMPLES

_DIRECTION = {True: 'higher is better', False: 'lower is better'}
_PROTOCOLS = {
    'kfold': 'k-fold cross-validation (stratified for classes and for '
             'one 0/1 target without missing labels) with a '
             'validation split carved from each training fold; the test '
             'fold is scored once, by the epoch selected on validation',
    'official': "the dataset's official train/validation/test split, one "
                'run per seed; test scored at the best validation epoch',
    'scaffold': 'a balanced Bemis-Murcko scaffold split (80/10/10, '
                "chemprop's) drawn anew for every seed, so no scaffold is "
                'in two parts; test scored at the best validation epoch',
}


def fmt(value: float, metric: str, signed: bool = False) -> str:
    r"""A metric value as the report shows it (percent for accuracies and
    AUCs)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 'n/a'
    if metric in PERCENT:
        return f'{100 * value:+.2f}' if signed else f'{100 * value:.2f}'
    return f'{value:+.4f}' if signed else f'{value:.4f}'


def _unit_name(result: ComparisonResult) -> str:
    return 'folds' if result.protocol == 'kfold' else 'seeds'


def _names(names: List[str]) -> str:
    return (', '.join(names[:-1]) + ' and ' + names[-1] if len(names) > 1
            else names[0])


def _partial(result: ComparisonResult, units: str) -> List[str]:
    r"""The banner of a partial report: what has finished and which
    readouts the ranks and the best are decided among."""
    unit = units[:-1]
    total = result.missing + len(result.runs)
    waiting = [r.readout for r in result.rows if not r.finished]
    if not result.runs:
        return [f'**Partial:** no run has finished yet (0 of {total} '
                f'planned runs).', '']
    text = (f'**Partial:** {result.missing} of {total} planned runs have '
            f'not finished. ' if result.missing else '**Partial:** ')
    if len(waiting) == len(result.rows):
        return [text + f'No readout has finished a {unit} at every learning '
                f'rate yet, so nothing is ranked.', '']
    text += (f"A readout's row uses the {units} it finished at every "
             f'learning rate; ')
    every = (f'every readout that has finished a {unit}' if waiting
             else 'every readout')
    n = len(result.ranked_on)
    if not n:
        text += (f'no {unit} is finished by {every} yet, so the '
                 f'ranks compare means over different {units}.')
    else:
        text += (f'ranks and the best by validation use the {n} {units} '
                 f'finished by {every}, each paired test the {units} '
                 f'its two readouts share.')
    if waiting:
        verb = 'has' if len(waiting) == 1 else 'have'
        left = len(result.rows) - len(waiting)
        among = ('the one readout that has' if left == 1 else
                 f'the {left} readouts that have')
        text += (f' {_names(waiting)} {verb} not finished any {unit} at '
                 f'every learning rate yet: not ranked, not tested; the '
                 f'best by validation is chosen among {among}.')
    return [text, '']


def _rank_header(result: ComparisonResult, units: str) -> str:
    n = len(result.ranked_on)
    if n and n < max(r.finished for r in result.rows):
        return f'rank by val on the {n} shared {units}'
    return 'rank by val'


def _row(result: ComparisonResult, r: Any) -> str:
    m, unit = result.metric, _unit_name(result)[:-1]
    name = f'**{r.readout}**' if r.readout == result.best else r.readout
    if not r.finished:
        state = ('not run yet' if not r.runs else
                 f"{r.runs} run{'s' if r.runs > 1 else ''}, no {unit} "
                 f'at every learning rate')
        return (f'| {name} | {state} | – | – | 0 | – | '
                f'{_seconds(r.epoch_time)} | {r.collapsed} of {r.runs} |')
    lrs = list(r.lrs.values())
    counts = ', '.join(f'{lr:g} x{lrs.count(lr)}' for lr in sorted(set(lrs)))
    test = ('diverged' if not r.n else fmt(r.test_mean, m) if r.n == 1
            else f'{fmt(r.test_mean, m)} ± {fmt(r.test_std, m)}')
    n = f'{r.n} + {r.diverged} diverged' if r.diverged else f'{r.n}'
    return (f'| {name} | {test} | {fmt(r.val_mean, m) if r.n else "–"} | '
            f'{_rank(r.rank)} | {n} | {counts or "–"} | '
            f'{_seconds(r.epoch_time)} | {r.collapsed} of {r.runs} |')


def _rates(lrs: Sequence[float], units: str) -> str:
    rates = ', '.join(f'{lr:g}' for lr in lrs)
    if len(lrs) == 1:
        return f'learning rate {rates}'
    return f'learning rate chosen per {units[:-1]} on validation among {rates}'


def _rank(rank: float) -> str:
    return '–' if math.isnan(rank) else f'{rank:.0f}'


def _seconds(value: float) -> str:
    return '–' if math.isnan(value) else f'{value:.3f}'


def markdown(result: ComparisonResult) -> str:
    r"""The comparison as a Markdown page."""
    m, units = result.metric, _unit_name(result)
    ds, cfg = result.dataset, result.config
    shown = f'{m} (%)' if m in PERCENT else m
    out: List[str] = [
        f"# Which readout for {ds.get('name')}?", '',
        f"{ds.get('num_graphs')} graphs, {ds.get('task_type')}, "
        f"{ds.get('num_classes')} output(s); test metric **{m}** "
        f"({_DIRECTION[result.higher_is_better]})."
        + ''.join(f' Data: {note}.' for note in ds.get('notes') or []), '',
        f"Protocol: {_PROTOCOLS[result.protocol]}. Every readout gets the "
        f"same model and budget: {cfg.get('conv')} x "
        f"{cfg.get('num_layers')} layers, width "
        f"{cfg.get('hidden_channels')}, batch {cfg.get('batch_size')}, "
        f"{cfg.get('epochs')} epochs, {_rates(cfg.get('lrs', []), units)}.",
        '']
    if result.missing or any(not r.finished for r in result.rows):
        out += _partial(result, units)
    if not any(r.finished for r in result.rows):
        return '\n'.join(out if result.rows else out + ['No readouts.', ''])
    out += [f'## Results ({shown}, mean ± sample std over {units})', '',
            f'| readout | test | val | {_rank_header(result, units)} | n | '
            'lr chosen | s / epoch | collapsed runs |',
            '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |']
    out += [_row(result, r) for r in result.rows]
    if any(r.diverged for r in result.rows):
        out += ['', f'*Diverged*: every learning rate ended with a '
                f'non-finite score on that {units[:-1]}; it is left out of '
                f'the means and paired tests and ranks the readout after '
                f'those that did not diverge there (not at all when it '
                f'diverged on every {units[:-1]} ranked).']
    if result.best is None:
        out += ['', f'No readout has a finite validation score on the '
                f'{units} ranked: every learning rate diverged. Try '
                f'smaller learning rates.', '']
    else:
        tie = (f' (tied on the mean validation score with '
               f'{", ".join(result.tied)}; the lower mean validation loss '
               f'decides, then the name)' if result.tied else '')
        out += ['', f'Best by validation: **{result.best}** (bold){tie}. '
                f'Test scores are read after that choice and never choose '
                f'anything.', '']
    if len(result.ranked_on) == 1:
        hint = (' (`--seeds` lists seeds, e.g. `--seeds 0 1 2 3 4`)'
                if units == 'seeds' else '')
        out += [f'*One {units[:-1]}:* no spread, and no paired test can '
                f'reach p < 1; several {units} give both{hint}.', '']
    if result.tests:
        out += [f'## Paired tests against {result.best}', '',
                f'Per {units[:-1]}, test score of the readout minus that of '
                f'{result.best} (chosen runs); W/T/L counts the {units} '
                f'where the readout was better / equal / worse; two-sided '
                f'sign-flip test of the mean difference, exact (all 2^n '
                f'sign patterns) up to {EXACT_MAX} {units}, else '
                f'{SAMPLES} random patterns, marked (MC).', '',
                f'| readout | mean difference | W/T/L | p | {units} |',
                '| --- | ---: | :---: | ---: | ---: |']
        for t in result.tests:
            p = 'n/a' if math.isnan(t.p_value) else f'{t.p_value:.3f}'
            if t.p_method != 'exact' and p != 'n/a':
                p += ' (MC)'
            out.append(f'| {t.readout} | {fmt(t.mean_diff, m, True)} | '
                       f'{t.wins}/{t.ties}/{t.losses} | {p} | '
                       f'{len(t.units)} |')
        out += ['']
    out += [
        '## How to read this', '',
        f'* The {units} are not independent samples of the data: they '
        f'share training graphs (cross-validation) or the data set '
        f'(seeds), so p-values are optimistic (Nadeau and Bengio 2003), '
        f'and with {len(result.tests)} test'
        f"{'' if len(result.tests) == 1 else 's'} some p < 0.05 occur by "
        f'chance; no correction for multiple tests is applied. With '
        f'n {units} the smallest exact p-value is 2 / 2^n '
        f'(n = 5: 0.0625, n = 10: 0.002).',
        '* A difference smaller than the std over '
        f'{units} is within the noise of this protocol; a readout that is '
        'not significantly worse than the best is a fine choice, and the '
        'cheaper one (s / epoch) is then the better one.',
        f'* Collapsed runs ended with a training loss of at least '
        f'{CHANCE_LOSS} x that of a constant prediction, or diverged (a '
        f'non-finite loss or score): they never trained. A diverged run '
        f'is never the learning rate chosen while another gives finite '
        f'scores.', '',
        '## Reproduce', '',
        '```' + ('bash' if result.config.get('command', '').startswith(
            'sap-graph') else 'python'),
        result.config.get('command', ''), '```', '']
    return '\n'.join(out)


def figure(result: ComparisonResult, path: str) -> None:
    r"""Draws the chosen runs' test scores per readout (one point per
    fold/seed, grey lines join a fold/seed across readouts; mean ± std)
    into :obj:`path`."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    m = result.metric
    scale = 100.0 if m in PERCENT else 1.0
    names = [r.readout for r in result.rows]
    units = sorted({u for (_, u) in result.selected})
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names), 4.2))
    for u in units:
        ys = [result.selected.get((n, u), {}).get('test') for n in names]
        pts = [(i, y * scale) for i, y in enumerate(ys) if finite(y)]
        if len(pts) > 1:
            ax.plot(*zip(*pts, strict=True), color='0.85', lw=0.8,
                    zorder=1)
    for i, r in enumerate(result.rows):
        ys = [result.selected[r.readout, u]['test'] * scale for u in units
              if finite(result.selected.get((r.readout, u), {}).get('test'))]
        color = 'C3' if r.readout == result.best else 'C0'
        ax.scatter([i] * len(ys), ys, s=14, color=color, alpha=0.6,
                   zorder=2)
        if not r.n:
            continue
        spread = r.test_std if finite(r.test_std) else 0.0  # One run.
        ax.errorbar(i + 0.18, r.test_mean * scale, yerr=spread * scale,
                    fmt='D', color=color, ms=6, capsize=3, zorder=3)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha='right')
    ax.set_ylabel(f"test {m}{' (%)' if scale == 100 else ''} "
                  f"({_DIRECTION[result.higher_is_better]})")
    ax.set_title(f"{result.dataset.get('name')}: red = best by validation",
                 fontsize=10)
    ax.grid(axis='y', alpha=0.3)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def _save(fig: Any, path: str) -> None:
    import io

    from sap_graph.experiments.files import atomic_write
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=120)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


__all__ = ['figure', 'fmt', 'markdown']

r"""The files of a comparison: :obj:`report.md` (:func:`markdown`) and
:obj:`compare.png` (:func:`figure`, needs matplotlib).
"""
from __future__ import annotations

import math
from typing import Any, List

from sap_graph.experiments.compare.report import (
    CHANCE_LOSS,
    PERCENT,
    ComparisonResult,
)

_DIRECTION = {True: 'higher is better', False: 'lower is better'}
_PROTOCOLS = {
    'kfold': 'k-fold cross-validation (stratified for classes) with a '
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


def _ranked(result: ComparisonResult, units: str) -> str:
    n = len(result.ranked_on)
    if not n:
        return (f'no {units[:-1]} is finished by every readout yet, so the '
                f'ranks compare means over different {units}.')
    return (f'ranks and the best by validation use the {n} {units} every '
            f'readout finished, each paired test the {units} its two '
            f'readouts share.')


def _rank_header(result: ComparisonResult, units: str) -> str:
    n = len(result.ranked_on)
    if n and n < max(r.n for r in result.rows):
        return f'rank by val on the {n} shared {units}'
    return 'rank by val'


def markdown(result: ComparisonResult) -> str:
    r"""The comparison as a Markdown page."""
    m, units = result.metric, _unit_name(result)
    ds, cfg = result.dataset, result.config
    shown = f'{m} (%)' if m in PERCENT else m
    out: List[str] = [
        f"# Which readout for {ds.get('name')}?", '',
        f"{ds.get('num_graphs')} graphs, {ds.get('task_type')}, "
        f"{ds.get('num_classes')} output(s); test metric **{m}** "
        f"({_DIRECTION[result.higher_is_better]}).", '',
        f"Protocol: {_PROTOCOLS[result.protocol]}. Every readout gets the "
        f"same model and budget: {cfg.get('conv')} x "
        f"{cfg.get('num_layers')} layers, width "
        f"{cfg.get('hidden_channels')}, batch {cfg.get('batch_size')}, "
        f"{cfg.get('epochs')} epochs, learning rate chosen per "
        f"{units[:-1]} on validation among "
        f"{', '.join(f'{lr:g}' for lr in cfg.get('lrs', []))}.", '']
    if result.missing:
        out += [f'**Partial:** {result.missing} planned runs have not '
                f'finished. A readout\'s row uses the {units} it finished '
                f'at every learning rate; {_ranked(result, units)}', '']
    if not result.rows:
        return '\n'.join(out + ['No finished runs yet.', ''])
    out += [f'## Results ({shown}, mean ± std over {units})', '',
            f'| readout | test | val | {_rank_header(result, units)} | n | '
            'lr chosen | s / epoch | collapsed runs |',
            '| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |']
    for r in result.rows:
        lrs = sorted(set(r.lrs.values()))
        counts = ', '.join(f'{lr:g} x{list(r.lrs.values()).count(lr)}'
                           for lr in lrs)
        name = f'**{r.readout}**' if r.readout == result.best else r.readout
        out.append(
            f'| {name} | {fmt(r.test_mean, m)} ± {fmt(r.test_std, m)} | '
            f'{fmt(r.val_mean, m)} | {r.rank:.0f} | {r.n} | {counts} | '
            f'{r.epoch_time:.3f} | {r.collapsed} of {r.runs} |')
    out += ['', f'Best by validation: **{result.best}** (bold). Test '
            f'scores are read after that choice and never choose anything.',
            '']
    if result.tests:
        out += [f'## Paired tests against {result.best}', '',
                f'Per {units[:-1]}, test score of the readout minus that of '
                f'{result.best} (chosen runs); W/T/L counts the {units} '
                f'where the readout was better / equal / worse; two-sided '
                f'sign-flip test of the mean difference (scipy '
                f'`permutation_test`).', '',
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
        f'and with {len(result.rows) - 1} tests some p < 0.05 occur by '
        f'chance; no correction for multiple tests is applied. With '
        f'n {units} the smallest exact p-value is 2 / 2^n '
        f'(n = 5: 0.0625, n = 10: 0.002).',
        '* A difference smaller than the std over '
        f'{units} is within the noise of this protocol; a readout that is '
        'not significantly worse than the best is a fine choice, and the '
        'cheaper one (s / epoch) is then the better one.',
        f'* Collapsed runs ended with a training loss of at least '
        f'{CHANCE_LOSS} x that of a constant prediction: they never '
        f'trained.', '',
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
        pts = [(i, y * scale) for i, y in enumerate(ys) if y is not None]
        if len(pts) > 1:
            ax.plot(*zip(*pts, strict=True), color='0.85', lw=0.8,
                    zorder=1)
    for i, r in enumerate(result.rows):
        ys = [result.selected[r.readout, u]['test'] * scale for u in units
              if (r.readout, u) in result.selected]
        color = 'C3' if r.readout == result.best else 'C0'
        ax.scatter([i] * len(ys), ys, s=14, color=color, alpha=0.6,
                   zorder=2)
        ax.errorbar(i + 0.18, r.test_mean * scale, yerr=r.test_std * scale,
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

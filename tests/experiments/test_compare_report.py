"""The report of ``sap-graph compare`` from run records written out here
(as ``runs/*.json`` hold them, no training): readouts that have not
finished a fold/seed, no run at all, and runs that diverged to NaN
(``null`` once cached)."""
import csv
import io
import math
import statistics

import pytest

from sap_graph.experiments.compare import parse_variant
from sap_graph.experiments.compare.render import markdown
from sap_graph.experiments.compare.report import collapsed, summarise

NAN = math.nan
UNITS = ['seed_0', 'seed_1', 'seed_2']
LRS = [0.01, 1e6]


def run(readout, lr, unit, val, test, **extra):
    """A finished run's record; a diverged one (val / test None or NaN)
    has a non-finite loss too, as the engine writes it."""
    ok = val is not None and val == val
    return dict(readout=readout, lr=lr, unit=unit, val=val, test=test,
                val_loss=1.0 - val if ok else None, test_size=125,
                epoch_time_mean=0.5, chance_loss=1.0,
                final_train_loss=0.2 if ok else None, **extra)


def result(records, readouts, units=UNITS, lrs=LRS, higher=True):
    return summarise(records, [parse_variant(r) for r in readouts], units,
                     {'name': 'toy'}, 'rmse' if not higher else 'acc',
                     higher, 'scaffold', {'lrs': lrs},
                     len(readouts) * len(units) * len(lrs))


def table_row(text, readout):
    return next(line for line in text.splitlines()
                if line.startswith((f'| {readout} |', f'| **{readout}** |')))


@pytest.mark.parametrize('record,expected', [
    (dict(val=0.5, test=0.5), False),  # no loss recorded: not judged
    (dict(val=None, test=None), True),  # diverged, as cached (null)
    (dict(val=NAN, test=NAN), True),  # diverged, in memory
    (dict(val=0.5, test=None), True),
    (dict(val=math.inf, test=0.5), True),
    (dict(val=0.5, test=0.5, chance_loss=1.0, final_train_loss=0.99), True),
    (dict(val=0.5, test=0.5, chance_loss=1.0, final_train_loss=0.5), False),
    (dict(val=0.5, test=0.5, chance_loss=1.0, final_train_loss=None), True),
    (dict(val=0.5, test=0.5, chance_loss=1.0, final_train_loss=NAN), True),
    (dict(val=0.5, test=0.5, chance_loss=None, final_train_loss=NAN), False),
])
def test_collapsed_counts_diverged_runs(record, expected):
    assert collapsed(record) is expected


@pytest.mark.parametrize('bad', [None, NAN])
def test_diverged_runs_are_never_chosen_and_counted_collapsed(bad):
    # Seed 0: 1e6 diverged for both. Seed 1: 'sap' at 1e6 has a finite
    # (even higher) val but a diverged test. Seed 2: every rate of 'sap'
    # diverged, so 'sap' ranks after 'sum' although its finite mean val
    # (0.8) is higher than that of 'sum' (0.6).
    records = [
        run('sum', 0.01, 'seed_0', 0.6, 0.56), run('sum', 1e6, 'seed_0',
                                                   bad, bad),
        run('sum', 0.01, 'seed_1', 0.5, 0.52), run('sum', 1e6, 'seed_1',
                                                   0.7, 0.64),
        run('sum', 0.01, 'seed_2', 0.7, 0.6), run('sum', 1e6, 'seed_2',
                                                  0.1, 0.2),
        run('sap', 0.01, 'seed_0', 0.8, 0.6), run('sap', 1e6, 'seed_0',
                                                  bad, bad),
        run('sap', 0.01, 'seed_1', 0.8, 0.48),
        run('sap', 1e6, 'seed_1', 0.99, bad),
        run('sap', 0.01, 'seed_2', bad, bad), run('sap', 1e6, 'seed_2',
                                                  bad, bad)]
    res = result(records, ['sum', 'sap'])
    sm, sp = res.row('sum'), res.row('sap')
    assert sm.lrs == {'seed_0': 0.01, 'seed_1': 1e6, 'seed_2': 0.01}
    assert sp.lrs == {'seed_0': 0.01, 'seed_1': 0.01}
    assert (sm.n, sm.diverged, sp.n, sp.diverged) == (3, 0, 2, 1)
    assert sm.test_mean == pytest.approx(statistics.fmean([0.56, 0.64,
                                                           0.6]))
    assert sm.test_std == pytest.approx(statistics.stdev([0.56, 0.64, 0.6]))
    assert (sp.test_mean, sp.val_mean) == (pytest.approx(0.54),
                                           pytest.approx(0.8))
    assert sp.test_std == pytest.approx(statistics.stdev([0.6, 0.48]))
    # Collapsed: each diverged run (NaN val or test) of the readout.
    assert (sm.collapsed, sm.runs, sp.collapsed, sp.runs) == (1, 6, 4, 6)
    assert (res.best, sm.rank, sp.rank) == ('sum', 1.0, 2.0)
    (test,) = res.tests
    assert test.units == ['seed_0', 'seed_1']
    assert test.diffs == [pytest.approx(0.6 - 0.56),
                          pytest.approx(0.48 - 0.64)]
    text = markdown(res)
    assert '| 2 + 1 diverged |' in table_row(text, 'sap')
    assert '| 4 of 6 |' in table_row(text, 'sap')
    assert '*Diverged*' in text
    rows = list(csv.DictReader(io.StringIO(res.csv())))
    assert {(r['readout'], r['unit']): float(r['lr']) for r in rows
            if r['selected'] == 'True'} == {
        **{('sum', u): lr for u, lr in sm.lrs.items()},
        **{('sap', u): lr for u, lr in sp.lrs.items()},
        ('sap', 'seed_2'): 0.01}  # both diverged: the smaller rate
    assert [r['collapsed'] for r in rows if r['readout'] == 'sum'] == [
        'False', 'True', 'False', 'False', 'False', 'False']


@pytest.mark.parametrize('bad', [None, NAN])
def test_every_run_diverged(bad, tmp_path):
    records = [run(r, lr, u, bad, bad) for r in ('sum', 'sap')
               for lr in LRS for u in UNITS[:2]]
    res = result(records, ['sum', 'sap'], units=UNITS[:2], higher=False)
    assert res.best is None and res.tests == [] and res.missing == 0
    for row in res.rows:
        assert (row.n, row.diverged, row.collapsed, row.runs) == (0, 2, 4,
                                                                  4)
        assert math.isnan(row.test_mean) and math.isnan(row.rank)
    text = markdown(res)
    assert table_row(text, 'sum').startswith('| sum | diverged | – | – | '
                                             '0 + 2 diverged |')
    assert 'No readout has a finite validation score' in text
    assert 'Best by validation' not in text
    pytest.importorskip('matplotlib')
    from sap_graph.experiments.compare.render import figure
    figure(res, str(tmp_path / 'compare.png'))
    assert (tmp_path / 'compare.png').stat().st_size > 0


def test_one_seed_has_no_spread(tmp_path):
    # A sample std needs two runs: one seed shows its score alone, not
    # "± 0.0000" (which reads as a measured zero spread).
    records = [run(r, lr, 'seed_2', v, v) for r, v in (('sum', 0.6),
                                                       ('max', 0.7))
               for lr in LRS]
    res = result(records, ['sum', 'max'], units=['seed_2'])
    assert all(r.n == 1 and math.isnan(r.test_std) for r in res.rows)
    text = markdown(res)
    assert table_row(text, 'max').startswith('| **max** | 70.00 | 70.00 |')
    assert '±' not in table_row(text, 'sum')
    assert ('*One seed:* no spread, and no paired test can reach p < 1; '
            'several seeds give both (`--seeds` lists seeds, e.g. '
            '`--seeds 0 1 2 3 4`).') in text
    from sap_graph.experiments.compare.command import _summary
    assert _summary(res) == ('toy: best by validation max, test acc 0.7000 '
                             '(1 seed)')
    pytest.importorskip('matplotlib')
    from sap_graph.experiments.compare.render import figure
    figure(res, str(tmp_path / 'compare.png'))
    assert (tmp_path / 'compare.png').stat().st_size > 0


@pytest.mark.parametrize('lrs,says', [
    ([0.01], '20 epochs, learning rate 0.01.'),
    ([0.01, 1e6], '20 epochs, learning rate chosen per seed on validation '
     'among 0.01, 1e+06.'),
])
def test_protocol_names_the_learning_rates(lrs, says):
    records = [run(r, lr, u, 0.5, 0.5) for r in ('sum', 'max')
               for lr in lrs for u in UNITS]
    res = summarise(records, [parse_variant(r) for r in ('sum', 'max')],
                    UNITS, {'name': 'toy'}, 'acc', True, 'scaffold',
                    {'lrs': lrs, 'epochs': 20}, 2 * len(UNITS) * len(lrs))
    assert says in markdown(res)


def test_readouts_without_a_finished_seed_are_listed_not_ranked():
    # 'sum' and 'max' finished every seed; 'mean' ran one rate of seed 0
    # only; 'sap' nothing.
    records = [run(r, lr, u, v + 0.01 * i, v)
               for r, v in (('sum', 0.6), ('max', 0.7))
               for lr in LRS for i, u in enumerate(UNITS)]
    records.append(run('mean', 0.01, 'seed_0', 0.9, 0.9))
    res = result(records, ['sum', 'mean', 'max', 'sap'])
    assert [r.readout for r in res.rows] == ['sum', 'mean', 'max', 'sap']
    assert (res.best, res.ranked_on) == ('max', UNITS)
    assert [t.readout for t in res.tests] == ['sum']
    ranks = {r.readout: r.rank for r in res.rows}
    assert (ranks['max'], ranks['sum']) == (1.0, 2.0)
    assert math.isnan(ranks['mean']) and math.isnan(ranks['sap'])
    assert (res.row('mean').runs, res.row('sap').runs) == (1, 0)
    text = markdown(res)
    assert res.missing == 24 - 13
    assert ('**Partial:** 11 of 24 planned runs have not finished.'
            in text)
    assert ('use the 3 seeds finished by every readout that has finished '
            'a seed' in text)
    assert ('mean and sap have not finished any seed at every learning '
            'rate yet' in text)
    assert 'best by validation is chosen among the 2 readouts that have' \
        in text
    assert 'every readout finished' not in text
    assert table_row(text, 'sap') == (
        '| sap | not run yet | – | – | 0 | – | – | 0 of 0 |')
    assert table_row(text, 'mean').startswith(
        '| mean | 1 run, no seed at every learning rate | – | – | 0 |')
    assert table_row(text, 'max').startswith('| **max** | 70.00 ± 0.00 |')


@pytest.mark.parametrize('records,says', [
    ([], '**Partial:** no run has finished yet (0 of 12 planned runs).'),
    ([run('sum', 0.01, 'seed_0', 0.5, 0.5)],
     '**Partial:** 11 of 12 planned runs have not finished. No readout has '
     'finished a seed at every learning rate yet, so nothing is ranked.'),
])
def test_nothing_finished_at_every_rate(records, says):
    res = result(records, ['sum', 'sap'])
    assert res.best is None and res.ranked_on == [] and res.tests == []
    assert [r.n for r in res.rows] == [0, 0]
    text = markdown(res)
    assert says in text
    assert 'every readout finished' not in text and '| sum |' not in text


def test_the_datasets_notes_are_in_the_report():
    records = [run('sum', lr, u, 0.8, 0.7) for u in UNITS for lr in LRS]
    res = summarise(records, [parse_variant('sum')], UNITS,
                    {'name': 'toy', 'notes': [
                        'skipped 2 invalid SMILES (lines 3, 9)']},
                    'acc', True, 'scaffold', {'lrs': LRS}, 6)
    assert 'Data: skipped 2 invalid SMILES (lines 3, 9).' in markdown(res)
    assert 'Data:' not in markdown(result(records, ['sum']))


def test_unknown_readout_names_the_known_ones():
    """``row`` and ``paired`` look readouts up by name: another name is an
    error listing the readouts of the comparison (``row`` raised a bare
    StopIteration, ``paired`` returned an empty test)."""
    from sap_graph.experiments.compare import UnknownReadout

    records = [run(r, lr, u, 0.6 + 0.1 * i, 0.5 + 0.1 * i)
               for i, r in enumerate(['sum', 'sap{"rezero": true}'])
               for lr in LRS for u in UNITS]
    res = result(records, ['sum', 'sap{"rezero": true}'])
    known = r"""\(it has: 'sum', 'sap{"rezero": true}'\)"""
    for call in (lambda: res.row('sap'), lambda: res.paired('sap', 'sum'),
                 lambda: res.paired('sum', 'max')):
        with pytest.raises(UnknownReadout, match=known) as info:
            call()
        assert isinstance(info.value, KeyError)
        assert isinstance(info.value, ValueError)
    assert res.row('sum').readout == 'sum'
    test = res.paired('sap{"rezero": true}', 'sum')
    assert test.units == UNITS
    assert test.diffs == pytest.approx([0.1] * 3)


@pytest.mark.parametrize('order', [('sum', 'mean', 'max'),
                                   ('max', 'mean', 'sum')])
def test_a_validation_tie_does_not_follow_the_readouts_order(order):
    """Three readouts level on validation: the best was the first given,
    and changed with --readouts' order. Now the lower mean validation
    loss decides, then the name; the report names the tie."""
    records = []
    for readout, loss in (('sum', 0.4), ('mean', 0.3), ('max', 0.3)):
        for unit in UNITS:
            for lr in LRS:
                record = run(readout, lr, unit, 0.7, 0.6)
                record['val_loss'] = loss
                records.append(record)
    res = result(records, list(order))
    assert res.best == 'max' and res.tied == ['mean', 'sum']
    assert {r.readout: r.rank for r in res.rows} == {'max': 1.0,
                                                     'mean': 2.0, 'sum': 3.0}
    assert ('Best by validation: **max** (bold) (tied on the mean '
            'validation score with mean, sum;') in markdown(res)


def test_a_tie_is_judged_beyond_float_rounding():
    """The mean of 0.1 and 0.2 is 0.15000000000000002: not a lead over
    0.15; the lower validation loss decides."""
    records = []
    for readout, vals, loss in (('sum', (0.1, 0.2), 0.5),
                                ('mean', (0.15, 0.15), 0.4)):
        for unit, val in zip(UNITS[:2], vals, strict=True):
            for lr in LRS:
                record = run(readout, lr, unit, val, 0.5)
                record['val_loss'] = loss
                records.append(record)
    res = result(records, ['sum', 'mean'], units=UNITS[:2])
    assert res.best == 'mean' and res.tied == ['sum']

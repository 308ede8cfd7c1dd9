"""The moonshot table of ``benchmarks/molecules_page.py``: the default
(and the best SAP variant by validation) against sum / mean / max per
seed, and when it counts as ahead of all."""
import pytest

from benchmarks.molecules_page import against_simple, ahead_of_all, page
from sap_graph.experiments.compare import parse_variant
from sap_graph.experiments.compare.report import summarise

READOUTS = ('sum', 'mean', 'max', 'sap')


def result(scores, higher=True):
    """A comparison whose readout r scores ``scores[r][seed]`` on test and
    validation (one learning rate)."""
    seeds = len(next(iter(scores.values())))
    records = [dict(readout=r, unit=f'seed_{s}', lr=0.001, val=v, test=v,
                    val_loss=0.0, epoch_time_mean=1.0)
               for r, vs in scores.items() for s, v in enumerate(vs)]
    return summarise(records, [parse_variant(r) for r in scores],
                     [f'seed_{s}' for s in range(seeds)], {}, 'rmse'
                     if not higher else 'rocauc', higher, 'seeds', {},
                     len(records))


def shifted(base, by):
    return [b + by + 0.001 * i for i, b in enumerate(base)]


@pytest.mark.parametrize('seeds,higher,expect_p,ahead', [
    (10, True, 2 / 2 ** 10, True),   # ahead on every seed: p = 2 / 2^n
    (5, True, 2 / 2 ** 5, False),    # 5 seeds can never reach p < 0.05
    (10, False, 2 / 2 ** 10, True),  # RMSE: lower is ahead
])
def test_ahead_of_every_simple_readout(seeds, higher, expect_p, ahead):
    base = [0.5 + 0.01 * s for s in range(seeds)]
    sign = 1 if higher else -1
    res = result({'sum': base, 'mean': shifted(base, 0.001),
                  'max': shifted(base, 0.002),
                  'sap': shifted(base, sign * 0.05)}, higher)
    tests = against_simple(res)
    assert [t.against for t in tests] == ['sum', 'mean', 'max']
    for t in tests:
        assert t.p_value == pytest.approx(expect_p)
        assert (t.wins, t.ties, t.losses) == (seeds, 0, 0)
    assert ahead_of_all(tests, higher) is ahead
    # The opposite direction is never ahead, whatever the p-value.
    assert not ahead_of_all(tests, not higher)


def test_one_simple_readout_level_is_not_ahead():
    base = [0.5 + 0.01 * s for s in range(10)]
    mean = shifted(base, 0.05)
    res = result({'sum': base, 'mean': mean, 'max': base,
                  'sap': [m + (0.01 if s % 2 else -0.01)
                          for s, m in enumerate(mean)]})
    tests = against_simple(res)
    by = {t.against: t for t in tests}
    assert (by['mean'].wins, by['mean'].losses) == (5, 5)
    assert by['mean'].p_value > 0.5
    assert not ahead_of_all(tests, True)
    text = page({'toy': res}, 'budget')
    row = next(line for line in text.splitlines()
               if line.startswith('| toy | 10 |'))
    assert row.endswith('| no |')


def test_without_the_default_there_is_no_row():
    base = [0.5, 0.6, 0.7]
    res = result({'sum': base, 'mean': base, 'max': base,
                  'sap_frozen': shifted(base, 0.1)})
    assert against_simple(res) == []
    assert '| toy |' not in page({'toy': res}, 'budget').split(
        'each simple readout')[1]


def test_a_partial_set_says_so():
    base = [0.5 + 0.01 * s for s in range(4)]
    res = result({'sum': base, 'mean': base, 'max': base, 'sap': base})
    assert '| toy | rocauc ↑ | 4 |' in page({'toy': res}, 'budget')
    res.missing = 6
    assert '| toy | rocauc ↑ | 4 (partial: 6 runs to go) |' in page(
        {'toy': res}, 'budget')


def test_the_best_sap_variant_by_validation_gets_its_own_row():
    base = [0.5 + 0.01 * s for s in range(10)]
    res = result({'sum': base, 'mean': base, 'max': base, 'sap': base,
                  'sap_rezero': shifted(base, 0.05),
                  'sap_rezero_frozen': shifted(base, 0.2)})  # A control.
    text = page({'toy': res}, 'budget')
    rows = [line for line in text.splitlines()
            if line.startswith('| toy | 10 |')]
    assert [r.split(' | ')[2] for r in rows] == [
        'default', 'sap_rezero (best SAP)', 'sap_rezero_frozen (its control)']
    assert [r.endswith('| yes |') for r in rows] == [False, True, True]
    assert [t.against for t in against_simple(res, 'sap_rezero')] == [
        'sum', 'mean', 'max']

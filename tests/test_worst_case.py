"""benchmarks.worst_case: deficits to the best simple readout in standard
deviations, and the choice by the smallest worst deficit (hand-computed)."""
import pytest

from benchmarks.worst_case import CANDIDATES, choose, common, deficits


def test_deficits_and_choice_by_hand():
    a, b = list(CANDIDATES)[:2]
    names = {a: 'A', b: 'B'}
    scores = {
        # max is the best simple readout (mean 80, sample std 2).
        'd1': {'sum': [70, 72], 'mean': [75, 77], 'max': [78, 82],
               'A': [77, 79], 'B': [80, 84]},
        # mean is best (mean 60, sample std 4).
        'd2': {'sum': [50, 50], 'mean': [56, 64], 'max': [55, 57],
               'A': [58, 60], 'B': [50, 54]},
        # B has no result: A's deficit is kept, the choice ignores it.
        'partial': {'sum': [1, 3], 'mean': [1, 1], 'max': [9, 11],
                    'A': [0, 2]},
    }
    deficit, best, ranks = deficits(scores, names)
    assert best == {'d1': 'max', 'd2': 'mean', 'partial': 'max'}
    assert deficit[a, 'partial'] == pytest.approx(9 / 2 ** 0.5)
    assert (b, 'partial') not in deficit
    s1, s2 = 2 ** 0.5 * 2, 2 ** 0.5 * 4  # stdev of [78, 82] and [56, 64]
    assert deficit[a, 'd1'] == pytest.approx((80 - 78) / s1)
    assert deficit[b, 'd1'] == pytest.approx((80 - 82) / s1)
    assert deficit[a, 'd2'] == pytest.approx((60 - 59) / s2)
    assert deficit[b, 'd2'] == pytest.approx((60 - 52) / s2)
    # Ranks among sum, mean, max, A, B by mean validation score.
    assert ranks[a, 'd1'] == 3 and ranks[b, 'd1'] == 1
    assert common(deficit, names) == ['d1', 'd2']
    pick, worst, _ = choose(deficit, ranks, names)
    assert worst[a] == pytest.approx(max((80 - 78) / s1, (60 - 59) / s2))
    assert pick == a  # B's worst (d2) is larger.


def test_collapsed_counts_against_the_cells(tmp_path):
    """The collapse guard of the choice, against a count made here from
    the cells' files: a run collapsed when its final training loss is at
    least 0.98 x the entropy of the dataset's class frequencies."""
    import json
    import math

    from benchmarks import worst_case
    from sap_graph.experiments.data.tu import TU_CLASS_COUNTS

    counts = TU_CLASS_COUNTS['MUTAG']
    prior = -sum(n / sum(counts) * math.log(n / sum(counts))
                 for n in counts)
    losses = {'sap_max': [0.1, 0.2], 'sap_log': [prior, 0.3],
              'sap_log_lr1e-3': [0.99 * prior, 0.97 * prior],
              'sap_rezero': [0.2, 0.1]}
    expected = {}
    for name, values in losses.items():
        folder = tmp_path / 'grid' / 'MUTAG' / name
        folder.mkdir(parents=True)
        lr = 0.001 if name.endswith('lr1e-3') else 0.01
        for k, loss in enumerate(values):
            (folder / f'fold_{k}.json').write_text(json.dumps({
                'val': 0.5, 'test': 0.5, 'final_train_loss': loss,
                'config': {'lr': lr}}))
        base = name.replace('_lr1e-3', '')
        hit = sum(v >= 0.98 * prior for v in values)
        old = expected.get(base, (0, 0))
        expected[base] = (old[0] + hit, old[1] + len(values))
    (tmp_path / 'empty').mkdir()
    got = worst_case.collapsed(worst_case.grid_cells(
        str(tmp_path / 'grid'), str(tmp_path / 'empty'), ()))
    names = {g: c for c, (g, _) in worst_case.CANDIDATES.items()}
    assert {names[g]: v for g, v in expected.items()} == got
    assert got[names['sap_log']] == (2, 4)


def test_molecule_seeds_are_those_of_the_compared_readouts():
    """A readout outside sum / mean / max and the candidates with fewer
    seeds (``sap_sum`` here) does not cut the seeds of the others."""
    from benchmarks.worst_case import molecule_scores
    from sap_graph.experiments.compare import parse_variant
    from sap_graph.experiments.compare.report import summarise
    compared = ['sum', 'mean', 'max'] + [m for _, m in CANDIDATES.values()]
    records = [dict(readout=r, unit=f'seed_{s}', lr=0.001, val=0.1 * s + i,
                    test=0.0, val_loss=0.0, epoch_time_mean=1.0)
               for i, r in enumerate(compared) for s in range(4)]
    records += [dict(readout='sap_sum', unit=f'seed_{s}', lr=0.001, val=0.0,
                     test=0.0, val_loss=0.0, epoch_time_mean=1.0)
                for s in range(2)]
    units = [f'seed_{s}' for s in range(4)]
    res = summarise(records, [parse_variant(r) for r in compared + [
        'sap_sum']], units, {}, 'rocauc', True, 'seeds', {}, len(records))
    scores = molecule_scores({'toy': res})['toy']
    assert set(scores) == set(compared)
    for i, r in enumerate(compared):
        assert scores[r] == pytest.approx([100 * (0.1 * s + i)
                                           for s in range(4)])
    # Without sum / mean / max there is nothing to compare against.
    only = summarise(records[-2:], [parse_variant('sap_sum')], units, {},
                     'rocauc', True, 'seeds', {}, 2)
    assert molecule_scores({'toy': only}) == {'toy': {}}


def test_a_compare_folder_gives_the_deficits_by_hand(tmp_path):
    # --molhiv FOLDER: a dataset's scores from a `sap-graph compare`
    # folder (one rate, seeds), the deficit in std units of the best
    # simple readout's validation scores.
    import json
    import statistics

    from benchmarks.worst_case import _comparison, deficits, molecule_scores
    val = {'sum': [0.70, 0.72, 0.74], 'mean': [0.80, 0.78, 0.79],
           'max': [0.75, 0.76, 0.77], 'sap': [0.74, 0.77, 0.75],
           'sap_frozen': [0.76, 0.75, 0.74]}
    (tmp_path / 'runs').mkdir()
    for readout, scores in val.items():
        for seed, v in enumerate(scores):
            record = dict(readout=readout, lr=0.001, unit=f'seed_{seed}',
                          metric='rocauc', val=v, test=v - 0.05,
                          val_loss=0.3, epoch_time_mean=0.1)
            (tmp_path / 'runs' / f'{readout}-{seed}.json').write_text(
                json.dumps(record))
    scores = molecule_scores({'x': _comparison(str(tmp_path), 'x')})
    deficit, best, _ = deficits(scores, {'default': 'sap'})
    mean = [100 * v for v in val['mean']]
    expected = (statistics.fmean(mean) - 100 * statistics.fmean(val['sap'])
                ) / statistics.stdev(mean)
    assert best == {'x': 'mean'}
    assert deficit['default', 'x'] == pytest.approx(expected)

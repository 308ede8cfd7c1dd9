"""The paired sign-flip test of ``sap-graph compare`` and of the
repository grid's renderer, against an enumeration of every sign
pattern written out here."""
import itertools
import math
from fractions import Fraction
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import torch

from sap_graph.experiments.compare.stats import sign_flip_test


def brute_force_sign_flip(diffs: List[float]) -> float:
    """The share of the 2^n sign patterns whose |sum| reaches the
    observed one, enumerated here without scipy."""
    observed = abs(sum(diffs))
    hits = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True)))
               >= observed - 1e-9
               for signs in itertools.product((1, -1), repeat=len(diffs)))
    return hits / 2 ** len(diffs)


def test_sign_flip_exact_values():
    # d = (1, 2, 3): only (+, +, +) and (-, -, -) reach |sum| = 6 -> 2/8.
    assert sign_flip_test([1, 2, 3]) == (pytest.approx(0.25), 'exact')
    # Sum 3 of five unit steps: |sum| >= 3 for 0, 1, 4 or 5 plus signs,
    # (1 + 5 + 5 + 1) / 32.
    assert sign_flip_test([1, 1, 1, 1, -1])[0] == pytest.approx(0.375)
    assert sign_flip_test([0.0, 0.0])[0] == 1.0
    assert sign_flip_test([3.0]) == (1.0, 'exact')
    p, method = sign_flip_test([1.0] * 10)
    assert method == 'exact' and p == pytest.approx(2 / 1024)
    p, method = sign_flip_test([1.0] * 20, samples=2000)
    assert method == 'Monte Carlo' and 0 < p < 0.01
    assert math.isnan(sign_flip_test([])[0])


@pytest.mark.parametrize('seed', range(5))
def test_sign_flip_matches_enumeration(seed):
    # Fold-like differences (multiples of 1/n_test in pp, ties, zeros).
    rng = torch.Generator().manual_seed(seed)
    n = 6 + seed
    diffs = ((torch.randint(-4, 5, (n,), generator=rng) * 100 / 19)
             .tolist())
    p, method = sign_flip_test(diffs)
    assert method == 'exact'
    assert p == pytest.approx(brute_force_sign_flip(diffs), abs=1e-12)


def exact_sign_flip(diffs: Sequence[Fraction]) -> Fraction:
    """The sign-flip p-value on exact rationals: the share of the 2^n
    sign patterns whose |sum| reaches the observed one, ties exactly."""
    observed = abs(sum(diffs))
    hits = sum(abs(sum(s * d for s, d in zip(signs, diffs, strict=True)))
               >= observed
               for signs in itertools.product((1, -1), repeat=len(diffs)))
    return Fraction(hits, 2 ** len(diffs))


def float32_diffs(pairs: Sequence[Tuple[int, int, int]]) -> List[float]:
    """Differences of accuracies as ``sap-graph compare`` takes them: each
    count / size stored as float32, subtracted in float64."""
    return [float(np.float32(a / n)) - float(np.float32(b / n))
            for a, b, n in pairs]


def _counts(a, b, n):
    return list(zip(a, b, [n] * len(a) if isinstance(n, int) else n,
                    strict=True))


#: (correct counts of one readout, of the other, test size(s)): fold-like
#: accuracies whose differences tie in many sign patterns.
TIED = [
    # The trial's case: differences 1, -1, 2, -1, 2 (/125), sum 3; the
    # float32 rounding put ties below the observed sum (0.4375, not 9/16).
    _counts((96, 79, 90, 60, 83), (95, 80, 88, 61, 81), 125),
    # Equal magnitudes: every pattern with the same number of minus
    # signs ties.
    _counts((60, 71, 52, 88, 90, 47), (59, 72, 51, 87, 91, 46), 125),
    # Folds of different sizes (10-fold CV of 1113 graphs: 112 and 111).
    _counts((70, 65, 81, 77, 59, 90, 66, 72),
            (68, 67, 79, 75, 61, 88, 68, 70),
            (112, 112, 112, 111, 111, 111, 111, 111)),
    # Large test parts: distinct sums 1/1000 apart must stay distinct.
    _counts((731, 702, 688, 745, 713), (730, 703, 686, 744, 712),
            (1000, 1000, 1001, 1001, 1000)),
    # A zero difference, and ten pairs.
    _counts((50, 61, 44, 73, 58, 66, 49, 55, 62, 70),
            (50, 60, 45, 71, 59, 64, 48, 56, 60, 69), 88),
]


@pytest.mark.parametrize('pairs', TIED)
def test_sign_flip_counts_ties_of_float32_scores(pairs):
    exact = exact_sign_flip([Fraction(a, n) - Fraction(b, n)
                             for a, b, n in pairs])
    diffs = float32_diffs(pairs)
    scores = [float(np.float32(c / n)) for a, b, n in pairs for c in (a, b)]
    # Bare (the default scale suits scores in [0, 1]) and as paired_test
    # calls it (scale: the largest score).
    assert sign_flip_test(diffs) == (exact, 'exact')
    assert sign_flip_test(diffs, scale=max(scores)) == (exact, 'exact')
    # The differences themselves rounded to float32 tie as well.
    assert sign_flip_test(np.float32(diffs).tolist())[0] == exact


def test_sign_flip_trial_value():
    pairs = TIED[0]
    assert sign_flip_test(float32_diffs(pairs)) == (0.5625, 'exact')


def test_monte_carlo_counts_ties():
    # 20 pairs of different accuracies, all +-1/125 apart (13 up, 7
    # down): the observed |sum| is 6/125 and every pattern with 13 or 7
    # plus signs ties with it. Exact p by the binomial distribution of
    # the plus signs: P(|2k - 20| >= 6).
    ups = [(50 + 3 * i + (i < 13), 50 + 3 * i + (i >= 13), 125)
           for i in range(20)]
    exact = sum(math.comb(20, k) for k in range(21)
                if abs(2 * k - 20) >= 6) / 2 ** 20
    p, method = sign_flip_test(float32_diffs(ups))
    assert method == 'Monte Carlo'
    # 20000 patterns: standard error sqrt(p (1 - p) / 20000) < 0.004.
    assert p == pytest.approx(exact, abs=0.015)


def _run(readout, lr, unit, val, test):
    return dict(readout=readout, lr=lr, unit=unit, val=val, test=test,
                val_loss=1.0 - val, epoch_time_mean=0.1)


def test_partial_comparison_ranks_on_the_seeds_every_readout_finished():
    from sap_graph.experiments.compare import parse_variant
    from sap_graph.experiments.compare.render import markdown
    from sap_graph.experiments.compare.report import summarise
    units = ['seed_0', 'seed_1', 'seed_2']
    runs = [
        # 'max' finished only seed 0, where every readout scores high:
        # its own mean (0.95) beats 'sum' overall (0.7), but on seed 0
        # 'sum' is ahead (0.97 > 0.95).
        _run('max', 0.01, 'seed_0', 0.95, 0.9),
        _run('max', 0.001, 'seed_0', 0.90, 0.5),
        # seed 1 of 'max' has only one rate: not counted (yet).
        _run('max', 0.01, 'seed_1', 0.99, 0.99),
        *[_run('sum', lr, u, v - (lr == 0.01) * 0.01, t)
          for lr in (0.01, 0.001)
          for u, v, t in (('seed_0', 0.97, 0.8), ('seed_1', 0.6, 0.6),
                          ('seed_2', 0.53, 0.5))]]
    res = summarise(runs, [parse_variant('max'), parse_variant('sum')],
                    units, {'name': 'toy'}, 'rocauc', True, 'scaffold',
                    {'lrs': [0.01, 0.001]}, expected_runs=12)
    mx, sm = res.row('max'), res.row('sum')
    assert (mx.n, mx.val_mean, mx.test_mean) == (1, 0.95, 0.9)
    assert mx.lrs == {'seed_0': 0.01}
    assert sm.n == 3 and sm.lrs == dict.fromkeys(units, 0.001)
    assert sm.val_mean == pytest.approx(0.7)
    assert res.ranked_on == ['seed_0']
    assert (res.best, sm.rank, mx.rank) == ('sum', 1.0, 2.0)
    (test,) = res.tests
    assert (test.units, test.diffs) == (['seed_0'], [pytest.approx(0.1)])
    assert res.missing == 12 - len(runs)
    text = markdown(res)
    assert 'use the 1 seeds finished by every readout,' in text
    assert '| rank by val on the 1 shared seeds |' in text
    # With nothing shared ('max' on seed 0, 'sum' on seed 2), ranks fall
    # back to each readout's own mean and the page says so.
    alone = summarise(runs[:2] + runs[5::3], [parse_variant('max'),
                                              parse_variant('sum')],
                      units, {'name': 'toy'}, 'rocauc', True, 'scaffold',
                      {'lrs': [0.01, 0.001]}, expected_runs=12)
    assert alone.ranked_on == [] and alone.best == 'max'
    assert 'no seed is finished by every readout' in markdown(alone)

"""The paired sign-flip test of ``sap-graph compare`` and of the
repository grid's renderer, against an enumeration of every sign
pattern written out here."""
import itertools
import math
from typing import List

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

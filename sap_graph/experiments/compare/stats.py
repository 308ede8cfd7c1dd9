r"""Paired sign-flip tests (:func:`sign_flip_test`, exact up to
:data:`EXACT_MAX` pairs, from :func:`scipy.stats.permutation_test`)."""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np

#: Largest number of paired folds/seeds for which the sign-flip test
#: enumerates all 2^n sign patterns; above it, random sign patterns.
EXACT_MAX = 16


def sign_flip_test(diffs: Sequence[float], exact_max: int = EXACT_MAX,
                   samples: int = 20000, seed: int = 0,
                   ) -> Tuple[float, str]:
    r"""Two-sided paired sign-flip permutation test of a zero mean.

    :func:`scipy.stats.permutation_test` with
    :obj:`permutation_type='samples'` on the one sample of paired
    differences flips their signs: under the null each difference is as
    likely to have either sign. Exact (all :math:`2^n` patterns) up to
    :obj:`exact_max` differences, else :obj:`samples` random patterns.

    Returns:
        The p-value and :obj:`'exact'` or :obj:`'Monte Carlo'`.
    """
    from scipy.stats import permutation_test
    data = np.asarray(diffs, dtype=float)
    if data.size == 0:
        return math.nan, 'exact'
    if data.size == 1:  # scipy needs two; both signs reach |d|.
        return 1.0, 'exact'
    exact = data.size <= exact_max
    res = permutation_test(
        (data,), lambda x, axis: np.mean(x, axis=axis),
        permutation_type='samples', vectorized=True,
        n_resamples=2 ** data.size if exact else samples,
        alternative='two-sided', rng=np.random.default_rng(seed))
    return float(min(1.0, res.pvalue)), 'exact' if exact else 'Monte Carlo'


__all__ = ['EXACT_MAX', 'sign_flip_test']

r"""Paired sign-flip tests (:func:`sign_flip_test`: exact, by enumerating
every sign pattern, up to :data:`EXACT_MAX` pairs; Monte Carlo above).

Scores reach the test as float32 values (an accuracy of 73/125 is stored
as 0.5839999914), so sums of differences that are equal as fractions
differ in their last bits. Sign patterns are therefore compared with a
tolerance (:func:`tie_tolerance`) tied to the rounding of the scores, so
that ties count as reaching the observed statistic.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

#: Largest number of paired folds/seeds for which the sign-flip test
#: enumerates all 2^n sign patterns; above it, random sign patterns.
EXACT_MAX = 16

#: Random sign patterns drawn above :data:`EXACT_MAX` pairs.
SAMPLES = 20000

#: Relative rounding of a float32 score (its machine epsilon, 2^-23).
FLOAT32_EPS = float(np.finfo(np.float32).eps)


def tie_tolerance(n: int, scale: float) -> float:
    r"""How far apart two sums of :obj:`n` signed differences may be and
    still be equal: :math:`4 n \epsilon_{32} s`.

    Each score carries a rounding error of at most
    :math:`\epsilon_{32} s / 2` (float32, :math:`s` the largest score), a
    difference of two at most :math:`\epsilon_{32} s`, a signed sum of
    :obj:`n` at most :math:`n \epsilon_{32} s`, and the observed and a
    permuted sum together twice that; a factor 2 more leaves room for the
    metric's own float32 arithmetic. Float64 summation adds
    :math:`\approx n \cdot 10^{-16} s`, far below. Counting a pattern
    within the tolerance as a tie can only raise the p-value.
    """
    return 4.0 * n * FLOAT32_EPS * scale


def sign_flip_test(diffs: Sequence[float], exact_max: int = EXACT_MAX,
                   samples: int = SAMPLES, seed: int = 0,
                   scale: Optional[float] = None) -> Tuple[float, str]:
    r"""Two-sided paired sign-flip permutation test of a zero mean.

    Under the null each paired difference is as likely to have either
    sign; the p-value is the share of sign patterns whose
    :math:`|\sum_i \pm d_i|` reaches the observed :math:`|\sum_i d_i|`
    (ties within :func:`tie_tolerance` count). Exact (all :math:`2^n`
    patterns) up to :obj:`exact_max` differences; above, :obj:`samples`
    random patterns (seeded by :obj:`seed`) and
    :math:`p = (\text{hits} + 1) / (\text{samples} + 1)`, which counts
    the observed pattern and is never 0.

    Args:
        diffs (list of float): Paired differences (e.g. test score of a
            readout minus that of another, per fold/seed).
        scale (float, optional): The magnitude of the scores the
            differences were taken between, for the tie tolerance.
            (default: the larger of 1 (scores in [0, 1]: accuracies,
            AUCs) and the largest :math:`|d_i|`)

    Returns:
        The p-value and :obj:`'exact'` or :obj:`'Monte Carlo'`.
    """
    data = np.asarray(diffs, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f'sign_flip_test takes one sequence of paired '
                         f'differences, got shape {data.shape}')
    if data.size == 0:
        return math.nan, 'exact'
    if not np.isfinite(data).all():
        return math.nan, 'exact' if data.size <= exact_max else 'Monte Carlo'
    n = data.size
    if scale is None:
        scale = max(1.0, float(np.abs(data).max()))
    tol = tie_tolerance(n, abs(scale))
    observed = abs(float(data.sum()))
    if n <= exact_max:
        bits = np.arange(2 ** n, dtype=np.int64)[:, None] >> np.arange(n)
        signs = 1.0 - 2.0 * (bits & 1)
        hits = int((np.abs(signs @ data) >= observed - tol).sum())
        return hits / 2 ** n, 'exact'
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, samples, 4096):
        size = min(4096, samples - start)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(size, n))
        hits += int((np.abs(signs @ data) >= observed - tol).sum())
    return (hits + 1) / (samples + 1), 'Monte Carlo'


__all__ = ['EXACT_MAX', 'FLOAT32_EPS', 'SAMPLES', 'sign_flip_test',
           'tie_tolerance']

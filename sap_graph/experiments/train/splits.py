r"""Stratified :math:`k`-fold splits with a validation split carved from
each training fold (the protocol of Errica et al. 2020, see
:mod:`.protocols`).
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import Tensor


def stratified_splits(
    labels: Tensor,
    folds: int = 10,
    val_ratio: float = 0.1,
    seed: int = 0,
) -> List[Dict[str, Tensor]]:
    r"""Returns the :obj:`folds` splits of stratified :math:`k`-fold
    cross-validation, each a dict of :obj:`'train'`, :obj:`'val'` and
    :obj:`'test'` index tensors. The test folds partition the dataset; the
    validation split is a stratified :obj:`val_ratio` share of the
    training fold, disjoint from its test fold.

    Args:
        labels (torch.Tensor): Graph labels :obj:`[num_graphs]`.
        folds (int, optional): Number of folds. (default: :obj:`10`)
        val_ratio (float, optional): Share of each training fold held out
            for model selection. (default: :obj:`0.1`)
        seed (int, optional): Seed of the shuffles. (default: :obj:`0`)
    """
    y = labels.view(-1).cpu().numpy()
    if folds < 2:
        raise ValueError(f"'folds' must be at least 2 (got {folds})")
    counts = np.bincount(y.astype(np.int64))
    if counts[counts > 0].min() < folds:
        raise ValueError(f"Cannot make {folds} stratified folds: the "
                         f"smallest class has {counts[counts > 0].min()} "
                         f"graphs")
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = []
    for fold, (train_val, test) in enumerate(skf.split(np.zeros(len(y)), y)):
        try:
            train, val = train_test_split(
                train_val, test_size=val_ratio, stratify=y[train_val],
                random_state=seed + fold)
        except ValueError:  # A class too small to stratify.
            train, val = train_test_split(
                train_val, test_size=val_ratio, random_state=seed + fold)
        out.append({
            'train': torch.from_numpy(np.sort(train)),
            'val': torch.from_numpy(np.sort(val)),
            'test': torch.from_numpy(np.sort(test)),
        })
    return out

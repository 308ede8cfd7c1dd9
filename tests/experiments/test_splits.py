"""Scaffold splits (``sap_graph.experiments.data.splits``): hand-worked
assignments, chemprop's balanced rule, the split properties on a real
MoleculeNet CSV, and OGB's official ogbg-molhiv split reproduced."""
import os.path as osp
import random
import shutil

import pandas as pd
import pytest
import torch

from sap_graph.experiments.data import (
    murcko_scaffold,
    murcko_scaffolds,
    scaffold_split,
    split_scaffolds,
)

pytest.importorskip('rdkit')
from rdkit import Chem  # noqa: E402


def test_murcko_scaffolds_by_hand():
    assert murcko_scaffold('Cc1ccccc1') == 'c1ccccc1'
    assert murcko_scaffold('OC(=O)c1ccccc1') == 'c1ccccc1'
    assert murcko_scaffold('CCO') == ''  # Acyclic.
    assert murcko_scaffold('CC1CCCCC1C') == 'C1CCCCC1'
    assert murcko_scaffold('c1ccccc1CCc1ccncc1') == 'c1ccc(CCc2ccncc2)cc1'
    # Chirality only when asked (OGB's official splits keep it).
    assert murcko_scaffold('C[C@H]1CC[C@@H](C)N1c1ccccc1') == (
        'c1ccc(N2CCCC2)cc1')
    decalin = 'CC1CC[C@H]2CCCC[C@@H]2C1'  # trans, a methyl on a ring.
    assert murcko_scaffold(decalin) == 'C1CCC2CCCCC2C1'
    assert murcko_scaffold(decalin, include_chirality=True) == (
        Chem.CanonSmiles('C1CC[C@H]2CCCC[C@@H]2C1'))  # trans-decalin.
    with pytest.raises(ValueError, match='cannot parse'):
        murcko_scaffold('Xx')


def check_split(split, scaffolds):
    n = len(scaffolds)
    assert list(split) == ['train', 'val', 'test']
    parts = [split[k] for k in ('train', 'val', 'test')]
    for part in parts:
        assert part.dtype == torch.long
        assert torch.equal(part, part.sort().values)
    everything = torch.cat(parts).sort().values
    assert torch.equal(everything, torch.arange(n))  # Disjoint, covering.
    owner = {}
    for name, part in split.items():
        for i in part.tolist():
            assert owner.setdefault(scaffolds[i], name) == name


def test_deterministic_split_by_hand():
    # Scaffolds: A x5, B x2 and three singletons at indices 2, 5 and 9.
    scaffolds = ['A', 'A', 'C', 'B', 'A', 'D', 'A', 'B', 'A', 'E']
    split = split_scaffolds(scaffolds)
    check_split(split, scaffolds)
    # A (5) then B (2) fill train to 7 of 8; singletons by descending
    # first index: E (9) -> train (8), D (5) -> val (9 <= 9), C -> test.
    assert split['train'].tolist() == [0, 1, 3, 4, 6, 7, 8, 9]
    assert split['val'].tolist() == [5]
    assert split['test'].tolist() == [2]
    assert all(torch.equal(split[k], split_scaffolds(scaffolds)[k])
               for k in split)
    with pytest.raises(ValueError, match='summing to 1'):
        split_scaffolds(scaffolds, sizes=(0.8, 0.1))
    with pytest.raises(ValueError, match='summing to 1'):
        split_scaffolds(scaffolds, sizes=(0.8, 0.3, 0.1))


def chemprop_balanced(scaffolds, sizes, seed):
    """chemprop's ``scaffold_split(balanced=True)`` (chemprop/data/
    scaffold.py), written out from its description."""
    n = len(scaffolds)
    groups = {}
    for i, s in enumerate(scaffolds):
        groups.setdefault(s, set()).add(i)
    train_size, val_size, test_size = (f * n for f in sizes)
    big = [g for g in groups.values()
           if len(g) > val_size / 2 or len(g) > test_size / 2]
    small = [g for g in groups.values() if g not in big]
    rng = random.Random(seed)
    rng.shuffle(big)
    rng.shuffle(small)
    train, val, test = [], [], []
    for g in big + small:
        if len(train) + len(g) <= train_size:
            train += g
        elif len(val) + len(g) <= val_size:
            val += g
        else:
            test += g
    return [sorted(train), sorted(val), sorted(test)]


@pytest.mark.realdata
@pytest.mark.slow
def test_bbbp_scaffold_splits(tmp_path):
    from tests.test_realdata import data_root
    src = osp.join(data_root('moleculenet', 'bbbp'), 'BBBP.csv')
    frame = pd.read_csv(shutil.copy(src, tmp_path / 'BBBP.csv'))
    mols = [Chem.MolFromSmiles(s) for s in frame['smiles']]
    mols = [m for m in mols if m is not None]
    n = len(mols)
    assert n == 2039
    scaffolds = murcko_scaffolds(mols)
    assert len(set(scaffolds)) > 500
    fixed = scaffold_split(mols)
    check_split(fixed, scaffolds)
    train, val = fixed['train'].numel(), fixed['val'].numel()
    assert train <= 0.8 * n and train + val <= 0.9 * n
    assert train >= 0.8 * n - max(map(scaffolds.count, set(scaffolds)))
    splits = {seed: scaffold_split(mols, seed=seed) for seed in (0, 1)}
    for seed, split in splits.items():
        check_split(split, scaffolds)
        ref = chemprop_balanced(scaffolds, (0.8, 0.1, 0.1), seed)
        assert [split[k].tolist() for k in ('train', 'val', 'test')] == ref
        assert split['train'].numel() <= 0.8 * n
        assert split['val'].numel() <= 0.1 * n
        assert split['test'].numel() >= 0.1 * n - 1
    assert not torch.equal(splits[0]['test'], splits[1]['test'])
    again = scaffold_split(mols, seed=1)
    assert all(torch.equal(again[k], splits[1][k]) for k in again)
    unbalanced = scaffold_split(mols, seed=3, balanced=False)
    check_split(unbalanced, scaffolds)
    assert torch.equal(unbalanced['test'],
                       scaffold_split(mols, seed=4, balanced=False)['test'])


@pytest.mark.realdata
@pytest.mark.slow
def test_official_ogbg_molhiv_split():
    """OGB's official scaffold split of ogbg-molhiv (whose split files
    have the official sha256, see shared/data/README.md) is reproduced
    exactly from MoleculeNet's HIV.csv with chirality kept."""
    from tests.test_realdata import data_root
    hiv = osp.join(data_root('moleculenet'), 'HIV.csv')
    folder = osp.join(data_root('ogb', 'ogbg_molhiv'), 'split', 'scaffold')
    scaffolds = []
    for smiles in pd.read_csv(hiv)['smiles']:
        mol = Chem.MolFromSmiles(smiles)
        if mol is None:  # 7 metal complexes this RDKit rejects.
            mol = Chem.MolFromSmiles(smiles, sanitize=False)
            mol.UpdatePropertyCache(strict=False)
            Chem.FastFindRings(mol)
            scaffolds.append(Chem.MolToSmiles(Chem.MurckoDecompose(mol)))
        else:
            scaffolds.append(murcko_scaffold(mol, include_chirality=True))
    split = split_scaffolds(scaffolds)
    check_split(split, scaffolds)
    for ours, theirs in (('train', 'train'), ('val', 'valid'),
                         ('test', 'test')):
        ref = pd.read_csv(osp.join(folder, f'{theirs}.csv.gz'),
                          header=None)[0].sort_values().tolist()
        assert split[ours].tolist() == ref
    assert [split[k].numel() for k in split] == [32901, 4113, 4113]

r"""Bemis-Murcko scaffold splits of molecules, as OGB / MoleculeNet
(deterministic, largest scaffold sets first) and chemprop (balanced,
shuffled by a seed) make them.
"""
from __future__ import annotations

import math
import random
from typing import (
    Any,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
)

import torch
from torch import Tensor

PARTS = ('train', 'val', 'test')


def require_rdkit() -> Any:
    r"""Returns :mod:`rdkit.Chem`, or raises an :class:`ImportError`
    naming the extra that installs it."""
    try:
        from rdkit import Chem, RDLogger
    except ImportError as e:
        raise ImportError(
            "Molecules need the optional 'rdkit' package: pip install "
            "'sap-graph[ogb]' (or pip install rdkit)") from e
    RDLogger.DisableLog('rdApp.*')  # No stderr line per bad SMILES.
    return Chem


def murcko_scaffold(mol: Any, include_chirality: bool = False) -> str:
    r"""Returns the Bemis-Murcko scaffold SMILES of a molecule (an RDKit
    :obj:`Mol` or a SMILES string); :obj:`''` for acyclic molecules.

    Raises:
        ValueError: For a SMILES string RDKit cannot parse.
    """
    Chem = require_rdkit()
    from rdkit.Chem.Scaffolds import MurckoScaffold
    if isinstance(mol, str):
        parsed = Chem.MolFromSmiles(mol)
        if parsed is None:
            raise ValueError(f"RDKit cannot parse the SMILES '{mol}'")
        mol = parsed
    return MurckoScaffold.MurckoScaffoldSmiles(
        mol=mol, includeChirality=include_chirality)


def murcko_scaffolds(smiles: Sequence[Any],
                     include_chirality: bool = False) -> List[str]:
    r"""Returns :func:`murcko_scaffold` of every molecule."""
    return [murcko_scaffold(s, include_chirality) for s in smiles]


def _check_sizes(sizes: Sequence[float]) -> Tuple[float, float, float]:
    if len(sizes) != 3 or any(s < 0 for s in sizes) or not math.isclose(
            sum(sizes), 1.0, abs_tol=1e-6):
        raise ValueError(f"Expected three non-negative split fractions "
                         f"(train, val, test) summing to 1 (got "
                         f"{tuple(sizes)})")
    return float(sizes[0]), float(sizes[1]), float(sizes[2])


def scaffold_sets(scaffolds: Sequence[str]) -> List[List[int]]:
    r"""Groups indices by scaffold, in order of first occurrence; each
    group is sorted."""
    groups: Dict[str, List[int]] = {}
    for i, scaffold in enumerate(scaffolds):
        groups.setdefault(scaffold, []).append(i)
    return list(groups.values())


def split_scaffolds(
    scaffolds: Sequence[str],
    sizes: Sequence[float] = (0.8, 0.1, 0.1),
    seed: Optional[int] = None,
    balanced: bool = True,
) -> Dict[str, Tensor]:
    r"""Splits molecules given their scaffolds (see :func:`scaffold_split`)
    so that no scaffold is in two parts.

    Args:
        scaffolds (sequence of str): The scaffold of each molecule, *e.g.*
            from :func:`murcko_scaffolds`.
        sizes (sequence of float, optional): Train, validation and test
            fractions. (default: :obj:`(0.8, 0.1, 0.1)`)
        seed (int, optional): :obj:`None` gives OGB's and MoleculeNet's
            deterministic split; a seed gives chemprop's balanced split
            shuffled by it. (default: :obj:`None`)
        balanced (bool, optional): With a seed, put the scaffold sets
            larger than half the validation or test size into train first
            and shuffle big and small sets separately (chemprop's
            :obj:`balanced=True`); :obj:`False` sorts the sets largest
            first, so that the seed changes nothing. (default: :obj:`True`)

    Returns:
        dict: :obj:`'train'`, :obj:`'val'` and :obj:`'test'` sorted index
        tensors (:obj:`torch.long`).
    """
    frac_train, frac_val, frac_test = _check_sizes(sizes)
    n = len(scaffolds)
    sets = scaffold_sets(scaffolds)
    parts: Tuple[List[int], List[int], List[int]] = ([], [], [])
    train, val, test = parts
    if seed is None:
        # OGB / MoleculeNet (deepchem, pretrain-gnns): largest sets first,
        # ties broken by the larger first index; cumulative cut-offs.
        sets.sort(key=lambda s: (len(s), s[0]), reverse=True)
        train_cut, val_cut = frac_train * n, (frac_train + frac_val) * n
        for group in sets:
            if len(train) + len(group) > train_cut:
                if len(train) + len(val) + len(group) > val_cut:
                    test += group
                else:
                    val += group
            else:
                train += group
    else:
        train_size, val_size, test_size = (frac_train * n, frac_val * n,
                                           frac_test * n)
        if balanced:  # chemprop's balanced scaffold split.
            big = [s for s in sets
                   if len(s) > val_size / 2 or len(s) > test_size / 2]
            small = [s for s in sets
                     if not (len(s) > val_size / 2 or len(s) > test_size / 2)]
            rng = random.Random(seed)
            rng.shuffle(big)
            rng.shuffle(small)
            sets = big + small
        else:
            sets.sort(key=len, reverse=True)
        for group in sets:
            if len(train) + len(group) <= train_size:
                train += group
            elif len(val) + len(group) <= val_size:
                val += group
            else:
                test += group
    return {name: torch.tensor(sorted(part), dtype=torch.long)
            for name, part in zip(PARTS, parts, strict=True)}


def scaffold_split(
    smiles: Sequence[Any],
    sizes: Sequence[float] = (0.8, 0.1, 0.1),
    seed: Optional[int] = None,
    balanced: bool = True,
    include_chirality: bool = False,
) -> Dict[str, Tensor]:
    r"""Bemis-Murcko scaffold split of molecules into train, validation
    and test parts that share no scaffold.

    Without a seed it is the deterministic split of OGB and MoleculeNet:
    scaffold sets sorted largest first (ties: larger first index first)
    fill train up to :obj:`sizes[0]`, then validation up to
    :obj:`sizes[0] + sizes[1]` of all molecules, the rest goes to test.
    With a seed it is chemprop's balanced scaffold split: sets larger
    than half the validation or test size are placed first, big and small
    sets are each shuffled with :class:`random.Random` (:obj:`seed`), and
    each set goes to the first part it fits in (train, validation, test).

    .. note::
        OGB made its official :obj:`ogbg-mol*` splits with
        :obj:`include_chirality=True`; chemprop's default is
        :obj:`False`.

    Args:
        smiles (sequence): SMILES strings or RDKit :obj:`Mol` objects.
        sizes (sequence of float, optional): Train, validation and test
            fractions. (default: :obj:`(0.8, 0.1, 0.1)`)
        seed (int, optional): See above. (default: :obj:`None`)
        balanced (bool, optional): See :func:`split_scaffolds`.
            (default: :obj:`True`)
        include_chirality (bool, optional): Keep stereochemistry in the
            scaffolds. (default: :obj:`False`)

    Returns:
        dict: :obj:`'train'`, :obj:`'val'` and :obj:`'test'` sorted index
        tensors (:obj:`torch.long`), disjoint and covering all molecules.
    """
    _check_sizes(sizes)
    return split_scaffolds(murcko_scaffolds(smiles, include_chirality),
                           sizes, seed, balanced)

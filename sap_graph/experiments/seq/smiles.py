r"""SMILES strings of ogbg-molhiv as padded token sequences.

The strings come from :obj:`ogbg_molhiv/mapping/mol.csv.gz` (same rows as
the OGB dataset), the split from :obj:`split/scaffold/*.csv.gz` (the
official scaffold split). Tokens follow the regular expression of
`"Molecular Transformer" <https://arxiv.org/abs/1811.02633>`_ (bracket
atoms, two-letter halogens, ring bonds ``%nn`` as one token each).
"""
from __future__ import annotations

import csv
import gzip
import os.path as osp
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from sap_graph.experiments.data.task import DatasetNotFoundError
from sap_graph.experiments.errors import ConfigError

SMILES_REGEX = re.compile(
    r'(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|'
    r'\/|:|~|@|\?|>|\*|\$|\%[0-9]{2}|[0-9])')

PAD, CLS, UNK = '<pad>', '<cls>', '<unk>'


def tokenize(smiles: str) -> List[str]:
    """Regex tokens of one SMILES string (joined, they give it back)."""
    tokens = SMILES_REGEX.findall(smiles)
    if ''.join(tokens) != smiles:  # Characters the regex does not cover.
        return list(smiles)
    return tokens


class Vocabulary:
    """Token ids: :obj:`0` padding, :obj:`1` the [CLS] token, :obj:`2`
    unknown, then the tokens seen when building it, most frequent first."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self.itos = [PAD, CLS, UNK] + list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, sequences: Sequence[Sequence[str]],
              min_count: int = 1) -> 'Vocabulary':
        counts: Dict[str, int] = {}
        for seq in sequences:
            for tok in seq:
                counts[tok] = counts.get(tok, 0) + 1
        kept = sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t))
        return cls(kept)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, tokens: Sequence[str]) -> List[int]:
        unk = self.stoi[UNK]
        return [self.stoi[CLS]] + [self.stoi.get(t, unk) for t in tokens]


@dataclass
class SmilesTask:
    """Token sequences of a molecule set with labels and split.

    Attributes:
        smiles (list): The SMILES strings.
        tokens (torch.Tensor): Padded ids :obj:`[M, max_length]`, the
            [CLS] token first.
        lengths (torch.Tensor): Sequence lengths :obj:`[M]` ([CLS]
            included, truncated at :obj:`max_length`).
        y (torch.Tensor): Labels :obj:`[M]` (float 0/1).
        split_idx (dict): :obj:`'train'`, :obj:`'valid'`, :obj:`'test'`
            molecule indices.
        vocab (Vocabulary): Built from the training molecules.
    """
    smiles: List[str]
    tokens: Tensor
    lengths: Tensor
    y: Tensor
    split_idx: Dict[str, Tensor]
    vocab: Vocabulary


#: The files of the OGB folder :obj:`ogbg_molhiv/` that
#: :func:`read_molhiv` reads.
MOLHIV_FILES = ('mapping/mol.csv.gz', 'split/scaffold/train.csv.gz',
                'split/scaffold/valid.csv.gz', 'split/scaffold/test.csv.gz')


def check_molhiv_folder(folder: str) -> None:
    """Raises a :class:`~sap_graph.experiments.data.DatasetNotFoundError`
    (field :obj:`'root'`) naming the missing files unless :obj:`folder`
    (the OGB folder :obj:`ogbg_molhiv/`) holds :data:`MOLHIV_FILES`."""
    missing = [f for f in MOLHIV_FILES
               if not osp.isfile(osp.join(folder, f))]
    if missing:
        what = ('no such folder' if not osp.isdir(folder) else
                f"missing: {', '.join(missing)}")
        raise DatasetNotFoundError(
            f"ogbg-molhiv not found in '{folder}' ({what}); expected OGB's "
            f"ogbg_molhiv/ folder with {', '.join(MOLHIV_FILES)}")


def read_molhiv(folder: str) -> Tuple[List[str], Tensor,
                                      Dict[str, Tensor]]:
    """Reads :obj:`(smiles, y, split_idx)` of the OGB folder
    :obj:`ogbg_molhiv/` (read-only; :func:`check_molhiv_folder`)."""
    check_molhiv_folder(folder)
    with gzip.open(osp.join(folder, 'mapping', 'mol.csv.gz'), 'rt') as f:
        rows = list(csv.DictReader(f))
    smiles = [r['smiles'] for r in rows]
    y = torch.tensor([float(r['HIV_active']) for r in rows])
    split_idx = {}
    for name in ('train', 'valid', 'test'):
        path = osp.join(folder, 'split', 'scaffold', f'{name}.csv.gz')
        with gzip.open(path, 'rt') as f:
            split_idx[name] = torch.tensor(
                [int(line) for line in f.read().split()])
    return smiles, y, split_idx


#: The smallest :obj:`limit`: its tenths, the validation and test
#: molecules, hold one molecule each.
MIN_LIMIT = 10


def check_limit(limit: Optional[int]) -> None:
    """Raises a :class:`~sap_graph.experiments.errors.ConfigError` (field
    :obj:`'limit'`) unless :obj:`limit` is :obj:`None` or an integer of at
    least :data:`MIN_LIMIT`."""
    if limit is None:
        return
    if (isinstance(limit, bool) or not isinstance(limit, int)
            or limit < MIN_LIMIT):
        raise ConfigError('limit', f"'limit' must be an integer of at least "
                          f"{MIN_LIMIT}, so that its validation and test "
                          f"tenths hold a molecule each (got {limit!r})")


def limit_split(split_idx: Dict[str, Tensor],
                limit: Optional[int]) -> Dict[str, Tensor]:
    """The first 80/10/10% of :obj:`limit` molecules of every split (for a
    quick run); the split unchanged when :obj:`limit` is :obj:`None`
    (:func:`check_limit`)."""
    check_limit(limit)
    if limit is None:
        return split_idx
    sizes = {'train': limit - 2 * (limit // 10), 'valid': limit // 10,
             'test': limit // 10}
    return {k: v[:sizes[k]] for k, v in split_idx.items()}


def load_smiles_task(folder: str, max_length: int = 128,
                     limit: Optional[int] = None) -> SmilesTask:
    """ogbg-molhiv as token sequences: the vocabulary comes from the
    training molecules, sequences are cut at :obj:`max_length` tokens
    (molecules outside a :obj:`limit`-ed split stay empty)."""
    smiles, y, split_idx = read_molhiv(folder)
    split_idx = limit_split(split_idx, limit)
    needed = torch.cat(list(split_idx.values())).tolist()
    toks = {i: tokenize(smiles[i]) for i in needed}
    vocab = Vocabulary.build([toks[i] for i in split_idx['train'].tolist()])
    tokens = torch.zeros(len(smiles), max_length, dtype=torch.long)
    lengths = torch.zeros(len(smiles), dtype=torch.long)
    for i, seq in toks.items():
        ids = vocab.encode(seq)[:max_length]
        tokens[i, :len(ids)] = torch.tensor(ids)
        lengths[i] = len(ids)
    return SmilesTask(smiles, tokens, lengths, y, split_idx, vocab)


def length_batches(lengths: Tensor, index: Tensor, batch_size: int,
                   shuffle: bool, generator: Optional[torch.Generator] = None,
                   pool: int = 50) -> Iterator[Tensor]:
    """Batches of molecule ids from :obj:`index`, grouped by similar
    length (sorted within pools of :obj:`pool` batches, then the batches
    shuffled) so that little of a padded batch is padding."""
    if shuffle:
        index = index[torch.randperm(index.numel(), generator=generator)]
    chunk = batch_size * pool
    batches = []
    for start in range(0, index.numel(), chunk):
        part = index[start:start + chunk]
        part = part[torch.argsort(lengths[part], stable=True)]
        batches.extend(part.split(batch_size))
    if shuffle:
        order = torch.randperm(len(batches), generator=generator).tolist()
        batches = [batches[i] for i in order]
    yield from batches

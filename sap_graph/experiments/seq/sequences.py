r"""The SMILES sequence experiment: one classifier per readout over
tokens and seed, trained by :func:`~.loop.fit_sequences` on the official
scaffold split of ogbg-molhiv."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Tuple

import torch
from torch import Tensor
from torch_geometric import seed_everything

from sap_graph.experiments.option_types import (
    check_fields,
    depth,
    one_of,
    probability,
    size,
    size_at_most,
    width,
)
from sap_graph.experiments.seq.loop import Batch, fit_sequences
from sap_graph.experiments.seq.models import READOUTS, SequenceClassifier
from sap_graph.experiments.seq.smiles import CLS, SmilesTask, length_batches
from sap_graph.experiments.train.config import check_learning_rate
from sap_graph.ops.padded import lengths_to_mask

#: Kinds of SMILES tokens, for the attention summary.
TOKEN_CLASSES = ('[CLS]', 'aromatic atom', 'aliphatic atom', 'bracket atom',
                 'ring closure', 'bond', 'branch', 'other')


@dataclass
class SequenceConfig:
    """Hyperparameters of one sequence run (defaults: the CPU budget of
    :obj:`examples/smiles_sequence.py`, whose flags are made from these
    fields and their help texts)."""
    readout: str = field(default='sap', metadata={
        'help': 'readout over the tokens', 'hidden': True})
    encoder: str = field(default='conv', metadata={
        'help': 'token encoder; the transformer is ~6x slower on CPU',
        'choices': ['conv', 'transformer']})
    hidden_channels: int = field(default=32,
                                 metadata={'help': 'token width'})
    num_layers: int = field(default=2, metadata={'help': 'encoder layers'})
    heads: int = field(default=4, metadata={'help': 'SAP heads'})
    dropout: float = field(default=0.1, metadata={'help': 'dropout'})
    batch_size: int = field(default=128, metadata={'help': 'batch size'})
    lr: float = field(default=2e-3, metadata={'help': 'learning rate'})
    epochs: int = field(default=3, metadata={'help': 'epochs per run'})
    max_length: int = field(default=128, metadata={
        'help': 'tokens kept per SMILES, [CLS] included'})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        r"""Raises a :class:`~sap_graph.experiments.errors.ConfigError`
        naming the first field whose value makes no run: counts and widths
        are positive integers (widths, depth and length bounded),
        :obj:`max_length` keeps a token after [CLS], :obj:`dropout` is
        in :math:`[0, 1)`, :obj:`lr` a positive float32 number (called
        on construction)."""
        check_fields(self, {
            'readout': one_of(*READOUTS),
            'encoder': one_of('conv', 'transformer'),
            'hidden_channels': width, 'num_layers': depth, 'heads': size,
            'dropout': probability, 'batch_size': size,
            'lr': check_learning_rate, 'epochs': size,
            'max_length': _token_count})


#: The longest sequence kept (a position embedding row per token).
MAX_LENGTH = 2**16


def _token_count(name: str, value: Any) -> None:
    size_at_most(MAX_LENGTH, 'longer than any SMILES')(name, value)
    if value < 2:
        raise ValueError(f"'{name}' must be at least 2, the [CLS] token and "
                         f"one token of the SMILES (got {value!r})")


def sequence_batches(task: SmilesTask, split: str, batch_size: int,
                     shuffle: bool) -> Iterator[Batch]:
    """:obj:`((tokens, lengths), y)` batches of one split, grouped by
    length."""
    for ids in length_batches(task.lengths, task.split_idx[split],
                              batch_size, shuffle):
        yield (task.tokens[ids], task.lengths[ids]), task.y[ids]


def run_sequence(task: SmilesTask, cfg: SequenceConfig, seed: int,
                 log: bool = True) -> Dict[str, Any]:
    """Trains one :class:`~.models.SequenceClassifier`; returns
    :func:`~.loop.fit_sequences`'s result with the model under
    :obj:`'model'`."""
    seed_everything(seed)
    model = SequenceClassifier(len(task.vocab), cfg.hidden_channels,
                               cfg.readout, cfg.num_layers, cfg.encoder,
                               cfg.max_length, cfg.dropout, cfg.heads)
    result = fit_sequences(
        model, lambda: sequence_batches(task, 'train', cfg.batch_size, True),
        {split: (lambda s=split: sequence_batches(task, s, 512, False))
         for split in ('valid', 'test')}, cfg.epochs, cfg.lr, log=log)
    result['model'] = model
    result['num_parameters'] = sum(p.numel() for p in model.parameters())
    return result


def token_class(token: str) -> str:
    """The kind of a SMILES token (one of :data:`TOKEN_CLASSES`)."""
    if token == CLS:
        return '[CLS]'
    if token.startswith('['):
        return 'bracket atom'  # Charged, isotopic or explicit-H atoms.
    if token[0].isalpha():
        return 'aromatic atom' if token[0].islower() else 'aliphatic atom'
    if token[0].isdigit() or token.startswith('%'):
        return 'ring closure'
    if token in ('-', '=', '#', '/', '\\', ':'):
        return 'bond'
    if token in ('(', ')'):
        return 'branch'
    return 'other'


@torch.no_grad()
def split_attention(model: SequenceClassifier, task: SmilesTask, split: str,
                    batch_size: int = 512
                    ) -> Tuple[Tensor, List[Tensor], Tensor]:
    """SAP attention over the tokens of every molecule of a split (a model
    with the :obj:`'sap'` readout): returns the molecule ids, their weights
    :obj:`[length]` (averaged over heads; the [CLS] token first) and the
    predicted logits, in the order of :obj:`task.split_idx[split]`."""
    model.eval()
    ids, alphas, logits = [], [], []
    for batch in length_batches(task.lengths, task.split_idx[split],
                                batch_size, shuffle=False):
        lengths = task.lengths[batch]
        tokens = task.tokens[batch, :int(lengths.max())]
        mask = lengths_to_mask(lengths, tokens.size(1))
        out, alpha = model.readout(model.encoder(tokens, mask), mask,
                                   return_attention_weights=True)
        weight = alpha.mean(-1)  # [B, L]
        alphas.extend(w[:n] for w, n in zip(weight, lengths.tolist(),
                                            strict=True))
        logits.append(model.head(out).squeeze(-1))
        ids.append(batch)
    order = torch.argsort(torch.cat(ids))
    return (torch.cat(ids)[order], [alphas[i] for i in order.tolist()],
            torch.cat(logits)[order])


def attention_by_class(task: SmilesTask, ids: Tensor,
                       alphas: List[Tensor]) -> Dict[str, Dict[str, Any]]:
    """Mean attention relative to uniform (weight x number of tokens, 1 =
    uniform) per token class (:data:`TOKEN_CLASSES`), separately for
    inactive and active molecules (:obj:`nan` where the class has no
    token), with token counts."""
    sums = {(c, y): [0.0, 0] for c in TOKEN_CLASSES for y in (0, 1)}
    for i, alpha in zip(ids.tolist(), alphas, strict=True):
        label = int(task.y[i])
        rel = (alpha * alpha.numel()).tolist()
        for tok, r in zip(task.tokens[i, :alpha.numel()].tolist(), rel,
                          strict=True):
            cell = sums[(token_class(task.vocab.itos[tok]), label)]
            cell[0] += r
            cell[1] += 1
    def mean(total: float, count: int) -> float:
        return total / count if count else math.nan

    return {c: {'inactive': mean(*sums[(c, 0)]),
                'active': mean(*sums[(c, 1)]),
                'count': sums[(c, 0)][1] + sums[(c, 1)][1]}
            for c in TOKEN_CLASSES}


def attention_rows(by_class: Dict[str, Dict[str, Any]]) -> List[List[str]]:
    """Rows ``[class, tokens, inactive, active]`` of
    :func:`attention_by_class`'s result for the classes that occur, with
    :obj:`n/a` where a class has no token among inactive or active
    molecules."""
    def cell(value: float) -> str:
        return 'n/a' if math.isnan(value) else f'{value:.2f}'

    return [[c, f"{v['count']:,}", cell(v['inactive']), cell(v['active'])]
            for c, v in by_class.items() if v['count'] > 0]


def top_actives(task: SmilesTask, ids: Tensor, alphas: List[Tensor],
                logits: Tensor, count: int = 4, max_tokens: int = 40
                ) -> List[Tuple[List[str], List[float], str]]:
    """The :obj:`count` active molecules of :func:`split_attention`'s result
    that the model scores highest among those of at most
    :obj:`max_tokens` tokens, as ``(tokens, weights relative to uniform,
    title)`` for :func:`~.figures.plot_token_attention`."""
    short = [k for k in range(ids.numel())
             if task.y[ids[k]] == 1 and alphas[k].numel() <= max_tokens]
    short.sort(key=lambda k: -float(logits[k]))
    examples = []
    for k in short[:count]:
        i, alpha = int(ids[k]), alphas[k]
        tokens = [task.vocab.itos[t]
                  for t in task.tokens[i, :alpha.numel()].tolist()]
        examples.append((tokens, (alpha * alpha.numel()).tolist(),
                         f'active, molecule {i}, '
                         f'p = {float(logits[k].sigmoid()):.2f}'))
    return examples

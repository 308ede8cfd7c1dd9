r"""The SMILES sequence experiment: one classifier per readout over
tokens and seed, trained by :func:`~.loop.fit` on the official scaffold
split of ogbg-molhiv."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator

import torch
from torch_geometric import seed_everything

from sap_graph.experiments.seq.loop import Batch, fit
from sap_graph.experiments.seq.models import SequenceClassifier
from sap_graph.experiments.seq.smiles import SmilesTask, length_batches


@dataclass
class SequenceConfig:
    """Hyperparameters of one sequence run (defaults: the CPU budget of
    :obj:`examples/smiles_sequence.py`)."""
    readout: str = 'sap'
    encoder: str = 'conv'
    hidden_channels: int = 32
    num_layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    batch_size: int = 128
    lr: float = 2e-3
    epochs: int = 3
    max_length: int = 128


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
    :func:`~.loop.fit`'s result with the model under :obj:`'model'`."""
    seed_everything(seed)
    model = SequenceClassifier(len(task.vocab), cfg.hidden_channels,
                               cfg.readout, cfg.num_layers, cfg.encoder,
                               cfg.max_length, cfg.dropout, cfg.heads)
    result = fit(
        model, lambda: sequence_batches(task, 'train', cfg.batch_size, True),
        {split: (lambda s=split: sequence_batches(task, s, 512, False))
         for split in ('valid', 'test')}, cfg.epochs, cfg.lr, log=log)
    result['model'] = model
    result['num_parameters'] = sum(p.numel() for p in model.parameters())
    return result


@torch.no_grad()
def token_attention(model: SequenceClassifier, task: SmilesTask,
                    index: int) -> torch.Tensor:
    """SAP attention :obj:`[length, heads]` over the tokens of molecule
    :obj:`index` (a model with the :obj:`'sap'` readout)."""
    model.eval()
    length = int(task.lengths[index])
    tokens = task.tokens[index:index + 1, :length]
    mask = torch.ones_like(tokens, dtype=torch.bool)
    h = model.encoder(tokens, mask)
    _, alpha = model.readout(h, mask, return_attention_weights=True)
    return alpha[0]

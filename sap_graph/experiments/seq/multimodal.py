r"""The multimodal fusion experiment on ogbg-molhiv, in two stages.

1. :func:`train_encoders`: the graph (:class:`~.fusion.GINEncoder`),
   sequence (:class:`SequenceEmbedding`) and fingerprint
   (:class:`~.fusion.FingerprintMLP`) encoders are each trained alone with
   a linear probe, and their best-validation states embed every molecule
   once.
2. :func:`run_fusion`: :class:`~.fusion.FusionHead` models fuse the frozen
   embeddings (SAP over the modality tokens, concatenation, mean) over
   seeds, trained with modality dropout so that every fusion has seen
   missing modalities; :func:`evaluate_fusion` scores them with every
   modality present and with each one dropped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch_geometric import seed_everything

from sap_graph.experiments.option_types import (
    check_fields,
    depth,
    probability,
    size,
    width,
)
from sap_graph.experiments.seq.figures import size_groups
from sap_graph.experiments.seq.fusion import (
    MODALITIES,
    FingerprintMLP,
    FusionHead,
    GINEncoder,
    Probe,
    collate_graphs,
    graph_batches,
    modality_dropout,
)
from sap_graph.experiments.seq.loop import (
    Batch,
    fit_sequences,
    predict_sequences,
    rocauc,
)
from sap_graph.experiments.seq.models import (
    SequenceEncoder,
    TokenReadout,
    trim_padding,
)
from sap_graph.experiments.seq.sequences import sequence_batches
from sap_graph.experiments.seq.smiles import SmilesTask
from sap_graph.experiments.train.config import check_learning_rate


@dataclass
class FusionConfig:
    """Budgets of both stages (defaults: :obj:`examples/multimodal_fusion.py`
    on one CPU core, whose flags are made from these fields and their help
    texts)."""
    graph_channels: int = field(default=64, metadata={
        'help': 'stage 1: GIN width'})
    graph_layers: int = field(default=3, metadata={
        'help': 'stage 1: GINE layers'})
    sequence_channels: int = field(default=32, metadata={
        'help': 'stage 1: SMILES token width'})
    fingerprint_channels: int = field(default=64, metadata={
        'help': 'stage 1: fingerprint MLP width'})
    encoder_epochs: int = field(default=2, metadata={
        'help': 'stage 1 epochs per encoder (with --limit, a smoke test: '
        'as many as --epochs)'})
    encoder_lr: float = field(default=2e-3, metadata={
        'help': 'stage 1 learning rate'})
    batch_size: int = field(default=128, metadata={
        'help': 'stage 1 batch size'})
    channels: int = field(default=64, metadata={
        'help': 'fused token width'})
    heads: int = field(default=1, metadata={'help': 'SAP heads'})
    fusion_epochs: int = field(default=15, metadata={
        'help': 'stage 2 epochs per fusion and seed; with --limit also '
        'stage 1', 'flag': 'epochs'})
    fusion_batch_size: int = field(default=256, metadata={
        'help': 'stage 2 batch size'})
    fusion_lr: float = field(default=1e-3, metadata={
        'help': 'stage 2 learning rate'})
    modality_dropout: float = field(default=0.15, metadata={
        'help': 'probability of masking a modality token in training'})

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        r"""Raises a :class:`~sap_graph.experiments.errors.ConfigError`
        naming the first field whose value makes no run: counts and widths
        are positive integers (widths and depth bounded), learning rates
        positive float32 numbers, :obj:`modality_dropout` is in
        :math:`[0, 1)` (called on construction)."""
        widths = ('graph_channels', 'sequence_channels',
                  'fingerprint_channels', 'channels')
        counts = ('encoder_epochs', 'batch_size', 'heads', 'fusion_epochs',
                  'fusion_batch_size')
        check_fields(self, {
            **{name: width for name in widths},
            'graph_layers': depth,
            **{name: size for name in counts},
            'encoder_lr': check_learning_rate,
            'fusion_lr': check_learning_rate,
            'modality_dropout': _modality_dropout})


def _modality_dropout(name: str, value: Any) -> None:
    try:
        probability(name, value)
    except ValueError:
        raise ValueError(f"'{name}' must be in [0, 1), the probability of "
                         f"masking each modality token in training (1 "
                         f"masks them all; got {value!r})") from None


class SequenceEmbedding(torch.nn.Module):
    """Token encoder and mean over the tokens: :obj:`[B, C]`."""

    def __init__(self, num_tokens: int, channels: int,
                 max_length: int = 128) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(num_tokens, channels, 2, 'conv',
                                       max_length)
        self.readout = TokenReadout('mean', channels)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        tokens, mask = trim_padding(tokens, lengths)
        return self.readout(self.encoder(tokens, mask), mask)


def _graph_batches(dataset, y: Tensor, index: Tensor, batch_size: int,
                   shuffle: bool) -> Iterator[Batch]:
    for ids in graph_batches(dataset, index, batch_size, shuffle):
        yield (collate_graphs(dataset, ids), ), y[ids]


def _fp_batches(fp: Tensor, y: Tensor, index: Tensor, batch_size: int,
                shuffle: bool) -> Iterator[Batch]:
    if shuffle:
        index = index[torch.randperm(index.numel())]
    for ids in index.split(batch_size):
        yield (fp[ids], ), y[ids]


@torch.no_grad()
def _embed(encoder: torch.nn.Module, batches: Iterator[Batch]) -> Tensor:
    encoder.eval()
    return torch.cat([encoder(*inputs) for inputs, _ in batches])


def train_encoders(dataset, task: SmilesTask, fp: Tensor,
                   cfg: FusionConfig, seed: int = 0,
                   log: bool = True) -> Dict[str, Any]:
    r"""Trains the three modality encoders alone (stage 1).

    Args:
        dataset: The PyG ogbg-molhiv graphs (same rows as :obj:`task`).
        task (SmilesTask): Tokens, labels and split.
        fp (torch.Tensor): Fingerprints :obj:`[M, bits]`.
        cfg (FusionConfig): Budgets.
        seed (int, optional): Seed. (default: :obj:`0`)

    Returns:
        :obj:`'embeddings'` (the list of :obj:`[M, C_m]` tensors, rows
        outside the split zero) and :obj:`'unimodal'` (validation and test
        ROC-AUC of every encoder with its probe).
    """
    y, split = task.y, task.split_idx
    used = torch.cat(list(split.values()))
    # Built after seeding (below), so that the seed fixes their weights.
    encoders = {
        'graph': lambda: GINEncoder(cfg.graph_channels, cfg.graph_layers),
        'sequence': lambda: SequenceEmbedding(
            len(task.vocab), cfg.sequence_channels, task.tokens.size(1)),
        'fingerprint': lambda: FingerprintMLP(fp.size(1),
                                              cfg.fingerprint_channels),
    }
    widths = {'graph': cfg.graph_channels,
              'sequence': cfg.sequence_channels,
              'fingerprint': cfg.fingerprint_channels}

    def batches(name: str, index: Tensor, shuffle: bool,
                batch_size: int) -> Iterator[Batch]:
        if name == 'graph':
            return _graph_batches(dataset, y, index, batch_size, shuffle)
        if name == 'sequence':
            sub = SmilesTask(task.smiles, task.tokens, task.lengths, y,
                             {'x': index}, task.vocab)
            return sequence_batches(sub, 'x', batch_size, shuffle)
        return _fp_batches(fp, y, index, batch_size, shuffle)

    embeddings, unimodal = [], {}
    for name in MODALITIES:
        seed_everything(seed)
        if log:
            print(f'Encoder: {name}')
        probe = Probe(encoders[name](), widths[name])
        result = fit_sequences(
            probe, lambda n=name: batches(n, split['train'], True,
                                          cfg.batch_size),
            {s: (lambda s=s, n=name: batches(n, split[s], False, 512))
             for s in ('valid', 'test')}, cfg.encoder_epochs,
            cfg.encoder_lr, log=log)
        unimodal[name] = {k: result[k] for k in ('val', 'test',
                                                 'best_epoch',
                                                 'epoch_time')}
        # Embed in the order of `used`, keep in molecule order.
        emb = torch.zeros(y.numel(), widths[name])
        emb[used] = _embed(probe.encoder, batches(name, used, False, 512))
        embeddings.append(emb)
    return {'embeddings': embeddings, 'unimodal': unimodal}


def _fusion_batches(emb: Sequence[Tensor], y: Tensor, index: Tensor,
                    batch_size: int, drop: float,
                    present: Optional[Tensor] = None) -> Iterator[Batch]:
    if drop > 0:
        index = index[torch.randperm(index.numel())]
    for ids in index.split(batch_size):
        if drop > 0:
            mask = modality_dropout(ids.numel(), len(emb), drop)
        elif present is not None:
            mask = present.expand(ids.numel(), -1)
        else:
            mask = torch.ones(ids.numel(), len(emb), dtype=torch.bool)
        yield ([e[ids] for e in emb], mask), y[ids]


def run_fusion(embeddings: Sequence[Tensor], task: SmilesTask, fusion: str,
               cfg: FusionConfig, seed: int,
               log: bool = False) -> Dict[str, Any]:
    """Trains one :class:`~.fusion.FusionHead` on the frozen embeddings
    (stage 2); returns :func:`~.loop.fit_sequences`'s result with the model."""
    seed_everything(seed)
    y, split = task.y, task.split_idx
    model = FusionHead(fusion, [e.size(1) for e in embeddings],
                       cfg.channels, cfg.heads)
    result = fit_sequences(
        model, lambda: _fusion_batches(embeddings, y, split['train'],
                                       cfg.fusion_batch_size,
                                       cfg.modality_dropout),
        {s: (lambda s=s: _fusion_batches(embeddings, y, split[s], 1024, 0.0))
         for s in ('valid', 'test')}, cfg.fusion_epochs, cfg.fusion_lr,
        log=log)
    result['model'] = model
    return result


@torch.no_grad()
def evaluate_fusion(model: FusionHead, embeddings: Sequence[Tensor],
                    task: SmilesTask, split: str = 'test'
                    ) -> Dict[str, Any]:
    """Test ROC-AUC and attention (SAP; :obj:`[n, M]`) with every modality
    present (:obj:`'all'`) and with each one masked out."""
    index = task.split_idx[split]
    out: Dict[str, Any] = {}
    cases: List[Optional[str]] = [None, *MODALITIES]
    for dropped in cases:
        present = torch.tensor([m != dropped for m in MODALITIES])
        pred, y = predict_sequences(model, _fusion_batches(
            embeddings, task.y, index, 1024, 0.0, present))
        model.eval()
        emb = [e[index] for e in embeddings]
        _, alpha = model.fuse(emb, present.expand(index.numel(), -1))
        out[dropped or 'all'] = {'rocauc': rocauc(y, pred), 'alpha': alpha}
    return out


def scaffold_groups(smiles: Sequence[str]) -> Optional[List[str]]:
    """Bemis-Murcko scaffold SMILES (RDKit), or :obj:`None` without
    RDKit."""
    try:
        from rdkit import RDLogger
        from rdkit.Chem.Scaffolds import MurckoScaffold
    except ImportError:
        return None
    RDLogger.DisableLog('rdApp.*')
    out = []
    for s in smiles:
        try:
            out.append(MurckoScaffold.MurckoScaffoldSmiles(
                smiles=s, includeChirality=False))
        except (ValueError, RuntimeError):
            out.append('?')
    return out


@torch.no_grad()
def attention_groups(model: FusionHead, embeddings: Sequence[Tensor],
                     task: SmilesTask) -> Tuple[Tensor, List[str], str]:
    """The SAP attention over the modalities of every molecule of the
    split (:obj:`[n, M]`), their groups (Bemis-Murcko scaffolds, or size
    quartiles without RDKit) and the name of the grouping. The scaffold
    split leaves nearly every test scaffold alone: all molecules are
    grouped."""
    used = torch.cat(list(task.split_idx.values()))
    model.eval()
    _, alpha = model.fuse([e[used] for e in embeddings],
                          torch.ones(used.numel(), len(embeddings),
                                     dtype=torch.bool))
    groups = scaffold_groups([task.smiles[i] for i in used.tolist()])
    if groups is None:  # No RDKit: molecule sizes instead.
        return (alpha, size_groups(task.lengths[used]),
                'size quartiles (no RDKit for scaffolds)')
    return alpha, groups, 'scaffolds (all molecules)'


def fusion_attention_rows(evaluation: Dict[str, Any],
                          y: Tensor) -> List[List[str]]:
    """Rows of the mean SAP attention per modality of
    :func:`evaluate_fusion`'s :obj:`evaluation` (labels :obj:`y`): all
    present by class, and with each modality masked; the ROC-AUC of
    each case."""
    rows = []
    for case, value in evaluation.items():
        groups = [('all', torch.ones_like(y, dtype=torch.bool))]
        if case == 'all':
            groups += [('inactive', y == 0), ('active', y == 1)]
        label = 'all present' if case == 'all' else f'{case} masked'
        for name, sel in groups:
            rows.append([f'{label}, {name} (n={int(sel.sum())})'] + [
                f'{float(v):.3f}' for v in value['alpha'][sel].mean(0)
            ] + [f"{value['rocauc']:.4f}" if name == 'all' else ''])
    return rows

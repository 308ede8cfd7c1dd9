r"""Multimodal fusion on ogbg-molhiv: a graph (GIN), a sequence (SMILES
tokens) and a fingerprint embedding of every molecule, fused over the
three modality tokens :obj:`[B, 3, C]`.

* :class:`GINEncoder`, :class:`FingerprintMLP` and
  :class:`~.models.SequenceClassifier` are the modality encoders, each
  trained on its own (:func:`encoder_batches` feeds them).
* :class:`FusionHead` fuses the frozen modality embeddings by
  :obj:`'sap'` (:class:`~sap_graph.SAPAggregation` over the modality
  tokens, a missing modality masked out), :obj:`'concat'` (a missing one
  zeroed) or :obj:`'mean'` (over the present ones).
* :func:`morgan_fingerprints` needs RDKit; :func:`graph_fingerprints` is
  the substitute computed from the PyG graphs (hashed atom-environment
  counts, ECFP-like).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.nn import GINEConv, global_mean_pool

from sap_graph import SAPAggregation
from sap_graph.experiments.seq.models import check_bool_mask, check_heads

MODALITIES = ('graph', 'sequence', 'fingerprint')
FUSIONS = ('sap', 'concat', 'mean')


def morgan_fingerprints(smiles: Sequence[str], bits: int = 1024,
                        radius: int = 2) -> Tensor:
    """RDKit Morgan (ECFP4 for radius 2) bit vectors :obj:`[M, bits]`
    (:obj:`uint8`); raises :class:`ImportError` without RDKit."""
    import numpy as np
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog('rdApp.*')
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius,
                                                    fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    for i, s in enumerate(smiles):
        mol = Chem.MolFromSmiles(s)
        if mol is not None:
            out[i] = gen.GetFingerprintAsNumPy(mol)
    return torch.from_numpy(out)


def graph_fingerprints(x: Tensor, edge_index: Tensor, edge_attr: Tensor,
                       batch: Tensor, num_graphs: int, bits: int = 1024,
                       radius: int = 2) -> Tensor:
    r"""Hashed atom-environment counts :obj:`[M, bits]` from PyG graphs, an
    ECFP-like substitute for Morgan fingerprints without RDKit: atom
    identifiers start as a hash of the atom features and are re-hashed
    :obj:`radius` times with the order-free sum of (bond, neighbour)
    hashes; every identifier of every radius adds one count to bit
    :math:`\mathrm{id} \bmod \mathrm{bits}` (counts are
    :math:`\log(1 + c)`-scaled, :obj:`float`)."""
    prime = 2_147_483_647
    gen = torch.Generator().manual_seed(12345)
    mult = torch.randint(1, prime, (x.size(1), ), generator=gen)
    bond_mult = torch.randint(1, prime, (edge_attr.size(1), ), generator=gen)
    a, b, c = torch.randint(1, prime, (3, ), generator=gen).tolist()
    ident = (x.long() * mult).sum(1) % prime
    bond = ((edge_attr.long() + 1) * bond_mult).sum(1) % prime
    ids = [ident]
    for _ in range(radius):
        src, dst = edge_index
        msg = ((ident[src] * a + bond) % prime * b + c) % prime
        msg = (msg * msg) % prime  # Non-linear, so sums stay distinctive.
        agg = torch.zeros_like(ident).index_add_(0, dst, msg) % prime
        ident = (ident * c + agg + a) % prime
        ids.append(ident)
    counts = torch.zeros(num_graphs * bits)
    for ident in ids:
        counts.index_add_(0, batch * bits + ident % bits,
                          torch.ones(ident.numel()))
    return torch.log1p(counts.view(num_graphs, bits))


class GINEncoder(torch.nn.Module):
    r"""GIN with OGB's atom and bond encoders (GINE convolutions), batch
    norm, and mean pooling: one vector :obj:`[B, C]` per molecule."""

    def __init__(self, channels: int, num_layers: int = 3,
                 dropout: float = 0.1) -> None:
        super().__init__()
        from ogb.graphproppred.mol_encoder import AtomEncoder, BondEncoder
        self.atom = AtomEncoder(channels)
        self.bonds = torch.nn.ModuleList(
            [BondEncoder(channels) for _ in range(num_layers)])
        self.convs = torch.nn.ModuleList([
            GINEConv(torch.nn.Sequential(
                torch.nn.Linear(channels, 2 * channels),
                torch.nn.BatchNorm1d(2 * channels), torch.nn.ReLU(),
                torch.nn.Linear(2 * channels, channels)), train_eps=True)
            for _ in range(num_layers)
        ])
        self.norms = torch.nn.ModuleList(
            [torch.nn.BatchNorm1d(channels) for _ in range(num_layers)])
        self.dropout = dropout

    def forward(self, data: Batch) -> Tensor:
        h = self.atom(data.x)
        for conv, bond, norm in zip(self.convs, self.bonds, self.norms,
                                    strict=True):
            z = norm(conv(h, data.edge_index, bond(data.edge_attr)))
            h = h + F.dropout(F.relu(z), self.dropout, self.training)
        return global_mean_pool(h, data.batch, size=data.num_graphs)


class FingerprintMLP(torch.nn.Module):
    """Two-layer MLP over a fingerprint vector: :obj:`[B, C]`."""

    def __init__(self, bits: int, channels: int, dropout: float = 0.2
                 ) -> None:
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Dropout(dropout), torch.nn.Linear(bits, 2 * channels),
            torch.nn.ReLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(2 * channels, channels))

    def forward(self, fp: Tensor) -> Tensor:
        return self.mlp(fp.float())


class Probe(torch.nn.Module):
    """An encoder with a linear classifier on top, to train it alone."""

    def __init__(self, encoder: torch.nn.Module, channels: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.lin = torch.nn.Linear(channels, 1)

    def forward(self, *inputs) -> Tensor:
        return self.lin(F.relu(self.encoder(*inputs))).squeeze(-1)


class FusionHead(torch.nn.Module):
    r"""Fuses :obj:`M` modality embeddings :obj:`[B, C_m]` with a
    presence mask :obj:`[B, M]` into one logit.

    Every modality first gets its own linear adapter (the embeddings come
    from different encoders); then :obj:`'sap'` pools the :obj:`M` tokens
    with :class:`~sap_graph.SAPAggregation` (a missing token gets weight
    zero), :obj:`'concat'` concatenates them (a missing one is zero) and
    :obj:`'mean'` averages the present ones.

    Args:
        fusion (str): :obj:`'sap'`, :obj:`'concat'` or :obj:`'mean'`.
        in_channels (list): Width of every modality embedding (:obj:`M`
            entries).
        channels (int): Fused token width.
        heads (int, optional): SAP heads, concatenated, each of width
            :obj:`channels // heads`: :obj:`heads` must divide
            :obj:`channels`. (default: :obj:`1`)
        dropout (float, optional): Dropout before the classifier.
            (default: :obj:`0.2`)
    """

    def __init__(self, fusion: str, in_channels: Sequence[int],
                 channels: int, heads: int = 1,
                 dropout: float = 0.2) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"'fusion' must be one of {FUSIONS} "
                             f"(got {fusion!r})")
        self.fusion = fusion
        num_modalities = len(in_channels)
        self.adapters = torch.nn.ModuleList(
            [torch.nn.Linear(c, channels) for c in in_channels])
        self.sap: Optional[SAPAggregation] = None
        width = channels
        if fusion == 'sap':
            check_heads(heads, channels)
            self.sap = SAPAggregation(channels, channels // heads,
                                      heads=heads, concat=True, residual=None,
                                      size_scaler=None, query_init='normal')
        elif fusion == 'concat':
            width = num_modalities * channels
        self.classifier = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(width, channels), torch.nn.ReLU(),
            torch.nn.Linear(channels, 1))

    def tokens(self, emb: Sequence[Tensor]) -> Tensor:
        return torch.stack([
            adapter(e) for e, adapter in zip(emb, self.adapters, strict=True)
        ], 1)

    def fuse(self, emb: Sequence[Tensor], present: Tensor):
        """:obj:`(fused [B, width], attention [B, M] or None)` of the
        modality embeddings :obj:`emb` (:obj:`M` tensors :obj:`[B, C_m]`)
        and the boolean :obj:`present` :obj:`[B, M]`
        (:func:`~.models.check_bool_mask`).
        """
        check_bool_mask(present, (emb[0].size(0) if len(emb) else 0, len(emb)),
                   'present')
        # A missing modality's embedding takes no part, whatever it holds
        # (NaN, inf): zeroed before its adapter, its token then dropped.
        tokens = self.tokens([e.masked_fill(~present[:, m, None], 0.0)
                              for m, e in enumerate(emb)])
        if self.sap is not None:
            out, alpha = self.sap(tokens, mask=present,
                                  return_attention_weights=True)
            return out.squeeze(-2), alpha.mean(-1)
        keep = present.unsqueeze(-1)
        kept = tokens.masked_fill(~keep, 0.0)
        if self.fusion == 'concat':
            return kept.flatten(1), None
        total = keep.sum(1).clamp_min(1).to(tokens.dtype)
        return kept.sum(1) / total, None

    def forward(self, emb: Sequence[Tensor], present: Tensor) -> Tensor:
        return self.classifier(self.fuse(emb, present)[0]).squeeze(-1)


def modality_dropout(batch_size: int, num_modalities: int, p: float,
                     generator: Optional[torch.Generator] = None) -> Tensor:
    """Presence mask :obj:`[B, M]` with every modality dropped with
    probability :obj:`p`, at least one kept per example."""
    present = torch.rand(batch_size, num_modalities,
                         generator=generator) >= p
    none = ~present.any(1)
    keep = torch.randint(num_modalities, (batch_size, ), generator=generator)
    present[none, keep[none]] = True
    return present


def graph_batches(dataset, index: Tensor, batch_size: int,
                  shuffle: bool) -> List[Tensor]:
    """Molecule id batches (shuffled when asked); collate with
    :func:`collate_graphs`."""
    if shuffle:
        index = index[torch.randperm(index.numel())]
    return list(index.split(batch_size))


def collate_graphs(dataset, ids: Tensor) -> Batch:
    return Batch.from_data_list([dataset[i] for i in ids.tolist()])


def dataset_fingerprints(dataset, smiles: Sequence[str], kind: str = 'auto',
                         bits: int = 1024, index: Optional[Tensor] = None
                         ) -> Tuple[Tensor, str]:
    """Fingerprints :obj:`[M, bits]` of every molecule (of :obj:`index`
    only when given; the other rows zero) and what they are:
    :obj:`'morgan'` (RDKit, radius 2), :obj:`'graph'` (the substitute
    :func:`graph_fingerprints` of the PyG graphs) or :obj:`'auto'`
    (Morgan when RDKit imports, else the substitute)."""
    if kind in ('auto', 'morgan'):
        try:
            if index is None:
                return morgan_fingerprints(smiles, bits), 'morgan'
            out = torch.zeros(len(smiles), bits, dtype=torch.uint8)
            out[index] = morgan_fingerprints(
                [smiles[i] for i in index.tolist()], bits)
            return out, 'morgan'
        except ImportError:
            if kind == 'morgan':
                raise
    data, slices = dataset._data, dataset.slices
    num_graphs = slices['x'].numel() - 1
    graphs = torch.arange(num_graphs)
    batch = graphs.repeat_interleave(slices['x'].diff())
    # The collated storage keeps per-graph node numbers: offset them.
    edge_graph = graphs.repeat_interleave(slices['edge_index'].diff())
    edge_index = data.edge_index + slices['x'][edge_graph]
    return graph_fingerprints(data.x, edge_index, data.edge_attr, batch,
                              num_graphs, bits), 'graph'

r"""Token sequence encoders and readouts over the tokens of a padded batch.

A readout maps encoded tokens :obj:`[B, L, C]` and a padding mask
:obj:`[B, L]` to :obj:`[B, C]`: :obj:`'sap'`
(:class:`~sap_graph.SAPAggregation`, pooled in place over the padded
batch), :obj:`'mean'`, :obj:`'max'` or :obj:`'cls'` (the first token's
encoding, as with BERT's [CLS]; zeros for an empty sequence, as the
others give).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sap_graph import SAPAggregation
from sap_graph.ops.padded import masked_reduce

READOUTS = ('sap', 'mean', 'max', 'cls')


#: The attention heads of the transformer encoder (they divide its width).
TRANSFORMER_HEADS = 4


def check_heads(heads: int, channels: int) -> None:
    r"""Raises a :class:`ValueError` unless :obj:`heads` concatenated heads
    of width :obj:`channels // heads` make :obj:`channels` (the width the
    SAP readouts of sequences and modalities declare)."""
    if (isinstance(heads, bool) or not isinstance(heads, int) or heads < 1
            or channels % heads):
        raise ValueError(f"'heads' ({heads!r}) must be a positive integer "
                         f"that divides the width {channels} (each head "
                         f"gives channels // heads of it)")


def check_bool_mask(mask: Tensor, shape: Sequence[int],
               name: str = 'mask') -> None:
    r"""Raises a :class:`ValueError` unless :obj:`mask` is a boolean
    tensor of :obj:`shape` (:obj:`True` for kept): a float or integer 0/1
    mask would be read as weights (or not at all) instead of as a mask.
    The readouts over tokens and the fusions over modalities share it."""
    shape = list(shape)
    if (isinstance(mask, Tensor) and mask.dtype == torch.bool
            and list(mask.shape) == shape):
        return
    got = (f'{mask.dtype} {list(mask.shape)}' if isinstance(mask, Tensor)
           else type(mask).__name__)
    raise ValueError(f"'{name}' must be a boolean tensor of shape {shape}, "
                     f"True for kept (got {got}; a 0/1 mask becomes one "
                     f"with mask.bool())")


def trim_padding(tokens: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    r"""The token ids :obj:`[B, L]` cut to the longest of :obj:`lengths`
    (at least one position, so that the encoder has an input also for a
    batch of empty sequences or of none), and their mask."""
    longest = int(lengths.max()) if lengths.numel() else 0
    tokens = tokens[:, :max(longest, 1)]
    mask = (torch.arange(tokens.size(1), device=tokens.device) <
            lengths.unsqueeze(1))
    return tokens, mask


class TokenReadout(torch.nn.Module):
    r"""One vector :obj:`[B, channels]` per padded sequence.

    Args:
        kind (str): :obj:`'sap'`, :obj:`'mean'`, :obj:`'max'` or
            :obj:`'cls'` (the first kept token).
        channels (int): Token width, and the width of the output.
        heads (int, optional): SAP heads, concatenated, each of width
            :obj:`channels // heads`: :obj:`heads` must divide
            :obj:`channels`. (default: :obj:`4`)
    """

    def __init__(self, kind: str, channels: int, heads: int = 4) -> None:
        super().__init__()
        if kind not in READOUTS:
            raise ValueError(f"'kind' must be one of {READOUTS} "
                             f"(got {kind!r})")
        self.kind = kind
        self.out_channels = channels
        self.sap = None
        if kind == 'sap':
            check_heads(heads, channels)
            self.sap = SAPAggregation(channels, channels // heads,
                                      heads=heads, concat=True,
                                      residual=None, size_scaler=None)

    def forward(self, h: Tensor, mask: Tensor,
                return_attention_weights: bool = False):
        """Pools :obj:`h` :obj:`[B, L, C]` over the tokens that the boolean
        :obj:`mask` :obj:`[B, L]` keeps (:func:`check_bool_mask`)."""
        check_bool_mask(mask, h.shape[:2])
        alpha = None
        if self.sap is not None:
            out, alpha = self.sap(h, mask=mask,
                                  return_attention_weights=True)
            out = out.squeeze(-2)
        elif self.kind == 'cls':
            # The first kept token (left or right padding alike), or
            # zeros for an empty sequence (as the other readouts give),
            # also when the batch holds no tokens (L = 0).
            if h.size(1) == 0:
                out = h.new_zeros(h.size(0), h.size(2))
            else:
                first = mask.to(torch.int32).argmax(1)
                out = h[torch.arange(h.size(0), device=h.device), first]
                out = torch.where(mask.any(1, keepdim=True), out,
                                  h.new_zeros(()))
        else:
            out = masked_reduce(h, mask, self.kind)
        return (out, alpha) if return_attention_weights else out

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}({self.kind!r})'


class SequenceEncoder(torch.nn.Module):
    r"""Token embedding and a small encoder: :obj:`'conv'` (residual 1-D
    convolutions, padding zeroed before every layer) or
    :obj:`'transformer'` (pre-norm :class:`~torch.nn.TransformerEncoder`
    with learned positions and a key padding mask).

    Args:
        num_tokens (int): Vocabulary size (id :obj:`0` is padding).
        channels (int): Token width :math:`C`.
        num_layers (int, optional): Encoder layers. (default: :obj:`2`)
        encoder (str, optional): :obj:`'conv'` or :obj:`'transformer'`.
            (default: :obj:`'transformer'`)
        max_length (int, optional): Longest sequence (positions).
            (default: :obj:`128`)
        dropout (float, optional): Dropout in the encoder.
            (default: :obj:`0.1`)
    """

    def __init__(self, num_tokens: int, channels: int, num_layers: int = 2,
                 encoder: str = 'transformer', max_length: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if encoder not in ('conv', 'transformer'):
            raise ValueError(f"'encoder' must be 'conv' or 'transformer' "
                             f"(got {encoder!r})")
        self.encoder = encoder
        self.channels = channels
        self.embedding = torch.nn.Embedding(num_tokens, channels,
                                            padding_idx=0)
        self.dropout = dropout
        if encoder == 'conv':
            self.convs = torch.nn.ModuleList([
                torch.nn.Conv1d(channels, channels, 5, padding=2)
                for _ in range(num_layers)
            ])
        else:
            self.position = torch.nn.Embedding(max_length, channels)
            layer = torch.nn.TransformerEncoderLayer(
                channels, nhead=TRANSFORMER_HEADS,
                dim_feedforward=2 * channels,
                dropout=dropout, batch_first=True, norm_first=True)
            self.layers = torch.nn.TransformerEncoder(
                layer, num_layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(channels)

    def forward(self, tokens: Tensor, mask: Tensor) -> Tensor:
        """Encodes :obj:`tokens` :obj:`[B, L]` with padding mask
        :obj:`[B, L]` (:obj:`True` for kept) into :obj:`[B, L, C]`."""
        h = self.embedding(tokens) * math.sqrt(self.channels)
        if self.encoder == 'conv':
            keep = mask.unsqueeze(-1).to(h.dtype)
            h = h / math.sqrt(self.channels)
            for conv in self.convs:
                z = conv((h * keep).transpose(1, 2)).transpose(1, 2)
                z = F.dropout(F.relu(z), self.dropout, self.training)
                h = h + z
        else:
            steps = torch.arange(tokens.size(1), device=tokens.device)
            h = h + self.position(steps)
            if tokens.size(0) > 0:  # torch's attention fails on no rows.
                h = self.layers(h, src_key_padding_mask=~mask)
        return self.norm(h)


class SequenceClassifier(torch.nn.Module):
    r"""Encoder, readout over tokens and an MLP head (one logit)."""

    def __init__(self, num_tokens: int, channels: int, readout: str,
                 num_layers: int = 2, encoder: str = 'transformer',
                 max_length: int = 128, dropout: float = 0.1,
                 heads: int = 4) -> None:
        super().__init__()
        self.encoder = SequenceEncoder(num_tokens, channels, num_layers,
                                       encoder, max_length, dropout)
        self.readout = TokenReadout(readout, channels, heads)
        self.head = torch.nn.Sequential(
            torch.nn.Linear(self.readout.out_channels, channels),
            torch.nn.ReLU(), torch.nn.Dropout(dropout),
            torch.nn.Linear(channels, 1))

    def embed(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """One vector :obj:`[B, C]` per sequence."""
        tokens, mask = trim_padding(tokens, lengths)
        return self.readout(self.encoder(tokens, mask), mask)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        return self.head(self.embed(tokens, lengths)).squeeze(-1)

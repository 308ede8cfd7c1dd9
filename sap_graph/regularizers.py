r"""Attention regularisers for :class:`sap_graph.SAPAggregation`.

Both work on the attention weights :obj:`alpha` :obj:`[N, H]` that
``aggr(..., return_attention_weights=True)`` returns (differentiable) and
never build dense per-graph :math:`n_b \times n_b` matrices.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor


def _nonempty(index: Tensor, dim_size: int, like: Tensor) -> Tensor:
    """:obj:`[B]` mask (as :obj:`like`'s dtype) of graphs with nodes."""
    count = torch.zeros(dim_size, device=index.device).index_add_(
        0, index, torch.ones_like(index, dtype=torch.float))
    return (count > 0).to(like.dtype)


def diversity_penalty(alpha: Tensor, index: Tensor,
                      dim_size: Optional[int] = None) -> Tensor:
    r"""Head-diversity penalty of `"A Structured Self-attentive Sentence
    Embedding" <https://arxiv.org/abs/1703.03130>`_, averaged over the
    non-empty graphs:

    .. math::
        P = \frac{1}{|\{b : n_b > 0\}|} \sum_{b : n_b > 0}
        \big\| \mathbf{A}_b \mathbf{A}_b^{\top} - \mathbf{I}_H
        \big\|_F^2,

    where row :math:`h` of :math:`\mathbf{A}_b \in \mathbb{R}^{H \times
    n_b}` is head :math:`h`'s distribution over the nodes of graph
    :math:`b`. The Gram matrices :math:`(\mathbf{A}_b\mathbf{A}_b^{\top})_{hk}
    = \sum_{i \in b} \alpha_{ih}\alpha_{ik}` are accumulated node by node in
    :math:`O(N H^2)` time and memory. It is zero when the heads attend to
    disjoint single nodes, and grows as heads overlap or spread out.

    Args:
        alpha (torch.Tensor): Attention weights :obj:`[N, H]`.
        index (torch.Tensor): Graph of each node :obj:`[N]`.
        dim_size (int, optional): Number of graphs. (default:
            :obj:`index.max() + 1`)
    """
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    heads = alpha.size(1)
    outer = alpha.unsqueeze(2) * alpha.unsqueeze(1)  # [N, H, H]
    gram = alpha.new_zeros(dim_size, heads, heads).index_add(0, index, outer)
    nonempty = _nonempty(index, dim_size, alpha)
    eye = torch.eye(heads, device=alpha.device, dtype=alpha.dtype)
    diff = gram - eye * nonempty.view(-1, 1, 1)
    per_graph = diff.pow(2).sum(dim=(1, 2))
    return per_graph.sum() / nonempty.sum().clamp_min(1.0)


def attention_entropy(alpha: Tensor, index: Tensor,
                      dim_size: Optional[int] = None) -> Tensor:
    r"""Mean entropy :math:`-\sum_{i \in b} \alpha_{ih} \log \alpha_{ih}` of
    the attention distributions over non-empty graphs and heads. Adding it
    to the loss with a positive weight sharpens attention; a negative
    weight spreads it.

    Args:
        alpha (torch.Tensor): Attention weights :obj:`[N, H]`.
        index (torch.Tensor): Graph of each node :obj:`[N]`.
        dim_size (int, optional): Number of graphs. (default:
            :obj:`index.max() + 1`)
    """
    if dim_size is None:
        dim_size = int(index.max()) + 1 if index.numel() > 0 else 0
    plogp = torch.special.xlogy(alpha, alpha)
    ent = -alpha.new_zeros(dim_size, alpha.size(1)).index_add(0, index, plogp)
    nonempty = _nonempty(index, dim_size, alpha).unsqueeze(1)
    return (ent * nonempty).sum() / (nonempty.sum() * alpha.size(1)).clamp_min(
        1.0)


def weighted_penalty(alpha: Tensor, index: Tensor, dim_size: int,
                     diversity: float = 0.0, entropy: float = 0.0) -> Tensor:
    r""":obj:`diversity` x :func:`diversity_penalty` + :obj:`entropy` x
    :func:`attention_entropy` of the same weights."""
    return (diversity * diversity_penalty(alpha, index, dim_size) +
            entropy * attention_entropy(alpha, index, dim_size))

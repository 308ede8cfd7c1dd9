"""Independent float64 reference of self-attention pooling, graph by graph.

Written directly from the formulas (keys, values, query, softmax over the
nodes of one graph) with dense per-graph tensors and a Python loop over
graphs and heads; it shares no code with :mod:`sap_graph`.
"""
import contextlib
import math
import os
from typing import Iterator, Optional, Tuple

import torch
from torch import Tensor


def pool_set(xb: Tensor, reduce: str) -> Tensor:
    """Sum, mean or max over the rows of one set :obj:`[n, F]`; an empty
    set gives zeros (as the layer's residual does)."""
    if xb.size(0) == 0:
        return xb.new_zeros(xb.size(1))
    return {'sum': torch.sum, 'mean': torch.mean,
            'max': torch.amax}[reduce](xb, 0)


def sap_reference(aggr, x: Tensor, index: Tensor, num_graphs: int,
                  mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
    """Returns ``(out [B, width], alpha [N, heads])`` in float64 (eval-mode
    semantics: no dropout). Honours the temperature, the value gate, the
    size scaler, the rezero scale, the residual (sum, mean or max,
    projected when the widths differ; the gradient of a maximum is shared
    by tied nodes, as with :func:`torch.amax`) and a node mask."""
    x = x.double()
    if mask is None:
        mask = torch.ones(x.size(0), dtype=torch.bool)
    if aggr.log_temperature is not None:
        tau = aggr.log_temperature.double().exp()
    else:
        tau = aggr.temperature
    heads, k, o = aggr.heads, aggr.key_channels, aggr.out_channels
    w_key = aggr.lin_key.weight.double()
    w_val = aggr.lin_value.weight.double()
    b_val = aggr.lin_value.bias.double()
    query = aggr.query.double()
    alpha = x.new_zeros(x.size(0), heads)
    outs = []
    for b in range(num_graphs):
        member = (index == b) & mask
        xb = x[member]
        per_head = []
        for h in range(heads):
            if xb.size(0) == 0:
                per_head.append(x.new_zeros(o))
                continue
            ks, vs = slice(h * k, (h + 1) * k), slice(h * o, (h + 1) * o)
            keys = xb @ w_key[ks].t()
            values = xb @ w_val[vs].t() + b_val[vs]
            a = torch.softmax(keys @ query[h] / (tau * math.sqrt(k)), dim=0)
            alpha[member.nonzero().view(-1), h] = a
            if aggr.lin_gate is not None:
                gate = torch.sigmoid(xb @ aggr.lin_gate.weight.double()[h] +
                                     aggr.lin_gate.bias.double()[h])
                per_head.append((a * gate) @ values)
            else:
                per_head.append(a @ values)
        z = torch.cat(per_head) if aggr.concat else torch.stack(
            per_head).mean(0)
        if aggr.size_scaler == 'log':
            z = z * math.log(1 + xb.size(0))
        if aggr.gamma is not None:  # rezero
            z = z * aggr.gamma.double()
        if aggr.residual is not None:
            res = pool_set(xb, aggr.residual)
            if aggr.lin_residual is not None:
                res = res @ aggr.lin_residual.weight.double().t()
            z = z + res
        outs.append(z)
    return torch.stack(outs), alpha


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Selects the implementation of the SAP core inside the block:
    ``'native'`` (fused C++ kernels when they can be built) or ``'torch'``
    (pure PyTorch). Used by the property tests, whose hypothesis examples
    cannot take pytest's function-scoped fixtures."""
    old = os.environ.get('SAP_GRAPH_NATIVE')
    if name == 'torch':
        os.environ['SAP_GRAPH_NATIVE'] = '0'
    try:
        yield
    finally:
        if old is None:
            os.environ.pop('SAP_GRAPH_NATIVE', None)
        else:
            os.environ['SAP_GRAPH_NATIVE'] = old


def sap_core_reference(x: Tensor, score_weight: Tensor, ptr: Tensor
                       ) -> Tuple[Tensor, Tensor, Tensor]:
    """The SAP core in float64, graph by graph and head by head:
    ``(pooled [H, B, F], alpha [N, H], weight_sum [H, B])`` for a sorted
    batch with CSR pointer ``ptr``. Differentiable with autograd (the
    result keeps the graph to ``x`` and ``score_weight`` when they require
    gradients, in their float64 form)."""
    x, w = x.double(), score_weight.double()
    heads, channels = w.shape
    pooled, alpha, weight_sum = [], [], []
    for h in range(heads):
        rows, alphas, sums = [], [], []
        for b in range(ptr.numel() - 1):
            xb = x[int(ptr[b]):int(ptr[b + 1])]
            a = torch.softmax(xb @ w[h], dim=0)
            rows.append(a @ xb if xb.size(0) else x.new_zeros(channels))
            alphas.append(a)
            sums.append(a.sum())
        pooled.append(torch.stack(rows) if rows else x.new_zeros(0, channels))
        alpha.append(torch.cat(alphas) if alphas else x.new_zeros(0))
        weight_sum.append(torch.stack(sums) if sums else x.new_zeros(0))
    return (torch.stack(pooled), torch.stack(alpha, dim=1),
            torch.stack(weight_sum))

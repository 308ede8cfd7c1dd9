"""Independent float64 reference of self-attention pooling, graph by graph.

Written directly from the formulas (keys, values, query, softmax over the
nodes of one graph) with dense per-graph tensors and a Python loop over
graphs and heads; it shares no code with :mod:`sap_graph`.
"""
import math
from typing import Tuple

import torch
from torch import Tensor


def sap_reference(aggr, x: Tensor, index: Tensor,
                  num_graphs: int) -> Tuple[Tensor, Tensor]:
    """Returns ``(out [B, width], alpha [N, heads])`` in float64."""
    x = x.double()
    heads, k, o = aggr.heads, aggr.key_channels, aggr.out_channels
    w_key = aggr.lin_key.weight.double()
    w_val = aggr.lin_value.weight.double()
    b_val = aggr.lin_value.bias.double()
    query = aggr.query.double()
    alpha = x.new_zeros(x.size(0), heads)
    outs = []
    for b in range(num_graphs):
        mask = index == b
        xb = x[mask]
        per_head = []
        for h in range(heads):
            if xb.size(0) == 0:
                per_head.append(x.new_zeros(o))
                continue
            ks, vs = slice(h * k, (h + 1) * k), slice(h * o, (h + 1) * o)
            keys = xb @ w_key[ks].t()
            values = xb @ w_val[vs].t() + b_val[vs]
            a = torch.softmax(keys @ query[h] / math.sqrt(k), dim=0)
            alpha[mask.nonzero().view(-1), h] = a
            per_head.append(a @ values)
        if aggr.concat:
            outs.append(torch.cat(per_head))
        else:
            outs.append(torch.stack(per_head).mean(0))
    return torch.stack(outs), alpha

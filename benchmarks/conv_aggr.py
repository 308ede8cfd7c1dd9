"""SAP as the ``aggr=`` of multi-head convolutions (GATConv,
TransformerConv), against PyG's own aggregations in the same layer, side
by side.

Each row is one convolution layer (4 heads of 16 channels, input width
32) with a different ``aggr``: PyG's default sum (``'add'``), its softmax
aggregation (``'softmax'``, a learned-temperature attention over the
messages), and ``SAPAggregation(16)`` with one head and no residual, and
with the defaults (4 heads, max residual). The messages ``[E, 4, 16]``
are pooled over ``dim=0``, each convolution head a set of its own. Rows
share the graph and the convolution weights; repeats are interleaved (one
step of each row per round) and the median is reported, with each row's
ratio to ``'add'``. Before timing, the SAP rows' pooling of the layer's
messages is checked against the same module pooling them head by head in
the plain ``[E, C]`` form.

Usage::

    python -m benchmarks.conv_aggr               # writes results/conv_aggr.md
    python -m benchmarks.conv_aggr --repeats 5 --no-save
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch import Tensor
from torch_geometric.nn import GATConv, TransformerConv

from sap_graph import SAPAggregation

from .speed import versions
from .timing import arguments, measure, save, time_tables

HEADS, CHANNELS, IN_CHANNELS = 4, 16, 32

CONVS = {'GATConv': GATConv, 'TransformerConv': TransformerConv}

AGGRS: Dict[str, Callable[[], object]] = {
    "'add' (PyG's default)": lambda: 'add',
    "'softmax' (SoftmaxAggregation)": lambda: 'softmax',
    'sap h=1, no residual': lambda: SAPAggregation(CHANNELS, heads=1,
                                                   residual=None),
    'sap (defaults: h=4, residual max)': lambda: SAPAggregation(CHANNELS),
}
BASE = "'add' (PyG's default)"


@dataclass
class Graph:
    name: str
    graphs: int  # Random graphs in the batch.
    nodes: int  # Nodes per graph.
    edges: int  # Directed edges per graph.


GRAPHS = [Graph('one graph', 1, 2000, 20000),
          Graph('molecule-like batch', 128, 25, 54)]


def make_graph(graph: Graph, device: torch.device, seed: int = 0):
    """Node features and a random ``edge_index`` within each graph."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(graph.graphs * graph.nodes, IN_CHANNELS, generator=gen)
    ends = torch.randint(graph.nodes, (2, graph.graphs, graph.edges),
                         generator=gen)
    offset = (torch.arange(graph.graphs) * graph.nodes)[:, None]
    edge_index = (ends + offset).reshape(2, -1)
    return x.to(device), edge_index.to(device)


def layers(conv: str, device: torch.device) -> Dict[str, torch.nn.Module]:
    """Row name -> the convolution with that ``aggr``, all with the same
    convolution weights."""
    torch.manual_seed(0)
    out = {}
    for name, aggr in AGGRS.items():
        layer = CONVS[conv](IN_CHANNELS, CHANNELS, heads=HEADS, aggr=aggr())
        if out:
            first = next(iter(out.values()))
            shared = {k: v for k, v in first.state_dict().items()
                      if not k.startswith('aggr_module.')}
            layer.load_state_dict(shared, strict=False)
        out[name] = layer.to(device)
    return out


def check(conv: str, graph: Graph, device: torch.device) -> None:
    """The SAP rows' pooling of the layer's messages ``[E, heads, C]``
    (``dim=0``) against the same module pooling them head by head in the
    plain ``[E, C]`` form."""
    x, edge_index = make_graph(graph, device)
    for name, layer in layers(conv, device).items():
        aggr = layer.aggr_module
        if not isinstance(aggr, SAPAggregation):
            continue
        with torch.no_grad():  # Non-uniform attention (default: zeros).
            aggr.query.normal_()
        seen = {}
        layer.register_message_forward_hook(
            lambda m, inputs, msgs, seen=seen: seen.update(messages=msgs))
        layer.register_aggregate_forward_pre_hook(
            lambda m, inputs, seen=seen: seen.update(
                index=inputs[0]['index']))
        with torch.no_grad():
            layer(x, edge_index)
            msgs, index = seen['messages'], seen['index']
            out = aggr(msgs, index, dim_size=x.size(0), dim=0)
            want = torch.stack([aggr(msgs[:, h], index, dim_size=x.size(0))
                                for h in range(HEADS)], 1)
        if not torch.allclose(out, want, atol=1e-4, rtol=1e-4):
            raise SystemExit(f'{conv} on {graph.name}: {name} disagrees '
                             f'with its heads pooled one by one')


def steps(conv: str, graph: Graph,
          device: torch.device) -> Dict[str, Callable[[], Tensor]]:
    """Row name -> one forward (the caller runs the backward)."""
    x, edge_index = make_graph(graph, device)
    x.requires_grad_()
    return {name: (lambda layer=layer: layer(x, edge_index))
            for name, layer in layers(conv, device).items()}


def render(table: Dict[str, Dict[str, float]], header: str,
           args: argparse.Namespace) -> str:
    lines = [
        '# SAP as the aggregation of multi-head convolutions', '', header,
        '', f'Command: `python -m benchmarks.conv_aggr{args.cmdline}` '
        f'(median of {args.repeats} interleaved repeats after '
        f'{args.warmup} warm-up rounds; forward+backward of one layer with '
        f'`x.requires_grad_()`). Each layer: input width {IN_CHANNELS}, '
        f'{HEADS} heads of {CHANNELS} channels, concatenated; the rows '
        f'differ in `aggr` only and share the convolution weights. '
        'Graphs: ' + '; '.join(
            f'{g.name}: {g.graphs} x {g.nodes} nodes, {g.edges} random '
            f'edges each' for g in GRAPHS) + ' (plus self-loops in '
        'GATConv).', '', *time_tables(table, 'aggr', BASE, BASE)]
    return '\n'.join(lines) + '\n'


def main() -> None:
    args = arguments(__doc__)
    device = torch.device(args.device)
    table = {}
    for conv in CONVS:
        for graph in GRAPHS:
            check(conv, graph, device)
            col = f'{conv}, {graph.name}'
            table[col] = measure(col, steps(conv, graph, device), device,
                                 args, width=36)
    text = render(table, versions(device), args)
    print(text)
    if args.save:
        save(text, 'conv_aggr', device)


if __name__ == '__main__':
    main()

"""Forward+backward time and peak memory of graph readouts, side by side.

Every readout runs on the same batches; repeats are interleaved (one step
of each readout per round) and the median per readout is reported, with
ratios to PyG's ``MeanAggregation`` and of ``SAPAggregation(heads=4)`` to
every peer. Correctness of SAP is checked against a float64 reference
before anything is timed.

Usage::

    python -m benchmarks.speed                      # full table
    python -m benchmarks.speed --quick              # small sizes only
    python -m benchmarks.speed --device cuda        # on a GPU

Writes ``benchmarks/results/speed.md`` (and ``speed.json``) unless
``--no-save`` is given.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import os
import os.path as osp
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
import torch_geometric
from torch import Tensor
from torch_geometric.nn import aggr as pyg_aggr

from sap_graph import SAPAggregation

from .render.speed_page import plot_scaling, render_page, scaling_section

RESULTS = osp.join(osp.dirname(osp.realpath(__file__)), 'results')

_default = SAPAggregation(8)
#: What the ``sap h=k`` rows are: the layer's defaults, read from it.
SAP_DEFAULTS = (f'concat={_default.concat}, residual={_default.residual!r}, '
                f'size_scaler={_default.size_scaler!r}, '
                f'query_init={_default.query_init!r}')


@dataclass
class Size:
    name: str
    graphs: int
    nodes: int  # mean nodes per graph
    channels: int


SIZES = [
    Size('molhiv-like', 128, 25, 300),
    Size('many mid', 512, 40, 128),
    Size('few large', 32, 300, 64),
    Size('1M nodes', 10_000, 100, 64),
]
MEMORY_SIZE = Size('memory', 3_000, 100, 64)  # N = 300k, d = 64


def make_batch(size: Size, device: torch.device, seed: int = 0):
    """Graph sizes uniform in [n/2, 3n/2], a sorted batch like PyG's."""
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(size.nodes // 2, size.nodes * 3 // 2 + 1,
                           (size.graphs, ), generator=gen)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    index = torch.arange(size.graphs).repeat_interleave(counts)
    x = torch.randn(int(ptr[-1]), size.channels, generator=gen)
    return (x.to(device), index.to(device), ptr.to(device),
            int(counts.max()))


class ValueProjectionOnly(torch.nn.Module):
    """Only the value projection of ``SAPAggregation(d, heads)``
    (:meth:`SAPAggregation.project`), on pooled features of the same shape:
    the part of SAP's cost that does not depend on the number of nodes
    (``B x H x d x d`` multiply-adds forward, twice that backward), timed
    side by side to show the floor it puts under SAP's time."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.sap = SAPAggregation(d, heads=heads)
        self.heads, self.d = heads, d
        self.pooled: Optional[Tensor] = None

    def forward(self, x: Tensor, index: Tensor, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = None) -> Tensor:
        assert dim_size is not None
        if self.pooled is None or self.pooled.size(1) != dim_size:
            self.pooled = torch.randn(self.heads, dim_size, self.d,
                                      device=x.device, requires_grad=True)
        self.pooled.grad = None
        weight_sum = x.new_ones(self.heads, dim_size)
        return self.sap.project(self.pooled, weight_sum)


PROJECTION = 'sap h=4: value projection only'


def readouts(d: int) -> Dict[str, Callable[[], torch.nn.Module]]:
    lin = torch.nn.Linear
    return {
        'mean': lambda: pyg_aggr.MeanAggregation(),
        'max': lambda: pyg_aggr.MaxAggregation(),
        'sap h=1': lambda: SAPAggregation(d, heads=1),
        'sap h=4': lambda: SAPAggregation(d, heads=4),
        PROJECTION: lambda: ValueProjectionOnly(d, heads=4),
        'sap h=8': lambda: SAPAggregation(d, heads=8),
        'attention': lambda: pyg_aggr.AttentionalAggregation(
            gate_nn=lin(d, 1), nn=lin(d, d)),
        'set2set': lambda: pyg_aggr.Set2Set(d, processing_steps=2),
        'set_transformer': lambda: pyg_aggr.SetTransformerAggregation(
            d, heads=4),
        'gmt': lambda: pyg_aggr.GraphMultisetTransformer(d, k=4, heads=4),
    }


DENSE = ('set_transformer', 'gmt')


def dense_bytes(name: str, graphs: int, max_nodes: int, d: int) -> float:
    """Rough size of the dense [B, n_max, n_max, heads] attention maps."""
    if name not in DENSE:
        return 0.0
    return 4.0 * graphs * max_nodes * (max_nodes + d) * 4 * 4


def step(module: torch.nn.Module, x: Tensor, index: Tensor, ptr: Tensor,
         dim_size: int, max_nodes: int, grad: Optional[Tensor],
         backward: bool) -> Optional[Tensor]:
    kwargs = {}
    if isinstance(module, (pyg_aggr.SetTransformerAggregation,
                           pyg_aggr.GraphMultisetTransformer)):
        kwargs['max_num_elements'] = max_nodes
        out = module(x, index, dim_size=dim_size, **kwargs)
    else:
        out = module(x, index, ptr=ptr, dim_size=dim_size)
    if backward:
        out.backward(grad if grad is not None else torch.ones_like(out))
        return None
    return out


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize()


def current_rss() -> int:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


def peak_rss() -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    raise RuntimeError('VmHWM not found')


def reset_peak_rss() -> bool:
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def extra_peak_memory(module: torch.nn.Module, x: Tensor, index: Tensor,
                      ptr: Tensor, dim_size: int, max_nodes: int,
                      device: torch.device) -> float:
    """Peak bytes above the inputs during one forward+backward."""
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step(module, x, index, ptr, dim_size, max_nodes, None, True)
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    if not reset_peak_rss():
        return float('nan')
    base = current_rss()
    step(module, x, index, ptr, dim_size, max_nodes, None, True)
    return float(peak_rss() - base)


def check_correctness(device: torch.device) -> None:
    """SAP against a per-graph float64 loop before timing anything."""
    torch.manual_seed(0)
    size = Size('check', 16, 12, 16)
    x, index, ptr, _ = make_batch(size, device)
    for concat in (False, True):  # The default (averaged heads) and not.
        aggr = SAPAggregation(16, 8, heads=4, concat=concat).to(device)
        with torch.no_grad():  # Non-uniform attention (default: zeros).
            aggr.query.normal_()
        out = aggr(x, index, ptr=ptr, dim_size=size.graphs).double()
        w_k = aggr.lin_key.weight.double().view(4, 8, 16)
        w_v = aggr.lin_value.weight.double().view(4, 8, 16)
        b_v = aggr.lin_value.bias.double().view(4, 8)
        q = aggr.query.double()
        for b in range(size.graphs):
            xb = x[ptr[b]:ptr[b + 1]].double()
            heads = [torch.softmax(xb @ w_k[h].t() @ q[h] / math.sqrt(8), 0)
                     @ (xb @ w_v[h].t() + b_v[h]) for h in range(4)]
            ref = torch.cat(heads) if concat else torch.stack(heads).mean(0)
            if aggr.size_scaler == 'log':
                ref = ref * math.log1p(xb.size(0))
            if aggr.residual is not None:  # Projected when widths differ.
                res = {'sum': lambda t: t.sum(0), 'mean': lambda t: t.mean(0),
                       'max': lambda t: t.max(0).values}[aggr.residual](xb)
                if aggr.lin_residual is not None:
                    res = res @ aggr.lin_residual.weight.double().t()
                ref = ref + res
            if not torch.allclose(out[b], ref, atol=1e-4):
                raise SystemExit('SAPAggregation disagrees with reference')


def bench_size(size: Size, device: torch.device, repeats: int, warmup: int,
               max_dense_bytes: float) -> Dict[str, Dict[str, float]]:
    x, index, ptr, max_nodes = make_batch(size, device)
    x.requires_grad_()
    results: Dict[str, Dict[str, float]] = {}
    modules = {}
    for name, make in readouts(size.channels).items():
        if dense_bytes(name, size.graphs, max_nodes,
                       size.channels) > max_dense_bytes:
            results[name] = {'ms': float('nan'), 'skipped': 1.0}
            continue
        torch.manual_seed(0)
        modules[name] = make().to(device)

    times: Dict[str, List[float]] = {name: [] for name in modules}
    for round_ in range(warmup + repeats):
        for name, module in modules.items():
            if math.isinf(times[name][-1] if times[name] else 0.0):
                continue
            x.grad = None
            sync(device)
            start = time.perf_counter()
            try:
                step(module, x, index, ptr, size.graphs, max_nodes, None,
                     True)
            except (MemoryError, torch.cuda.OutOfMemoryError):
                times[name].append(float('inf'))
                continue
            sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    for name in modules:
        results[name] = {'ms': 1e3 * statistics.median(times[name])}
    return results


def versions(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    cpu = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    text = (f'torch {torch.__version__}, torch_geometric '
            f'{torch_geometric.__version__}, Python '
            f'{platform.python_version()}, CPU: {cpu}, '
            f'{torch.get_num_threads()} threads')
    if device.type == 'cuda':
        text += f', GPU: {torch.cuda.get_device_name(device)}'
    return text


# Scaling sweep for the plot: graphs of ~50 nodes, d = 64, growing N.
SCALING = [Size(f'N~{g * 50:,}', g, 50, 64) for g in (20, 200, 2_000, 20_000)]


MEMORY_READOUTS = ('mean', 'sap h=1', 'sap h=4', 'sap h=8', 'attention',
                   'set2set')


def memory_child(name: str, device_name: str) -> None:
    """Runs in a fresh process so that earlier allocations cannot hide in
    the allocator; prints the extra peak bytes."""
    device = torch.device(device_name)
    x, index, ptr, max_nodes = make_batch(MEMORY_SIZE, device)
    x.requires_grad_()
    torch.manual_seed(0)
    module = readouts(MEMORY_SIZE.channels)[name]().to(device)
    step(module, x, index, ptr, MEMORY_SIZE.graphs, max_nodes, None, True)
    x.grad = None
    print(extra_peak_memory(module, x, index, ptr, MEMORY_SIZE.graphs,
                            max_nodes, device))


def memory_in_subprocess(name: str, device_name: str) -> float:
    import subprocess
    out = subprocess.run(
        [sys.executable, '-m', 'benchmarks.speed', '--memory_child', name,
         '--device', device_name], check=True, capture_output=True,
        text=True, cwd=osp.dirname(osp.dirname(osp.realpath(__file__))))
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from . import timing  # It imports this module's RESULTS and sync.
    parser = timing.parser(__doc__)
    parser.add_argument('--quick', action='store_true',
                        help='skip the 1M-node size and the memory run')
    parser.add_argument('--max_dense_gib', type=float, default=4.0,
                        help='skip dense readouts whose attention maps '
                        'exceed this (default: 4.0)')
    parser.add_argument('--memory_child', default=None,
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.device)
        return
    args = timing.checked(parser, args)
    device = torch.device(args.device)

    check_correctness(device)
    sizes = SIZES[:-1] if args.quick else SIZES
    table = {}
    for size in sizes:
        print(f'[{size.name}]', flush=True)
        table[size.name] = bench_size(size, device, args.repeats,
                                      args.warmup,
                                      args.max_dense_gib * 2**30)
        for name, res in table[size.name].items():
            print(f'  {name:16s} {res["ms"]:9.2f} ms', flush=True)

    memory: Dict[str, float] = {}
    x_bytes = 0
    if not args.quick:
        x_bytes = (MEMORY_SIZE.graphs * MEMORY_SIZE.nodes *
                   MEMORY_SIZE.channels * 4)
        for name in MEMORY_READOUTS:
            memory[name] = memory_in_subprocess(name, args.device)
            print(f'  memory {name:12s} {memory[name] / 2**20:8.1f} MiB',
                  flush=True)

    scaling = {}
    if not args.quick:
        for size in SCALING:
            print(f'[scaling {size.name}]', flush=True)
            scaling[size.name] = bench_size(size, device, args.repeats,
                                            args.warmup,
                                            args.max_dense_gib * 2**30)

    text = render_page(table, memory, x_bytes, versions(device), args,
                       SIZES, PROJECTION, MEMORY_SIZE, SAP_DEFAULTS)
    text += scaling_section(scaling)
    print(text)
    if args.save:
        os.makedirs(RESULTS, exist_ok=True)
        suffix = '' if device.type == 'cpu' else f'_{device.type}'
        with open(osp.join(RESULTS, f'speed{suffix}.md'), 'w') as f:
            f.write(text)
        if scaling:
            plot_scaling(scaling, SCALING,
                         osp.join(RESULTS, f'speed{suffix}.png'),
                         versions(device))
        with open(osp.join(RESULTS, f'speed{suffix}.json'), 'w') as f:
            json.dump({'table': table, 'memory': memory, 'scaling': scaling,
                       'x_bytes': x_bytes,
                       'header': versions(device)}, f, indent=1)


if __name__ == '__main__':
    main()

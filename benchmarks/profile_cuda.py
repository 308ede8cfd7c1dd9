"""Where the time of SAP's forward+backward goes on a GPU.

Times ``SAPAggregation(300, heads=4)`` against PyG's
``AttentionalAggregation`` on a molhiv-like batch (128 graphs of 15-35
nodes, d=300), with ``ptr`` and index-only, for both forms of the
backward's sampled product
(``sap_graph.ops.torch.GATHER_SAMPLED_ON_GPU``), then
prints the CUDA profiler's table for ten SAP steps. Comparing "Self CUDA
time total" with the wall time per step shows whether the step is bound by
the GPU or by launching its kernels.

Then times the SAP core alone (``sap_graph.sap_pool``, forward and
backward) on larger batches with the Triton kernels (both dot precisions)
against the pure-PyTorch path (``SAP_GRAPH_TRITON=0``).

Usage::

    python -m benchmarks.profile_cuda > benchmarks/results/profile_cuda.txt
"""
import argparse
import os
import sys
import time
from typing import Optional, Sequence

import torch
from torch.profiler import ProfilerActivity, profile
from torch_geometric.nn.aggr import AttentionalAggregation

from sap_graph import SAPAggregation, sap_pool
from sap_graph.ops import torch as _ops


def main(argv: Optional[Sequence[str]] = None) -> None:
    argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='Takes no options; needs a CUDA GPU (run by '
        'benchmarks/gpu_check.sh).').parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit('error: benchmarks.profile_cuda needs a CUDA GPU (torch '
                 'sees none)')
    torch.manual_seed(0)
    dev = 'cuda'
    sizes = torch.randint(15, 36, (128,))
    index = torch.arange(128).repeat_interleave(sizes).to(dev)
    ptr = torch.cat([torch.zeros(1, dtype=torch.long),
                     sizes.cumsum(0)]).to(dev)
    x = torch.randn(int(sizes.sum()), 300, device=dev, requires_grad=True)
    sap = SAPAggregation(300, heads=4).to(dev)
    att = AttentionalAggregation(torch.nn.Linear(300, 1),
                                 torch.nn.Linear(300, 300)).to(dev)

    def step(m, p):
        m(x, index, p, dim_size=128).sum().backward()

    def timeit(m, p, n=50):
        for _ in range(5):
            step(m, p)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(n):
            step(m, p)
        torch.cuda.synchronize()
        return (time.perf_counter() - t) / n * 1e3

    print(f'{torch.cuda.get_device_name()}, torch {torch.__version__}')
    os.environ['SAP_GRAPH_TRITON'] = '0'  # The PyTorch path first.
    for gather in (True, False):
        _ops.GATHER_SAMPLED_ON_GPU = gather
        print(f'gather={gather}: sap4 ptr {timeit(sap, ptr):.3f} ms, '
              f'sap4 index-only {timeit(sap, None):.3f} ms, '
              f'attention {timeit(att, ptr):.3f} ms')
    _ops.GATHER_SAMPLED_ON_GPU = True
    os.environ['SAP_GRAPH_TRITON'] = '1'
    print(f'triton: sap4 ptr {timeit(sap, ptr):.3f} ms')
    core_timings()
    with profile(activities=[ProfilerActivity.CPU,
                             ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            step(sap, ptr)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=14,
                                    max_name_column_width=40))


def core_timings() -> None:
    """Forward+backward of the SAP core (loss on the pooled rows) per
    path, in ms (median of 20 after 3 warm-ups)."""
    try:
        from sap_graph.ops import triton as _triton
    except ImportError as exc:
        print(f'triton not importable ({exc}): no core timings')
        return
    dev = 'cuda'
    shapes = [  # (name, graph sizes, F, H)
        ('128 x 15-35, F=256, H=4', torch.randint(15, 36, (128,)), 256, 4),
        ('10k x 100, F=64, H=4', torch.full((10_000,), 100), 64, 4),
        ('10k x 100, F=64, H=1', torch.full((10_000,), 100), 64, 1),
        ('1 x 1M, F=64, H=4', torch.tensor([1_000_000]), 64, 4),
        ('100k x 10, F=128, H=8', torch.full((100_000,), 10), 128, 8),
    ]
    for name, sizes, channels, heads in shapes:
        ptr = torch.cat([torch.zeros(1, dtype=torch.long),
                         sizes.cumsum(0)]).to(dev)
        index = _ops.index_from_ptr(ptr, int(sizes.sum()))
        x = torch.randn(int(sizes.sum()), channels, device=dev,
                        requires_grad=True)
        w = torch.randn(heads, channels, device=dev, requires_grad=True)
        row = []
        for label, env, prec in (('torch', '0', 'ieee'),
                                 ('triton ieee', '1', 'ieee'),
                                 ('triton tf32x3', '1', 'tf32x3')):
            os.environ['SAP_GRAPH_TRITON'] = env
            _triton.DOT_PRECISION = prec
            times = []
            for i in range(23):
                torch.cuda.synchronize()
                t = time.perf_counter()
                sap_pool(x, w, index, ptr,
                         sizes.numel())[0].sum().backward()
                torch.cuda.synchronize()
                if i >= 3:
                    times.append(time.perf_counter() - t)
            times.sort()
            row.append(f'{label} {times[len(times) // 2] * 1e3:.3f} ms')
        print(f'core {name}: ' + ', '.join(row))
    os.environ['SAP_GRAPH_TRITON'] = '1'
    _triton.DOT_PRECISION = 'ieee'


if __name__ == '__main__':
    main()

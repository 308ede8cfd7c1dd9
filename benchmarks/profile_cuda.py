"""Where the time of SAP's forward+backward goes on a GPU.

Times ``SAPAggregation(300, heads=4)`` against PyG's
``AttentionalAggregation`` on a molhiv-like batch (128 graphs of 15-35
nodes, d=300), with ``ptr`` and index-only, for both forms of the
backward's sampled product (``sap_graph._ops.GATHER_SAMPLED_ON_GPU``), then
prints the CUDA profiler's table for ten SAP steps. Comparing "Self CUDA
time total" with the wall time per step shows whether the step is bound by
the GPU or by launching its kernels.

Usage::

    python benchmarks/profile_cuda.py > benchmarks/results/profile_cuda.txt
"""
import os.path as osp
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile
from torch_geometric.nn.aggr import AttentionalAggregation

sys.path.insert(0, osp.join(osp.dirname(osp.realpath(__file__)), '..'))
from sap_graph import SAPAggregation, _ops  # noqa: E402


def main() -> None:
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
    for gather in (True, False):
        _ops.GATHER_SAMPLED_ON_GPU = gather
        print(f'gather={gather}: sap4 ptr {timeit(sap, ptr):.3f} ms, '
              f'sap4 index-only {timeit(sap, None):.3f} ms, '
              f'attention {timeit(att, ptr):.3f} ms')
    _ops.GATHER_SAMPLED_ON_GPU = True
    with profile(activities=[ProfilerActivity.CPU,
                             ProfilerActivity.CUDA]) as prof:
        for _ in range(10):
            step(sap, ptr)
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by='cuda_time_total', row_limit=14,
                                    max_name_column_width=40))


if __name__ == '__main__':
    main()

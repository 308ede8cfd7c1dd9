"""End-to-end cost of the readout: one training epoch of GIN + readout.

The same GIN encoder (5 layers, 64 hidden) is trained for one epoch on a
real TU dataset with each readout; epochs are interleaved across readouts
and the median over repeats is reported, with ratios to mean pooling.

Usage::

    SAP_GRAPH_DATA=../shared/data python -m benchmarks.epoch --dataset PROTEINS
"""
from __future__ import annotations

import argparse
import os
import os.path as osp
import platform
import statistics
import time
from typing import Dict, List

import torch
import torch_geometric
from torch_geometric.loader import DataLoader

from sap_graph.experiments.data import load_dataset
from sap_graph.experiments.train import (
    TrainConfig,
    build_model,
    resolve_config,
    train_epoch,
)

from .variants import EPOCH, VARIANTS

RESULTS = osp.join(osp.dirname(osp.realpath(__file__)), 'results')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='PROTEINS',
                        help='TU dataset (default: PROTEINS)')
    parser.add_argument('--repeats', type=int, default=5,
                        help='measured epochs per readout (default: 5)')
    parser.add_argument('--batch_size', type=int, default=32,
                        help='batch size (default: 32)')
    parser.add_argument('--device', default='cpu',
                        help='device (default: cpu)')
    parser.add_argument('--no-save', dest='save', action='store_false',
                        help='print only')
    args = parser.parse_args()

    task = load_dataset(args.dataset)
    device = torch.device(args.device)
    models, optims = {}, {}
    for name in EPOCH:
        cfg = resolve_config(TrainConfig(dataset=args.dataset,
                                         **VARIANTS[name].config()), 'tu')
        torch.manual_seed(0)
        models[name] = build_model(cfg, task).to(device)
        optims[name] = torch.optim.Adam(models[name].parameters(), lr=0.01)
    graphs = list(task.dataset)
    times: Dict[str, List[float]] = {name: [] for name in models}
    for round_ in range(args.repeats + 1):  # first round is warm-up
        for name, model in models.items():
            loader = DataLoader(graphs, batch_size=args.batch_size,
                                shuffle=True,
                                generator=torch.Generator().manual_seed(
                                    round_))
            start = time.perf_counter()
            train_epoch(model, loader, optims[name], device, 'multiclass')
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
            if round_ > 0:
                times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    where = (torch.cuda.get_device_name(device) if device.type == 'cuda'
             else f'{platform.processor() or "cpu"}, '
             f'{torch.get_num_threads()} threads')
    header = (f'torch {torch.__version__}, torch_geometric '
              f'{torch_geometric.__version__}, {where}')
    lines = [
        f'# One training epoch of GIN + readout on {args.dataset}', '',
        header, '',
        f'Command: `python -m benchmarks.epoch --dataset {args.dataset}'
        f'{"" if device.type == "cpu" else " --device " + args.device}` '
        f'({len(graphs)} graphs, batch {args.batch_size}, GIN 5 x 64, '
        f'median of {args.repeats} interleaved epochs after one warm-up).',
        '', '| readout | s / epoch | / mean |', '|---|---|---|']
    for name in models:
        lines.append(f'| {VARIANTS[name].label} | {median[name]:.3f} | '
                     f'{median[name] / median["mean"]:.2f} |')
    text = '\n'.join(lines) + '\n'
    print(text)
    if args.save:
        os.makedirs(RESULTS, exist_ok=True)
        suffix = '' if device.type == 'cpu' else f'_{device.type}'
        with open(osp.join(RESULTS, f'epoch_{args.dataset}{suffix}.md'),
                  'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()

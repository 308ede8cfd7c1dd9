"""Throughput of data-parallel training: graphs/s with 1 vs N processes.

Each setting runs ``sap-graph train`` under ``torchrun`` (gloo on CPU,
NCCL on GPU, one GPU per process) with the same global batch, so every
process takes ``batch_size / N`` graphs per step. Throughput is training
graphs per second of the median epoch (an epoch includes the validation
pass); the test accuracy column checks that the runs learn the same.

Usage::

    python -m benchmarks.distributed --nproc 1 2 --device cpu
    python -m benchmarks.distributed --nproc 1 2 4 --device cuda \\
        --dataset PROTEINS --batch_size 128
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

import torch
import torch_geometric

from sap_graph.experiments.files import atomic_write

ROOT = osp.join(osp.dirname(osp.realpath(__file__)), '..')
RESULTS = osp.join(ROOT, 'benchmarks', 'results')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_setting(nproc: int, args: argparse.Namespace,
                folder: str) -> Dict[str, Any]:
    r"""Runs one :obj:`torchrun` launch and returns its result JSON."""
    out = osp.join(folder, f'nproc{nproc}.json')
    cmd = [sys.executable, '-m', 'torch.distributed.run',
           f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
           f'--master_port={_free_port()}', '-m', 'sap_graph', 'train',
           '--dataset', args.dataset, '--readout', args.readout,
           '--epochs', str(args.epochs), '--folds', str(args.folds),
           '--batch_size', str(args.batch_size), '--hidden_channels',
           str(args.hidden_channels), '--device', args.device,
           '--no-progress', '--quiet', '--out', out]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH',
                                                             ''))
    subprocess.run(cmd, cwd=ROOT, env=env, check=True)
    with open(out) as f:
        return json.load(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--nproc', type=int, nargs='+', default=[1, 2],
                        help='process counts to compare (default: 1 2)')
    parser.add_argument('--dataset', default='synthetic',
                        help='dataset (default: synthetic)')
    parser.add_argument('--readout', default='sap',
                        help='readout (default: sap)')
    parser.add_argument('--epochs', type=int, default=5,
                        help='epochs per fold (default: 5)')
    parser.add_argument('--folds', type=int, default=2,
                        help='folds (default: 2)')
    parser.add_argument('--batch_size', type=int, default=64,
                        help='global batch size (default: 64)')
    parser.add_argument('--hidden_channels', type=int, default=64,
                        help='hidden width (default: 64)')
    parser.add_argument('--device', default='cpu',
                        help="'cpu' or 'cuda' (default: cpu)")
    parser.add_argument('--threads', type=int, default=1,
                        help='OMP threads per process (default: 1)')
    parser.add_argument('--out', default=osp.join(RESULTS,
                                                  'distributed.md'),
                        help='markdown table (default: '
                        'benchmarks/results/distributed.md)')
    args = parser.parse_args()

    rows: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        for nproc in args.nproc:
            result = run_setting(nproc, args, folder)
            train = sum(f['train_size'] for f in result['folds']) / len(
                result['folds'])
            rows.append({
                'nproc': nproc,
                'per_rank': args.batch_size // nproc,
                'epoch': result['epoch_time_median'],
                'graphs_s': train / result['epoch_time_median'],
                'test': result['test_mean'],
                'device': result['device'],
            })

    base = rows[0]['graphs_s']
    device = rows[0]['device']
    hardware = device.get('gpu') or device.get('cpu') or device['type']
    lines = [
        '# Data-parallel training throughput', '',
        f'{args.dataset}, readout {args.readout}, hidden '
        f'{args.hidden_channels}, global batch {args.batch_size}, '
        f'{args.epochs} epochs x {args.folds} folds, device '
        f'{args.device} ({hardware}), {args.threads} thread(s) per process;'
        f' torch {torch.__version__}, PyG {torch_geometric.__version__}, '
        f'{platform.platform()}.', '',
        'Command: `python -m benchmarks.distributed '
        f'{shlex.join(sys.argv[1:])}`', '',
        '| processes | batch per process | median epoch (s) | graphs/s | '
        'speed-up | test acc |',
        '|---:|---:|---:|---:|---:|---:|',
    ]
    for r in rows:
        lines.append(f"| {r['nproc']} | {r['per_rank']} | {r['epoch']:.3f} "
                     f"| {r['graphs_s']:.0f} | {r['graphs_s'] / base:.2f}x "
                     f"| {r['test']:.4f} |")
    text = '\n'.join(lines) + '\n'
    print(text)
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    atomic_write(args.out, lambda f: f.write(text.encode()))
    print(f'Wrote {args.out}')


if __name__ == '__main__':
    main()

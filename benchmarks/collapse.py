"""Why a readout's training collapses: per-epoch diagnostics of one fold.

Trains the grid's GIN (same folds, seed, batch size and optimiser as
``accuracy.py``) with several readouts on one cross-validation fold and
records, every epoch, what reaches and leaves the readout: the training
loss against the constant-prediction loss, the share of zero entries in
the node embeddings the readout pools (dying ReLUs), channels that are
zero for every node, the head's dead hidden units, the attention score
magnitudes, the attention entropy relative to ``log n``, the largest
weight, the readout output norm, the query norm and gradient norms.

Usage::

    SAP_GRAPH_DATA=../shared/data python -m benchmarks.collapse \\
        --dataset NCI1 --folds 0 9 --epochs 8

writes ``benchmarks/results/collapse/<DATASET>.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
from collections import defaultdict
from dataclasses import replace
from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from torch_geometric.utils import softmax

from sap_graph import SAPAggregation
from sap_graph.experiments.data import load_dataset
from sap_graph.experiments.train.config import seed_everything
from sap_graph.experiments.train.loop import _forward
from sap_graph.experiments.train.protocols import _subset, build_model
from sap_graph.experiments.train.runs import stratified_splits

from .accuracy import grid_config
from .variants import COLLAPSE, VARIANTS

HERE = osp.dirname(osp.realpath(__file__))
OUT = osp.join(HERE, 'results', 'collapse')


class Probe:
    """Forward hooks on the readout and the head's first layer that
    accumulate the statistics of one epoch."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.stats: Dict[str, List[float]] = defaultdict(list)
        self.alive = None
        model.readout.register_forward_hook(self._readout, with_kwargs=True)
        model.lin1.register_forward_hook(self._head)

    @torch.no_grad()
    def _readout(self, module, args, kwargs, out) -> None:
        x = args[0]
        index = args[1] if len(args) > 1 else kwargs.get('index')
        if index is None:
            ptr = kwargs['ptr']
            index = torch.repeat_interleave(
                torch.arange(ptr.numel() - 1), ptr.diff())
        dim_size = kwargs['dim_size']
        self.stats['zero_frac'].append(float((x == 0).float().mean()))
        alive = (x != 0).any(0)
        self.alive = alive if self.alive is None else self.alive | alive
        out = out[0] if isinstance(out, tuple) else out
        self.stats['out_norm'].append(float(out.norm(dim=-1).mean()))
        if isinstance(module, SAPAggregation):
            score = x @ module.score_weight().t()  # [N, H]
            alpha = softmax(score, index, num_nodes=dim_size)
            count = torch.bincount(index, minlength=dim_size).clamp(min=1)
            mean = torch.zeros_like(alpha[:dim_size]).index_add_(
                0, index, score) / count[:, None]
            var = torch.zeros_like(mean).index_add_(
                0, index, (score - mean[index])**2) / count[:, None]
            ent = torch.zeros_like(mean).index_add_(
                0, index, -alpha * alpha.clamp_min(1e-30).log())
            big = count > 1
            self.stats['score_std'].append(float(var.sqrt()[big].mean()))
            self.stats['score_absmax'].append(float(score.abs().max()))
            self.stats['entropy_ratio'].append(float(
                (ent[big] / count[big, None].float().log()).mean()))
            amax = torch.zeros_like(mean).scatter_reduce_(
                0, index[:, None].expand_as(alpha), alpha, 'amax')
            self.stats['alpha_max'].append(float(amax[big].mean()))
            self.stats['q_norm'].append(float(module.query.norm()))

    @torch.no_grad()
    def _head(self, module, args, out) -> None:
        self.stats['head_dead'].append(float((out <= 0).float().mean()))

    def grads(self) -> None:
        parts = {'grad_encoder': self.model.convs,
                 'grad_readout': self.model.readout,
                 'grad_head': self.model.lin1}
        for name, part in parts.items():
            norms = [p.grad.norm() for p in part.parameters()
                     if p.grad is not None]
            if norms:
                self.stats[name].append(float(torch.stack(norms).norm()))

    def epoch(self) -> Dict[str, float]:
        row = {k: sum(v) / len(v) for k, v in self.stats.items() if v}
        if self.alive is not None:
            row['dead_channels'] = float(1 - self.alive.float().mean())
        self.stats.clear()
        self.alive = None
        return row


def constant_loss(labels: torch.Tensor) -> float:
    """Cross-entropy of predicting the class frequencies."""
    p = torch.bincount(labels).float()
    p = p[p > 0] / p.sum()
    return float(-(p * p.log()).sum())


def run(dataset: str, fold: int, readout: str, epochs: int,
        args: argparse.Namespace) -> List[Dict[str, Any]]:
    task = load_dataset(dataset, root=args.root)
    splits = stratified_splits(task.labels, 10, 0.1, args.seed)
    cfg = replace(grid_config(args, dataset, readout), lr=args.lr)
    split = splits[fold]
    seed_everything(cfg.seed + fold)
    model = build_model(cfg, task)
    train = _subset(task.dataset, split['train'])
    loader = DataLoader(train, batch_size=cfg.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(
                            cfg.seed + fold))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    probe = Probe(model)
    ref = constant_loss(task.labels[split['train']])
    rows = []
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = 0.0, 0
        for batch in loader:
            opt.zero_grad()
            out = _forward(model, batch)
            loss = F.cross_entropy(out, batch.y.view(-1))
            loss.backward()
            probe.grads()
            opt.step()
            total += float(loss) * batch.num_graphs
            count += batch.num_graphs
        row = dict(epoch=epoch, loss=total / count,
                   loss_ratio=total / count / ref, **probe.epoch())
        rows.append(row)
        print(f'{dataset} fold {fold} {readout:10s} epoch {epoch:2d} '
              + ' '.join(f'{k} {v:.3g}' for k, v in row.items()
                         if k != 'epoch'), flush=True)
    return rows


COLUMNS = ['loss_ratio', 'zero_frac', 'dead_channels', 'head_dead',
           'score_std', 'entropy_ratio', 'alpha_max', 'out_norm', 'q_norm',
           'grad_encoder', 'grad_head']


def render(results: Dict[str, Any], path: str, command: str) -> None:
    lines = [f'# Collapse diagnostics: {results["dataset"]}', '',
             f'Generated by `{command}`; do not edit by hand.', '',
             'Per epoch of training (means over the training batches): '
             '`loss_ratio` = training loss / constant-prediction loss '
             '(>= 0.98 at the end: collapsed), `zero_frac` = share of zero '
             'entries in the node embeddings the readout pools, '
             '`dead_channels` = channels zero for every node of the epoch, '
             '`head_dead` = share of non-positive pre-ReLU units of the '
             "head's first layer, `score_std` = std of the attention scores "
             'within a graph (mean over graphs and heads), `entropy_ratio` = '
             'attention entropy / log n, `alpha_max` = largest weight, '
             '`out_norm` = readout output norm, `q_norm` = query norm, '
             '`grad_*` = gradient norms.', '']
    for key, rows in results['runs'].items():
        lines += [f'## {key}', '',
                  '| epoch | ' + ' | '.join(COLUMNS) + ' |',
                  '|--:|' + '--:|' * len(COLUMNS)]
        for row in rows:
            cells = [f'{row[c]:.3g}' if c in row else '–' for c in COLUMNS]
            lines.append(f'| {row["epoch"]} | ' + ' | '.join(cells) + ' |')
        lines.append('')
    with open(path, 'w') as f:
        f.write('\n'.join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='NCI1',
                        help='TU dataset (default: NCI1)')
    parser.add_argument('--folds', type=int, nargs='+', default=[0, 9],
                        dest='fold_ids',
                        help='folds of the 10-fold grid (default: 0 9)')
    parser.add_argument('--readouts', nargs='+', default=list(COLLAPSE),
                        choices=list(VARIANTS),
                        help='variants of benchmarks/variants.py (default: '
                        + ' '.join(COLLAPSE) + ')')
    parser.add_argument('--epochs', type=int, default=8,
                        help='epochs (default: 8)')
    parser.add_argument('--lr', type=float, default=0.01,
                        help='learning rate (default: 0.01)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of splits and models (default: 0)')
    parser.add_argument('--root', default=None,
                        help='data root (default: $SAP_GRAPH_DATA rules)')
    parser.add_argument('--out', default=OUT,
                        help=f'output folder (default: {OUT})')
    args = parser.parse_args()
    # The other fields grid_config reads, as in the grid.
    args.device, args.use_node_attr, args.lr_step, args.folds = (
        'cpu', False, 25, 10)
    torch.set_num_threads(1)
    runs = {}
    for fold in args.fold_ids:
        for readout in args.readouts:
            runs[f'fold {fold}, {readout}, lr {args.lr}'] = run(
                args.dataset, fold, readout, args.epochs, args)
    os.makedirs(args.out, exist_ok=True)
    results = dict(dataset=args.dataset, lr=args.lr, runs=runs)
    stem = osp.join(args.out, f'{args.dataset}_lr{args.lr:g}')
    with open(stem + '.json', 'w') as f:
        json.dump(results, f, indent=1)
    command = ('python -m benchmarks.collapse ' +
               ' '.join(sys.argv[1:])).strip()
    render(results, stem + '.md', command)
    print(f'wrote {stem}.md', flush=True)


if __name__ == '__main__':
    main()

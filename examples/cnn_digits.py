r"""SAPAggregation as the global pooling of a CNN, on scikit-learn's 8x8
digits (1,797 images, shipped with scikit-learn: no download).

A small CNN ends with a pooling over the :math:`H \times W` positions of
its last feature map. The baseline averages them (global average pooling,
GAP); the variant pools them with :class:`~sap_graph.SAPAggregation`
applied to the feature map as a :obj:`[B, H * W, C]` tensor with
:obj:`dim=-2` and no index (one set per image, the batch as a leading
dimension). Both variants train with the same seed, split and epochs, and
the test accuracies are printed. :obj:`--epochs`, :obj:`--seed` (of the
split, the initialisation and the batch order) and :obj:`--threads` are
checked (a count below 1 or a seed outside :math:`[0, 2^{31})` is one
error line)::

    python examples/cnn_digits.py --epochs 30 --seed 0 --threads 1
"""
from __future__ import annotations

import argparse
import time
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Conv2d, Linear, Module

from sap_graph import SAPAggregation
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.flags import ArgumentParser, refuse
from sap_graph.experiments.option_types import check_fields, seed, size


class DigitsCNN(Module):
    r"""Two 3x3 convolutions, then a global pooling over the positions and
    a linear classifier.

    Args:
        pool (str): :obj:`'gap'` (mean over positions) or :obj:`'sap'`
            (:class:`SAPAggregation` over positions).
        channels (int, optional): Width of the feature maps.
            (default: :obj:`32`)
        heads (int, optional): Attention heads of :obj:`'sap'`.
            (default: :obj:`4`)
        num_classes (int, optional): Number of classes.
            (default: :obj:`10`)
    """

    def __init__(self, pool: str, channels: int = 32, heads: int = 4,
                 num_classes: int = 10) -> None:
        super().__init__()
        if pool not in ('gap', 'sap'):
            raise ValueError(f"Unknown pool '{pool}' (expected 'gap' or "
                             f"'sap')")
        self.pool = pool
        self.conv1 = Conv2d(1, channels, 3, padding=1)
        self.conv2 = Conv2d(channels, channels, 3, padding=1)
        self.readout = (SAPAggregation(channels, heads=heads, concat=True,
                                       residual=None, size_scaler=None)
                        if pool == 'sap' else None)
        width = self.readout.output_channels if self.readout else channels
        self.lin = Linear(width, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))  # [B, C, H, W]
        x = x.flatten(2).transpose(1, 2)  # [B, H * W, C]
        if self.readout is None:
            x = x.mean(dim=-2)
        else:  # One set of H * W positions per image: [B, 1, heads * C].
            x = self.readout(x, dim=-2).squeeze(-2)
        return self.lin(x)


def load_digits_split(seed: int = 0,
                      test_size: float = 0.25) -> Tuple[Tensor, ...]:
    r"""Returns :obj:`(x_train, y_train, x_test, y_test)`: images
    :obj:`[N, 1, 8, 8]` scaled to :math:`[0, 1]` and a stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        torch.arange(len(y)).numpy(), test_size=test_size,
        random_state=seed, stratify=y.numpy())
    return x[idx_train], y[idx_train], x[idx_test], y[idx_test]


def train_and_test(pool: str, data: Tuple[Tensor, ...], epochs: int = 30,
                   batch_size: int = 64, lr: float = 0.003,
                   seed: int = 0) -> Dict[str, float]:
    r"""Trains a :class:`DigitsCNN` with Adam and returns its final test
    accuracy and the training time."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = DigitsCNN(pool)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(y_train), generator=generator)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            optimizer.step()
    elapsed = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        pred = model(x_test).argmax(dim=-1)
    acc = float((pred == y_test).float().mean())
    params = sum(p.numel() for p in model.parameters())
    return {'test_acc': acc, 'train_time': elapsed, 'params': params}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    r"""The flags, checked: a value that makes no run (:obj:`--epochs` or
    :obj:`--threads` below 1, a :obj:`--seed` outside
    :math:`[0, 2^{31})`) exits with one :obj:`error: --flag: ...` line,
    status 2."""
    parser = ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=30,
                        help='training epochs (default: 30)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the split, init and order '
                        '(default: 0)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default: 1)')
    args = parser.parse_args(argv)
    try:
        check_fields(args, {'epochs': size, 'seed': seed, 'threads': size})
    except ConfigError as e:
        refuse(parser, e)
    return args


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    data = load_digits_split(seed=args.seed)
    print(f'digits 8x8: {len(data[1])} train, {len(data[3])} test images; '
          f'{args.epochs} epochs, seed {args.seed}')
    for pool in ('gap', 'sap'):
        result = train_and_test(pool, data, epochs=args.epochs,
                                seed=args.seed)
        print(f"{pool.upper()}: test accuracy {result['test_acc']:.4f} "
              f"({result['params']} parameters, trained in "
              f"{result['train_time']:.1f}s)")


if __name__ == '__main__':
    main()

"""Interleaved timing of forward+backward steps, shared by the benchmark
scripts that compare rows side by side in one run: their flags, the
measurement, the tables of times and ratios, the results page."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor

from .speed import RESULTS, sync


def interleaved(rows: Dict[str, Callable[[], Tensor]], device: torch.device,
                repeats: int, warmup: int) -> Dict[str, float]:
    """Median milliseconds of forward+backward per row: each round runs one
    step of every row in turn (so that drifts of the machine hit all rows
    alike), after :obj:`warmup` unmeasured rounds."""
    times: Dict[str, List[float]] = {name: [] for name in rows}
    for round_ in range(warmup + repeats):
        for name, forward in rows.items():
            sync(device)
            start = time.perf_counter()
            out = forward()
            out.backward(torch.ones_like(out))
            sync(device)
            if round_ >= warmup:
                times[name].append(time.perf_counter() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def parser(doc: str) -> argparse.ArgumentParser:
    """The flags every side-by-side timing script takes (``--device``,
    ``--repeats``, ``--warmup``, ``--no-save``); a script adds its own."""
    out = argparse.ArgumentParser(description=doc.split('\n')[0])
    out.add_argument('--device', default='cpu',
                     help='device to run on (default: cpu)')
    out.add_argument('--repeats', type=int, default=15,
                     help='measured rounds (default: 15)')
    out.add_argument('--warmup', type=int, default=3,
                     help='warm-up rounds (default: 3)')
    out.add_argument('--no-save', dest='save', action='store_false',
                     help='print only, do not write results/')
    return out


def checked(parser: argparse.ArgumentParser,
            args: argparse.Namespace) -> argparse.Namespace:
    """:obj:`args` of :func:`parser`, checked, with ``cmdline`` (the flags
    as given, for the results page)."""
    if args.repeats < 1 or args.warmup < 0:
        parser.error('--repeats must be at least 1, --warmup at least 0')
    args.cmdline = ''.join(f' {a}' for a in sys.argv[1:])
    return args


def arguments(doc: str) -> argparse.Namespace:
    """The checked flags of a timing script with no others."""
    flags = parser(doc)
    return checked(flags, flags.parse_args())


def measure(column: str, rows: Dict[str, Callable[[], Tensor]],
            device: torch.device, args: argparse.Namespace,
            width: int = 40) -> Dict[str, float]:
    """:func:`interleaved` times of one column, printed as they come."""
    print(f'[{column}]', flush=True)
    times = interleaved(rows, device, args.repeats, args.warmup)
    for name, ms in times.items():
        print(f'  {name:{width}s} {ms:9.2f} ms', flush=True)
    return times


def time_tables(table: Dict[str, Dict[str, float]], label: str, base: str,
                base_title: str, heads: Optional[List[str]] = None
                ) -> List[str]:
    """Markdown lines of the times (ms) of ``table`` (column -> row ->
    ms) and of each row's ratio to row ``base`` (titled ``base_title``);
    ``label`` heads the row names, ``heads`` the columns (default: their
    names)."""
    cols = list(table)
    names = list(table[cols[0]])
    lines = ['## Time per forward+backward (ms)', '',
             f'| {label} | {" | ".join(heads or cols)} |',
             '|---|' + '---|' * len(cols)]
    for name in names:
        lines.append(f'| {name} | ' + ' | '.join(
            f'{table[c][name]:.2f}' for c in cols) + ' |')
    lines += ['', f'## Ratio to {base_title}', '', '(lower is faster)', '',
              f'| {label} | {" | ".join(cols)} |',
              '|---|' + '---|' * len(cols)]
    for name in names:
        if name != base:
            lines.append(f'| {name} | ' + ' | '.join(
                f'{table[c][name] / table[c][base]:.2f}' for c in cols)
                + ' |')
    return lines


def save(text: str, stem: str, device: torch.device) -> None:
    """Writes ``text`` to ``results/<stem>.md`` (``<stem>_<device>.md``
    off the CPU)."""
    os.makedirs(RESULTS, exist_ok=True)
    suffix = '' if device.type == 'cpu' else f'_{device.type}'
    with open(osp.join(RESULTS, f'{stem}{suffix}.md'), 'w') as f:
        f.write(text)

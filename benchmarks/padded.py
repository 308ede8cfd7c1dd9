"""Padded batches ``[B, L, d]``: SAP in place against the same rows packed
flat, side by side.

A sequence model hands its readout a padded batch and a mask (or lengths).
``SAPAggregation`` pools it in place; the alternative is to pack the kept
rows first (``x[mask]``) and pool the flat batch with ``ptr``. Every row
below runs on the same tensors, with the same weights; repeats are
interleaved (one step of each row per round) and the median is reported,
with each row's ratio to the flat batch packed beforehand. The padding
holds random values, as a sequence encoder's output does. Before timing,
the padded forms are checked against the flat form of the same rows.

Usage::

    python -m benchmarks.padded                    # writes results/padded.md
    python -m benchmarks.padded --repeats 5 --no-save
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Dict

import torch
from torch import Tensor

from sap_graph import SAPAggregation

from .speed import versions
from .timing import arguments, measure, save, time_tables


@dataclass
class Case:
    name: str
    rows: int  # B
    length: int  # L, the padded length; kept lengths uniform in [L/4, L]
    channels: int


CASES = [
    Case('SMILES-like', 128, 128, 64),
    Case('many short', 1024, 16, 128),
    Case('few long', 16, 2048, 64),
]

FLAT = 'sap flat (x, ptr), packed beforehand'


def make_case(case: Case, device: torch.device, seed: int = 0):
    """The padded batch, its lengths, a one-run mask, a scattered mask with
    the same counts, and the kept rows packed flat with their ``ptr``."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(case.length // 4, case.length + 1,
                            (case.rows, ), generator=gen)
    x = torch.randn(case.rows, case.length, case.channels, generator=gen)
    runs = torch.arange(case.length) < lengths[:, None]
    # The same number of kept positions per row, at random places.
    order = torch.rand(case.rows, case.length, generator=gen).argsort(1)
    scattered = torch.zeros_like(runs).scatter_(1, order, runs)
    ptr = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)])
    flat = x[runs]
    return [t.to(device) for t in (x, lengths, runs, scattered, flat, ptr)]


def steps(case: Case, device: torch.device) -> Dict[str, Callable[[], Tensor]]:
    """Row name -> one forward (the caller runs the backward)."""
    x, lengths, runs, scattered, flat, ptr = make_case(case, device)
    x.requires_grad_()
    flat.requires_grad_()
    b = case.rows

    def sap() -> SAPAggregation:
        torch.manual_seed(0)
        return SAPAggregation(case.channels).to(device)

    saps = [sap() for _ in range(5)]
    keep = runs.to(x.dtype).unsqueeze(-1)
    count = lengths.clamp(min=1).to(x.dtype).unsqueeze(-1)
    return {
        'masked mean (x * mask).sum / n': lambda: (x * keep).sum(1) / count,
        FLAT: lambda: saps[0](flat, ptr=ptr, dim_size=b),
        'sap x[mask] packed in the step': lambda: saps[1](
            x[runs], ptr=ptr, dim_size=b),
        'sap padded, lengths=': lambda: saps[2](x, lengths=lengths),
        'sap padded, mask= (one run per row)': lambda: saps[3](x, mask=runs),
        'sap padded, mask= (scattered)': lambda: saps[4](x, mask=scattered),
    }


def check(case: Case, device: torch.device) -> None:
    """The padded forms against the flat form of the same rows."""
    x, lengths, runs, scattered, flat, ptr = make_case(case, device)
    aggr = SAPAggregation(case.channels).to(device)
    with torch.no_grad():  # Non-uniform attention (default: zeros).
        aggr.query.normal_()
        ref = aggr(flat, ptr=ptr, dim_size=case.rows)
        ref_scattered = aggr(x[scattered], ptr=ptr, dim_size=case.rows)
        for name, out, want in (
                ('lengths=', aggr(x, lengths=lengths), ref),
                ('mask=', aggr(x, mask=runs), ref),
                ('scattered mask=', aggr(x, mask=scattered), ref_scattered)):
            # Padded rows give [B, 1, C] (one pooled row per leading row).
            if not torch.allclose(out.squeeze(1), want, atol=1e-4,
                                  rtol=1e-4):
                raise SystemExit(f'{case.name}: padded {name} disagrees '
                                 f'with the flat batch')


def render(table: Dict[str, Dict[str, float]], header: str,
           args: argparse.Namespace) -> str:
    by_name = {c.name: c for c in CASES}
    heads = [f'{c} ({by_name[c].rows}x{by_name[c].length}, '
             f'd={by_name[c].channels})' for c in table]
    lines = [
        '# Padded batches: SAP in place against the rows packed flat', '',
        header, '',
        f'Command: `python -m benchmarks.padded{args.cmdline}` (median of '
        f'{args.repeats} interleaved repeats after {args.warmup} warm-up '
        f'rounds; forward+backward with `x.requires_grad_()`). `[B, L, d]` '
        f'batches with kept lengths uniform in [L/4, L] and random values '
        f'in the padding; every SAP row is `SAPAggregation(d)` (the '
        f'defaults) with the same weights; the scattered mask keeps as '
        f'many positions per row as the one-run mask, at random places.',
        '', *time_tables(table, 'row', FLAT, f'`{FLAT}`', heads)]
    return '\n'.join(lines) + '\n'


def main() -> None:
    args = arguments(__doc__)
    device = torch.device(args.device)
    table = {}
    for case in CASES:
        check(case, device)
        table[case.name] = measure(case.name, steps(case, device), device,
                                   args)
    text = render(table, versions(device), args)
    print(text)
    if args.save:
        save(text, 'padded', device)


if __name__ == '__main__':
    main()

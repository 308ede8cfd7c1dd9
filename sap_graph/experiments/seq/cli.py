r"""Command-line plumbing shared by the sequence examples
(:obj:`examples/smiles_sequence.py`, :obj:`examples/multimodal_fusion.py`):
their parser, with one flag per field of a config dataclass
(:func:`~sap_graph.experiments.flags.add_dataclass_arguments`) and the
flags they share (:func:`example_parser`); the parsed config with its
heads checked (:func:`parse_example`); the OGB root holding
:obj:`ogbg_molhiv/` (:func:`ogb_root`); and the pieces of the markdown
report (:func:`report_header`, :func:`time_note`, :func:`figure_link`,
:func:`write_report`)."""
from __future__ import annotations

import argparse
import os
import os.path as osp
import sys
from typing import Any, List, Optional, Sequence, Tuple

import torch

from sap_graph.experiments.flags import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from sap_graph.experiments.seq.models import check_heads


def default_root() -> str:
    r"""The OGB root: :obj:`$SAP_GRAPH_DATA/ogb`, else
    :obj:`./data/ogb`."""
    base = os.environ.get('SAP_GRAPH_DATA')
    return osp.join(base, 'ogb') if base else osp.join('data', 'ogb')


def ogb_root(args: argparse.Namespace) -> str:
    r"""The OGB root holding :obj:`ogbg_molhiv/`: :obj:`--root`, else
    :func:`default_root`."""
    return args.root or default_root()


def example_parser(doc: str, cls: Any, seeds: List[int], seeds_help: str,
                   figure_help: str) -> argparse.ArgumentParser:
    r"""A parser described by the first paragraph of :obj:`doc` (the
    example's docstring, shown whole under :obj:`--help`), with
    :obj:`--root`, one flag per field of the dataclass :obj:`cls`, and
    :obj:`--seeds` (default :obj:`seeds`), :obj:`--limit`,
    :obj:`--threads`, :obj:`--out` and :obj:`--figure`."""
    parser = argparse.ArgumentParser(
        description=doc.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--root', default=None,
                        help='OGB root holding ogbg_molhiv/ (default: '
                        '$SAP_GRAPH_DATA/ogb or ./data/ogb)')
    add_dataclass_arguments(parser, cls)
    parser.add_argument('--seeds', type=int, nargs='+', default=seeds,
                        help=f'{seeds_help} (default: '
                        f'{" ".join(map(str, seeds))})')
    parser.add_argument('--limit', type=int, default=None,
                        help='use the first N molecules of the split only '
                        '(80/10/10; default: all)')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (default: 1)')
    parser.add_argument('--out', default=None,
                        help='write the results (markdown) here (default: '
                        'none)')
    parser.add_argument('--figure', default=None,
                        help=f'{figure_help} (PNG; needs matplotlib; '
                        'default: none)')
    return parser


def parse_example(parser: argparse.ArgumentParser, cls: Any,
                  poolers: str, width: str,
                  argv: Optional[Sequence[str]] = None
                  ) -> Tuple[argparse.Namespace, Any]:
    r"""Parses :obj:`argv` into the flags and the :obj:`cls` config; sets
    the torch threads.

    When the list flag :obj:`poolers` (*e.g.* :obj:`'readouts'`) holds
    :obj:`'sap'`, the config's :obj:`heads` must divide its field
    :obj:`width`: else exits with one :obj:`error: --heads: ...` line,
    status 2."""
    args = parser.parse_args(argv)
    cfg = dataclass_from_args(cls, args)
    if 'sap' in getattr(args, poolers):
        try:
            check_heads(cfg.heads, getattr(cfg, width))
        except ValueError as e:
            parser.exit(2, f'error: --heads: {e}\n')
    torch.set_num_threads(args.threads)
    return args, cfg


def report_header(title: str) -> str:
    r"""The title of a report and how to regenerate it (this command)."""
    command = (f'python examples/{osp.basename(sys.argv[0])} '
               + ' '.join(sys.argv[1:]))
    return (f'# {title}\n\nRegenerate with `{command}` (`SAP_GRAPH_DATA` '
            'pointing at the folder holding `ogb/ogbg_molhiv/`).\n\n')


def time_note(total: float, threads: int) -> str:
    r"""The line of a report with its total time of :obj:`total`
    seconds."""
    return (f'\nTotal time {total / 60:.1f} min on {threads} CPU '
            'thread(s) (a shared 2-core machine).\n')


def figure_link(figure: str, out: str) -> str:
    r"""The path of :obj:`figure` from the folder of the report
    :obj:`out`."""
    return osp.relpath(osp.abspath(figure), osp.dirname(osp.abspath(out)))


def make_folder(path: str) -> str:
    r"""Makes the folder of the file :obj:`path`; returns :obj:`path`."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    return path


def write_report(path: str, text: str) -> None:
    r"""Writes :obj:`text` to :obj:`path`, its folder made."""
    with open(make_folder(path), 'w') as f:
        f.write(text)
    print(f'Wrote {path}')

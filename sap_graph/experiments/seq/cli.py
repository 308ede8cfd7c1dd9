r"""Command-line plumbing shared by the sequence examples
(:obj:`examples/smiles_sequence.py`, :obj:`examples/multimodal_fusion.py`):
their parser, with one flag per field of a config dataclass
(:func:`~sap_graph.experiments.flags.add_dataclass_arguments`) and the
flags they share (:func:`example_parser`, whose usage errors are one
line); the parsed config and flags, checked before any data is read, a
bad value refused with one :obj:`error: --flag: ...` line
(:func:`parse_example`, :func:`check_run_flags`,
:func:`check_example_outputs`, :func:`check_root`); the OGB root holding
:obj:`ogbg_molhiv/` (:func:`ogb_root`); and the pieces of the markdown
report (:func:`report_header`, :func:`time_note`, :func:`figure_link`,
:func:`write_example_report`)."""
from __future__ import annotations

import argparse
import importlib.util
import os
import os.path as osp
import re
import sys
from typing import Any, List, Optional, Sequence, Tuple

import torch

from sap_graph.experiments.data.cache import default_root
from sap_graph.experiments.data.task import DatasetNotFoundError
from sap_graph.experiments.errors import ConfigError
from sap_graph.experiments.files import (
    DistinctFiles,
    OutputError,
    check_writable,
    real_path,
)
from sap_graph.experiments.flags import (
    ArgumentParser,
    add_dataclass_arguments,
    dataclass_from_args,
    refuse,
)
from sap_graph.experiments.option_types import size
from sap_graph.experiments.seq.models import TRANSFORMER_HEADS, check_heads
from sap_graph.experiments.seq.smiles import (
    check_limit,
    check_molhiv_folder,
)
from sap_graph.experiments.train.config import MAX_SEED


def ogb_root(args: argparse.Namespace) -> str:
    r"""The OGB root holding :obj:`ogbg_molhiv/`: :obj:`--root`, else
    the harness's (:func:`~sap_graph.experiments.data.default_root`:
    :obj:`$SAP_GRAPH_DATA/ogb`, else :obj:`./data/ogb`)."""
    return default_root('ogb', args.root)


def example_parser(doc: str, cls: Any, seeds: List[int], seeds_help: str,
                   figure_help: str) -> argparse.ArgumentParser:
    r"""A parser described by the first paragraph of :obj:`doc` (the
    example's docstring, shown whole under :obj:`--help`), with
    :obj:`--root`, one flag per field of the dataclass :obj:`cls`, and
    :obj:`--seeds` (default :obj:`seeds`), :obj:`--limit`,
    :obj:`--threads`, :obj:`--out` and :obj:`--figure`."""
    parser = ArgumentParser(
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

    Checked before any data is read: the config's fields (its
    :obj:`check`, run when it is made); when the list flag :obj:`poolers`
    (*e.g.* :obj:`'readouts'`) holds :obj:`'sap'`, that the config's
    :obj:`heads` divide its field :obj:`width`; :func:`check_run_flags`,
    :func:`check_example_outputs` and :func:`check_root`. A bad value
    exits with one :obj:`error: --flag: ...` line, status 2."""
    args = parser.parse_args(argv)
    try:
        cfg = dataclass_from_args(cls, args)
        if 'sap' in getattr(args, poolers):
            try:
                check_heads(cfg.heads, getattr(cfg, width))
            except ValueError as e:
                raise ConfigError('heads', str(e)) from None
        if getattr(cfg, 'encoder', None) == 'transformer' and (
                getattr(cfg, width) % TRANSFORMER_HEADS):
            raise ConfigError(width, f"the transformer encoder's "
                              f"{TRANSFORMER_HEADS} attention heads must "
                              f"divide '{width}' (got "
                              f"{getattr(cfg, width)})")
        check_run_flags(args, poolers)
        check_example_outputs(args, poolers)
        check_root(args)
    except (ConfigError, DatasetNotFoundError) as e:
        refuse(parser, e, cls)
    torch.set_num_threads(args.threads)
    return args, cfg


def check_run_flags(args: argparse.Namespace, poolers: str) -> None:
    r"""Checks the flags of :func:`example_parser` beside the config's:
    :obj:`seeds` (integers in :math:`[0, 2^{31})`, each once), the list
    flag :obj:`poolers` (each once), :obj:`limit`
    (:func:`~.smiles.check_limit`) and :obj:`threads` (a positive
    integer).

    Raises:
        ConfigError: For the first bad one, naming it.
    """
    for seed in args.seeds:
        if not 0 <= seed < MAX_SEED:
            raise ConfigError('seeds', f"'seeds' must be integers from 0 to "
                              f"{MAX_SEED - 1} (got {seed})")
    for name, values in (('seeds', args.seeds),
                         (poolers, getattr(args, poolers))):
        if len(set(values)) != len(values):
            raise ConfigError(name, f"'{name}' holds a value twice: "
                              f"{' '.join(map(str, values))} (each is one "
                              f"run)")
    check_limit(args.limit)
    try:
        size('threads', args.threads)
    except ValueError as e:
        raise ConfigError('threads', str(e)) from None


def check_example_outputs(args: argparse.Namespace, poolers: str) -> None:
    r"""Checks the files that the run writes at its end, before it runs:
    :obj:`out` (the report) and :obj:`figure` can be written
    (:func:`~sap_graph.experiments.files.check_writable`: not a folder,
    not under a file, in a writable folder) and differ; the figure, which
    shows the attention of SAP, needs :obj:`'sap'` among :obj:`poolers`
    and matplotlib.

    Raises:
        ConfigError: For the first bad one, naming it.
    """
    data = real_path(osp.join(ogb_root(args), 'ogbg_molhiv'))
    files = DistinctFiles()
    embeddings = getattr(args, 'embeddings', None)
    if embeddings is not None:  # Read when it exists: the stage-1 cache.
        files.claim('embeddings', embeddings)
    for name, what in (('out', 'report'), ('figure', 'figure')):
        path = getattr(args, name)
        if path is None:
            continue
        try:
            check_writable(path, what)
        except OutputError as e:
            raise ConfigError(name, str(e)) from None
        if osp.commonpath([real_path(path), data]) == data:
            raise ConfigError(name, f"'{path}' is inside the data folder "
                              f"'{data}': the {what} would overwrite the "
                              f"input")
        other = files.claim(name, path)
        if other is not None:
            label = {'embeddings': 'embeddings cache', 'out': 'report'}
            raise ConfigError(name, f"the {what} '{path}' would overwrite "
                              f"the {label[other]} ({other})")
    if args.figure is None:
        return
    if 'sap' not in getattr(args, poolers):
        raise ConfigError('figure', f"the figure shows the attention of "
                          f"'sap', which is not among the {poolers} "
                          f"({' '.join(getattr(args, poolers))})")
    if importlib.util.find_spec('matplotlib') is None:
        raise ConfigError('figure', 'drawing the figure needs matplotlib '
                          '(pip install matplotlib)')
    from sap_graph.experiments.explain.drawing import check_image_outputs
    check_image_outputs({'figure': args.figure})  # Its format, before.


def check_root(args: argparse.Namespace) -> None:
    r"""Checks that the OGB root (:func:`ogb_root`) holds
    :obj:`ogbg_molhiv/` (:func:`~.smiles.check_molhiv_folder`).

    Raises:
        DatasetNotFoundError: Naming the missing files (field
            :obj:`'root'`).
    """
    check_molhiv_folder(osp.join(ogb_root(args), 'ogbg_molhiv'))


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


#: The heading mark of a report's section written by hand: regenerating
#: the report keeps that section, and what follows it, at its end.
HAND_WRITTEN = '(written by hand; not regenerated)'


def write_example_report(path: str, text: str) -> None:
    r"""Writes :obj:`text` to :obj:`path`, its folder made; a section of
    the file there whose heading holds :data:`HAND_WRITTEN` is kept at the
    end (the docs' pages add their reading of the run)."""
    kept = ''
    if osp.isfile(path):
        with open(path, encoding='utf-8') as f:
            old = f.read()
        found = re.search(r'^#+ .*' + re.escape(HAND_WRITTEN), old, re.M)
        if found:
            kept = '\n' + old[found.start():]
            text = text.rstrip('\n') + '\n'
    with open(make_folder(path), 'w', encoding='utf-8') as f:
        f.write(text + kept)
    print(f'Wrote {path}')

"""Markdown helpers shared by the sections of a rendering."""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

import pandas as pd

from .load import METRIC_NAMES, Cells

_MARKS = {'l': '---', 'r': '--:', 'c': ':-:'}


def md_table(frame: pd.DataFrame, align: Optional[str] = None) -> List[str]:
    """A GitHub markdown table of :obj:`frame` (columns as the header, the
    index dropped, every value as its ``str``); :obj:`align` has one of
    ``l``, ``r``, ``c`` per column (default: first left, others right)."""
    header = [str(c) for c in frame.columns]
    align = align or 'l' + 'r' * (len(header) - 1)
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join(_MARKS[a] for a in align) + '|']
    lines += ['| ' + ' | '.join(str(v) for v in row) + ' |'
              for row in frame.itertuples(index=False, name=None)]
    return lines


def rows_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               align: Optional[str] = None) -> List[str]:
    """:func:`md_table` of plain rows."""
    return md_table(pd.DataFrame(list(rows), columns=list(header)), align)


def fmt_duration(seconds: float) -> str:
    if seconds < 60:
        return f'{seconds:.1f} s'
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f'{minutes} min {sec:02d} s'
    hours, minutes = divmod(minutes, 60)
    return f'{hours} h {minutes:02d} min'


def label(dataset: str, labels: Optional[Mapping[str, str]] = None) -> str:
    """The shown name of a dataset (``'ENZYMES (node attr.)'`` for one
    taken from another cache by ``--override``)."""
    return (labels or {}).get(dataset, dataset)


def column_name(dataset: str, cells: Cells,
                labels: Optional[Mapping[str, str]] = None) -> str:
    """``'MUTAG (accuracy)'``: the dataset's label and metric."""
    metrics = {c.metric for (d, _), c in cells.items() if d == dataset}
    names = '/'.join(METRIC_NAMES.get(m, m) for m in sorted(metrics))
    return f'{label(dataset, labels)} ({names})'

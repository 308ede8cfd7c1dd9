r"""Reading and checking a CSV of molecules for
:func:`~sap_graph.experiments.data.molecules.load_molecule_csv`: the
file as text, its columns (with a hint for a misspelt name or another
delimiter), its numeric targets and the task type they imply; every
problem is a :class:`DatasetFormatError` naming the file, column and line.
"""
from __future__ import annotations

import difflib
from typing import Any, List, Optional, Sequence, Tuple, TypeVar

import torch
from torch import Tensor

from sap_graph.experiments.data.task import DatasetFormatError

E = TypeVar('E', bound=Exception)


def about(error: E, field: str) -> E:
    r"""Names the option that picks what :obj:`error` is about
    (:obj:`'dataset'`, :obj:`'smiles_column'` or :obj:`'targets'`), as a
    :class:`~sap_graph.experiments.errors.ConfigError` does, so that the
    command line prefixes its flag."""
    error.field = field
    return error


def missing_column(path: str, what: str, name: str,
                    columns: Sequence[str]) -> DatasetFormatError:
    close = difflib.get_close_matches(name, columns, n=3, cutoff=0.5)
    close += [c for c in columns if name.lower() in c.lower()
              and c not in close][:3 - len(close)]
    hint = (f"; did you mean {', '.join(repr(c) for c in close)}?"
            if close else '')
    other = [d for d in (';', '\t', '|') if len(columns) == 1
             and d in columns[0]]
    if other:  # One column holding the separators of another format.
        hint = (f"; the header is split by {other[0]!r}, but the file must "
                f"be comma-separated")
    error = DatasetFormatError(
        f"'{path}' has no {what} column '{name}' (columns: "
        f"{', '.join(repr(c) for c in columns)}){hint}")
    if other:  # The file's format is wrong, not the option.
        return error
    return about(error, 'smiles_column' if what == 'SMILES' else 'targets')


def _read_errors() -> tuple:
    r"""What reading a corrupt, truncated or foreign file can raise:
    pandas' parser errors, undecodable text, and the errors of each
    compression pandas infers from the name (:obj:`.gz`, :obj:`.bz2`,
    :obj:`.xz`, :obj:`.zip`, :obj:`.tar`, ...): a cut stream
    (:class:`EOFError`), corrupt data (:obj:`zlib.error`,
    :class:`lzma.LZMAError`, :class:`OSError`), a bad archive, or an
    archive with no or several files (:class:`ValueError`)."""
    import lzma
    import tarfile
    import zipfile
    import zlib
    return (ValueError, UnicodeDecodeError, OSError, EOFError, zlib.error,
            lzma.LZMAError, zipfile.BadZipFile, tarfile.TarError)


def read_csv(path: str) -> Any:
    import warnings

    import pandas as pd
    try:
        # All as text; '', 'NA', 'nan', ... become NaN. Blank lines are
        # kept (and dropped by the caller) so that rows match the records
        # of scan_records. No index column: a trailing comma on every row
        # would make the first column the index and shift the others;
        # scan_records refuses rows whose extra fields hold anything.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', pd.errors.ParserWarning)
            return pd.read_csv(path, dtype=str, skip_blank_lines=False,
                               compression='infer', index_col=False)
    except pd.errors.EmptyDataError:
        raise DatasetFormatError(f"'{path}' is empty (no header, no rows)") \
            from None
    except _read_errors() as e:  # ParserError is a ValueError.
        extra = _first_extra(_records(path)[0]) if isinstance(
            e, pd.errors.ParserError) else None
        if extra is not None:  # pandas counts lines without quoted breaks.
            raise DatasetFormatError(_extra_message(path, *extra)) from None
        kind = type(e).__name__
        if kind == 'error':  # zlib.error
            kind = f'{type(e).__module__}.{kind}'
        raise DatasetFormatError(f"'{path}' is not a readable CSV file "
                                 f"({kind}: {e})") from None


def _extra_message(path: str, line: int, fields: int, header: int) -> str:
    return (f"'{path}': line {line} has {fields} fields, the header "
            f"{header}: the extra values belong to no column")


def _records(path: str) -> Tuple[List[Tuple[int, List[str]]], bool]:
    r"""Every record of the CSV read by the :mod:`csv` module over the
    decompressed text: :obj:`(first line, fields)` (a quoted cell may hold
    line breaks), and whether the whole file could be read (else the
    records before the failure)."""
    import csv

    from pandas.io.common import get_handle
    records: List[Tuple[int, List[str]]] = []
    try:
        with get_handle(path, 'r', encoding='utf-8', compression='infer',
                        errors='strict') as handles:
            reader = csv.reader(handles.handle)
            end = 0  # The last line of the previous record.
            for fields in reader:
                records.append((end + 1, fields))
                end = reader.line_num
    except (csv.Error, *_read_errors()):
        return records, False
    return records, True


def _first_extra(records: List[Tuple[int, List[str]]]
                 ) -> Optional[Tuple[int, int, int]]:
    r"""The first record with values beyond the header's fields:
    :obj:`(line, fields, header fields)`, or :obj:`None`."""
    if not records:
        return None
    header = records[0][1]
    for line, fields in records[1:]:
        if len(fields) > len(header) and any(
                f.strip() for f in fields[len(header):]):
            return line, len(fields), len(header)
    return None


def scan_records(path: str, frame: Any, used: Sequence[str]) -> Tensor:
    r"""Returns the physical line (1-based) on which each data record of
    a CSV that :func:`read_csv` read as :obj:`frame` starts: a quoted cell
    may hold line breaks, so record :obj:`i` is on line :obj:`i + 2` only
    without them. The records are counted by the
    :mod:`csv` module over the same decompressed text; should it see
    another number of records than pandas (or fail), the lines are
    numbered as if no cell held a line break.

    Raises:
        DatasetFormatError: When a column of :obj:`used` is named twice
            in the header with other values in each (pandas would rename
            the second :obj:`NAME.1`; QM8's identical PBE0 blocks are one
            column), or a record has more fields than the header and the
            extra ones are not empty (pandas would drop them).
    """
    records, complete = _records(path)
    extra = _first_extra(records)
    if extra is not None:
        raise DatasetFormatError(_extra_message(path, *extra))
    header = records[0][1] if records else []
    starts = [line for line, _ in records] if complete else []
    for name in used:
        at = [i + 1 for i, c in enumerate(header)
              if c.lstrip('\ufeff') == name]
        # By position (index_col=False keeps the header's columns), not
        # by pandas' names for the copies ('y.1' may be a column too).
        if len(at) > 1 and len(frame.columns) >= at[-1] and not all(
                frame.iloc[:, i - 1].equals(frame.iloc[:, at[0] - 1])
                for i in at[1:]):
            raise DatasetFormatError(
                f"'{path}' names column '{name}' more than once (columns "
                f"{', '.join(map(str, at))}) with other values in each: "
                f"rename the others")
    num_rows = len(frame)
    if len(starts) != num_rows + 1:  # The header is a record too.
        return torch.arange(num_rows, dtype=torch.long) + 2
    return torch.tensor(starts[1:], dtype=torch.long)


#: The cells pandas reads as missing by default, also with spaces around
#: them (a target cell is stripped before it is read as a number).
MISSING = frozenset({
    '', '#N/A', '#N/A N/A', '#NA', '-1.#IND', '-1.#QNAN', '-NaN', '-nan',
    '1.#IND', '1.#QNAN', '<NA>', 'N/A', 'NA', 'NULL', 'NaN', 'None', 'n/a',
    'nan', 'null'})


def target_values(path: str, frame: Any, targets: Sequence[str],
             lines: Any) -> Tensor:
    import numpy as np
    import pandas as pd
    columns = []
    for name in targets:
        text = frame[name].str.strip()
        text = text.where(~text.isin(MISSING))  # ' NA ', '  ': missing.
        values = pd.to_numeric(text, errors='coerce').to_numpy(np.float64)
        # Targets are float32 tensors: a larger value would become inf.
        huge = np.abs(values) > np.finfo(np.float32).max
        bad = (text.notna().to_numpy() & np.isnan(values)) | huge
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            what = ('a non-numeric' if np.isnan(values[i]) else
                    'an infinite' if np.isinf(values[i]) else
                    'an out-of-range (beyond float32)')
            raise DatasetFormatError(
                f"'{path}': target column '{name}' has {what} value "
                f"{text.iloc[i]!r} on line {int(lines[i])} ({int(bad.sum())} "
                f"non-numeric, infinite or out-of-range values in all)")
        columns.append(values)
    return torch.from_numpy(np.stack(columns, axis=1)).float()


def infer_task_type(path: str, y: Tensor, targets: Sequence[str],
                     task_type: str) -> str:
    labelled = ~torch.isnan(y)
    is_binary = bool(((y == 0) | (y == 1))[labelled].all())
    if task_type == 'auto':
        binary = [t for t in range(len(targets))
                  if bool(((y[:, t] == 0) | (y[:, t] == 1))[
                      labelled[:, t]].all())]
        if 0 < len(binary) < len(targets):
            names = [targets[t] for t in binary]
            raise about(DatasetFormatError(
                f"'{path}': target column(s) {', '.join(map(repr, names))} "
                f"hold 0/1 (classification) and the others real values "
                f"(regression); one run scores one kind of task, so pass "
                f"them in separate runs"), 'targets')
        task_type = ('binary classification' if is_binary
                     else 'regression')
    elif task_type == 'binary classification' and not is_binary:
        bad = int((labelled & (y != 0) & (y != 1)).any(0).nonzero()[0])
        raise DatasetFormatError(
            f"'{path}': target column '{targets[bad]}' has values other "
            f"than 0 and 1, so it cannot be a binary classification task")
    if task_type == 'binary classification':
        for t, name in enumerate(targets):
            classes = y[labelled[:, t], t].unique().tolist()
            if len(classes) < 2:
                raise about(DatasetFormatError(
                    f"'{path}': binary target column '{name}' has one class "
                    f"only ({int(classes[0])}) among the molecules with "
                    f"valid SMILES, so it cannot be classified"), 'targets')
    return task_type

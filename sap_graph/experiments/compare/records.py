r"""The run records of a comparison's cache folder: one JSON file per
finished run, read by :func:`read_record` and written by
:func:`write_record`.

A record that cannot be read back (truncated by a full disk, overwritten
with garbage, not an object, without the fields a report needs or with
one of the wrong type) is
*damaged*: :func:`read_record` warns, naming the file, and returns
:obj:`None`, so that the comparison trains that run again (and replaces
the file) instead of failing as a whole. A record path that is a folder,
and a record that cannot be written, are an
:class:`~sap_graph.experiments.files.OutputError`.
"""
from __future__ import annotations

import json
import os.path as osp
import warnings
from typing import Any, Dict, Optional, Tuple

from sap_graph.experiments.errors import one_line
from sap_graph.experiments.files import OutputError, write_json

#: The fields every record has (the report reads them).
REQUIRED = ('lr', 'unit', 'val', 'test', 'final_train_loss')


def _problem(path: str) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    r"""Returns :obj:`(record, None)`, or :obj:`(None, why)` for a damaged
    record."""
    try:
        with open(path, 'rb') as f:
            record = json.loads(f.read().decode('utf-8'))
    except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError too.
        return None, f'not JSON: {one_line(e, 80)}'
    if not isinstance(record, dict):
        return None, f'a JSON {type(record).__name__}, not an object'
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        return None, f"no {', '.join(repr(k) for k in missing)}"
    for key in REQUIRED:
        value = record[key]
        if key == 'unit':
            ok = isinstance(value, str)
        else:  # A score of a diverged run is null; a rate never.
            ok = (isinstance(value, (int, float))
                  and not isinstance(value, bool)) or (
                      value is None and key != 'lr')
        if not ok:
            return None, f"{key!r} is {value!r}"
    return record, None


def read_record(path: str, warn: str = '') -> Optional[Dict[str, Any]]:
    r"""Reads the record of a finished run.

    Args:
        path (str): The record file.
        warn (str, optional): What happens to a damaged record, for its
            warning (*e.g.* :obj:`'training that run again'`); empty: no
            warning. (default: :obj:`''`)

    Returns:
        The record, or :obj:`None` if there is none or it is damaged.

    Raises:
        OutputError: If :obj:`path` is a folder, or cannot be read at all
            (permissions, I/O error).
    """
    if osp.isdir(path):
        raise OutputError(f"run record '{path}' is a folder (expected the "
                          f"JSON file of a finished run); remove it")
    if not osp.exists(path):
        return None
    try:
        record, why = _problem(path)
    except OSError as e:
        raise OutputError(f"cannot read run record '{path}' "
                          f"({e.strerror or e})") from None
    if why is not None and warn:
        warnings.warn(f"run record '{path}' is damaged ({why}); {warn}",
                      stacklevel=2)
    return record


def write_record(path: str, record: Dict[str, Any]) -> None:
    r"""Writes :obj:`record` to :obj:`path` atomically (a damaged record
    there is replaced).

    Raises:
        OutputError: If it cannot be written (naming the file and why).
    """
    try:
        write_json(path, record, indent=1, sort_keys=True)
    except OSError as e:
        raise OutputError(f"cannot write run record '{path}' "
                          f"({e.strerror or e})") from None


__all__ = ['REQUIRED', 'read_record', 'write_record']

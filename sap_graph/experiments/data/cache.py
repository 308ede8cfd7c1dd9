r"""Data roots and caches.

Without an explicit root, :envvar:`SAP_GRAPH_DATA` (a folder holding
:obj:`TUDataset/` and :obj:`ogb/`) and then :obj:`./data` (same layout) are
used.

Where :obj:`processed/` goes: as in PyG, a *writable* dataset folder gets
its :obj:`processed/` next to :obj:`raw/`; a read-only one is first copied
to a cache (:envvar:`SAP_GRAPH_CACHE`, else :obj:`~/.cache/sap_graph`),
which gets it instead. Two rules keep that safe:

* :obj:`processed/` is keyed to the raw files: a TU dataset's
  :obj:`processed/` records a fingerprint of :obj:`raw/` (names, sizes and
  modification times), and a cached copy records the fingerprint of its
  source. When the raw files change (edited, added or deleted), the data is
  processed again from them, so a stale :obj:`processed/` never hides them.
* Processing (and copying to the cache) happens under an exclusive
  :func:`fcntl.flock` on :obj:`<root>/.<NAME>.lock` (kept, never deleted):
  runs started together on a fresh root wait for the first to process the
  data and then read it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import os.path as osp
import shutil
import socket
import stat
import tempfile
from typing import (
    Any,
    Callable,
    Iterator,
    List,
    Optional,
    Sequence,
)

from sap_graph.experiments.data.task import DatasetNotFoundError

ENV_DATA = 'SAP_GRAPH_DATA'
ENV_CACHE = 'SAP_GRAPH_CACHE'
DOWNLOAD_TIMEOUT = 30.0


# Roots and caches #########################################################


def default_root(kind: str, root: Optional[str] = None) -> str:
    r"""Resolves the data root of a dataset family.

    Args:
        kind (str): :obj:`'tu'` or :obj:`'ogb'`.
        root (str, optional): An explicit root, returned unchanged (PyG's
            and OGB's meaning). (default: :obj:`None`, *i.e.*
            :obj:`$SAP_GRAPH_DATA/TUDataset` or :obj:`$SAP_GRAPH_DATA/ogb`,
            else :obj:`./data/TUDataset` or :obj:`./data/ogb`)

    Raises:
        DatasetNotFoundError: When the root, or the first path above it
            that exists, is not a folder (nothing can be read from it or
            downloaded into it).
    """
    if root:
        root = osp.expanduser(root)
    else:
        from sap_graph.experiments.data.kinds import KINDS
        sub = KINDS[kind].data_folder
        base = os.environ.get(ENV_DATA) or 'data'
        root = osp.join(osp.expanduser(base), sub)
    above = osp.abspath(root)  # The root, else the first folder above it.
    while not osp.exists(above) and osp.dirname(above) != above:
        above = osp.dirname(above)
    if not osp.isdir(above):
        where = '' if above == osp.abspath(root) else f": '{above}'"
        raise DatasetNotFoundError(f"data root '{root}'{where} is not a "
                                   f"folder")
    return root


def cache_root() -> str:
    r"""Returns the cache for copies of read-only data sources."""
    return osp.expanduser(os.environ.get(ENV_CACHE)
                          or osp.join('~', '.cache', 'sap_graph'))


def is_writable(path: str) -> bool:
    r"""Whether :obj:`path` (or the first existing folder above it) is
    writable. Write bits are honoured even for root, who :func:`os.access`
    would let write anywhere."""
    path = osp.abspath(path)
    while not osp.exists(path):
        parent = osp.dirname(path)
        if parent == path:
            return False
        path = parent
    mode = os.stat(path).st_mode
    return os.access(path, os.W_OK) and bool(mode & stat.S_IWUSR)


def _tree_writable(path: str) -> bool:
    if not is_writable(path):
        return False
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            if not is_writable(osp.join(dirpath, name)):
                return False
    return True


#: Fingerprint files: of the raw files a processed/ folder was made from,
#: and of the source folder a cached copy was made from.
RAW_STAMP = 'sap_graph_raw.txt'
SOURCE_STAMP = '.sap_graph_source.txt'


def fingerprint(folder: str, subs: Sequence[str] = ('raw', )) -> str:
    r"""Returns a digest of the names, sizes and modification times of the
    files in the sub-folders :obj:`subs` of :obj:`folder`: it changes when
    a file is edited, added or deleted."""
    digest = hashlib.sha1()
    for sub in subs:
        top = osp.join(folder, sub)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                path = osp.join(dirpath, name)
                st = os.stat(path)
                digest.update(f'{osp.relpath(path, folder)}\0{st.st_size}'
                              f'\0{st.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


def _read_stamp(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write_stamp(path: str, value: str) -> None:
    with open(path, 'w') as f:
        f.write(value + '\n')


def cached_copy(
    src: str,
    dst: str,
    check: Sequence[str] = ('raw', ),
    prepare: Optional[Callable[[str], Any]] = None,
) -> str:
    r"""Copies the dataset folder :obj:`src` to :obj:`dst` unless an
    up-to-date copy exists (one made when the sub-folders :obj:`check` of
    :obj:`src` had the same :func:`fingerprint`). The copy is made (and
    prepared) under a temporary folder and then moved into place, so a
    killed run never leaves a partial or half-processed copy; call it under
    :func:`~sap_graph.experiments.files.exclusive_lock` when runs may be
    concurrent.

    Args:
        src (str): The read-only dataset folder.
        dst (str): Its copy.
        check (sequence of str, optional): Sub-folders that must match;
            the others are not copied. (default: :obj:`('raw', )`)
        prepare (callable, optional): Called with the root of the
            temporary copy (a folder holding :obj:`basename(dst)`) before
            it is moved into place, *e.g.* to write :obj:`processed/`.
            (default: :obj:`None`)
    """
    source = fingerprint(src, check)
    if osp.isdir(dst) and _read_stamp(osp.join(dst, SOURCE_STAMP)) == source:
        return dst
    parent = osp.dirname(osp.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix='.tmp-', dir=parent)
    skip = [name for name in os.listdir(src) if name not in check
            and osp.isdir(osp.join(src, name))
            and name in ('raw', 'processed')]
    try:
        tmp = osp.join(tmp_root, osp.basename(dst))
        shutil.copytree(src, tmp, copy_function=shutil.copyfile,
                        ignore=lambda folder, names: [
                            n for n in names
                            if folder == src and n in skip])
        for dirpath, dirnames, filenames in os.walk(tmp):  # Owner-writable.
            for name in dirnames + filenames:
                path = osp.join(dirpath, name)
                os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR)
        if prepare is not None:
            prepare(tmp_root)
        _write_stamp(osp.join(tmp, SOURCE_STAMP), source)
        if osp.isdir(dst):
            shutil.rmtree(dst, ignore_errors=True)
        try:
            os.replace(tmp, dst)
        except OSError:  # Another run moved its copy into place first.
            pass
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    return dst


@contextlib.contextmanager
def _download_timeout(seconds: float = DOWNLOAD_TIMEOUT) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _missing(paths: Sequence[str]) -> List[str]:
    return [p for p in paths if not osp.exists(p)]

r"""Files the harness writes: one atomic writer, a writability probe, file
locks and a rescue for results that cannot be written where asked.

* :func:`atomic_write` writes to a temporary file in the target folder,
  flushes it to disk and moves it into place with :func:`os.replace`, so a
  kill at any moment leaves either the old or the new file, never a partial
  one. The file gets the mode an ordinary :func:`open` would give it
  (:obj:`0o666` less the umask), not :func:`tempfile.mkstemp`'s
  :obj:`0o600`.
* :func:`check_writable` probes a target before a long run, so that an
  unwritable path is reported before training instead of after it.
* :func:`exclusive_lock` (blocking: waits its turn) and :func:`try_lock`
  (non-blocking: refuses a second live writer) use :func:`fcntl.flock` on
  a lock file that is kept, never deleted (deleting it would let two
  processes lock two different files of the same name).
  :func:`lock_outputs` takes :func:`try_lock` for each output file of a
  run, on a lock file named after its absolute path in a folder of the
  user's in the temporary folder (nothing is created next to the outputs).
* :func:`json_bytes` writes standard JSON only: non-finite floats
  (:obj:`nan`, :obj:`inf`) become :obj:`null`, never :obj:`NaN` or
  :obj:`Infinity`, which strict parsers reject.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import os.path as osp
import socket
import tempfile
import time
from typing import (
    IO,
    Any,
    Callable,
    Dict,
    Iterator,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
)


class OutputError(OSError):
    r"""Raised when an output file cannot be written."""


class ResultRescuedError(OutputError):
    r"""Raised when a finished run's output could not be written where
    asked; the message names where it was saved instead."""


class LockedError(RuntimeError):
    r"""Raised when a file is locked by another live process."""


def umask() -> int:
    r"""Returns the process umask (without changing it for good)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_prefix() -> str:
    # '~' cannot occur in a host name: host "vm" never reads the files of
    # host "vm-4242" as its own.
    return f'.tmp-{socket.gethostname()}~'


def _temp_prefix() -> str:
    return f'{_host_prefix()}{os.getpid()}-'


#: Seconds since its last write after which the temporary file of a dead
#: writer is removed (a live writer in another pid namespace of the same
#: host, *e.g.* a container, is still writing to its file).
ORPHAN_AGE = 600.0


#: Folders this process has cleaned of orphans (once each: a comparison
#: writes thousands of records into one folder).
_cleaned: Set[str] = set()


def _remove_orphans(folder: str) -> None:
    r"""Removes, on this process's first write to :obj:`folder`, the
    temporary files that writers on this host left there when they were
    killed (SIGKILL, OOM: no cleanup ran): their name holds the host and
    the pid, that pid is gone, and the file has not been written for
    :data:`ORPHAN_AGE` seconds. Files of other hosts (a shared cluster
    folder) are left alone."""
    if folder in _cleaned:
        return
    _cleaned.add(folder)
    prefix = _host_prefix()
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    now = time.time()
    for name in names:
        pid = name[len(prefix):].split('-', 1)[0]
        if not (pid.isascii() and pid.isdigit() and 0 < len(pid) <= 9
                and int(pid) > 0) or int(pid) == os.getpid():
            continue  # Not a name atomic_write gives, or ours.
        try:
            os.kill(int(pid), 0)
            continue  # Alive (or another user's): maybe still writing.
        except ProcessLookupError:
            pass
        except (OSError, OverflowError, ValueError):
            continue
        path = osp.join(folder, name)
        with contextlib.suppress(OSError):
            if now - os.stat(path).st_mtime > ORPHAN_AGE:
                os.remove(path)


def atomic_write(path: str, write: Callable[[IO[bytes]], Any]) -> None:
    r"""Writes :obj:`path` atomically: :obj:`write` fills a temporary file
    in the same folder (named after this host and process), which is
    flushed with :func:`os.fsync`, given the mode :obj:`0o666 & ~umask`
    and renamed over :obj:`path`. Temporary files of killed writers on
    this host are removed first.

    Args:
        path (str): The target file; missing folders are created.
        write (callable): Called with the binary file object.
    """
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    _remove_orphans(folder)
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(), dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def json_safe(obj: Any) -> Any:
    r"""Returns :obj:`obj` (dicts, lists and tuples of plain values) with
    every non-finite float replaced by :obj:`None`."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def json_bytes(obj: Any, indent: int = 2, sort_keys: bool = False,
               newline: bool = True) -> bytes:
    r"""Returns :obj:`obj` as standard JSON text (non-finite floats as
    :obj:`null`, see :func:`json_safe`; with a final newline unless
    :obj:`newline` is :obj:`False`)."""
    return (json.dumps(json_safe(obj), indent=indent, sort_keys=sort_keys,
                       allow_nan=False)
            + ('\n' if newline else '')).encode()


def write_json(path: str, obj: Any, indent: int = 2,
               sort_keys: bool = False, newline: bool = True) -> None:
    r"""Writes :obj:`obj` as JSON (see :func:`json_bytes`) with
    :func:`atomic_write`."""
    data = json_bytes(obj, indent, sort_keys, newline)
    atomic_write(path, lambda f: f.write(data))


def check_writable(path: str, what: str = 'output') -> None:
    r"""Checks that :obj:`path` can be written, by creating (and removing)
    a file in its folder, or in the first existing folder above it.

    Raises:
        OutputError: Naming :obj:`what` and the reason.
    """
    path = osp.abspath(osp.expanduser(path))
    if osp.isdir(path):
        raise OutputError(f"{what} '{path}' is a folder (expected a file "
                          f"name)")
    if osp.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{what} '{path}' exists and is not writable")
    folder = osp.dirname(path)
    while not osp.isdir(folder):
        if osp.exists(folder):
            raise OutputError(f"{what} '{path}': '{folder}' is not a "
                              f"folder")
        folder = osp.dirname(folder)
    try:
        fd, probe = tempfile.mkstemp(prefix='.probe-', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise OutputError(f"{what} '{path}' is not writable: cannot create "
                          f"files in '{folder}' ({e.strerror or e})") \
            from None


def rescue(data: bytes, suffix: str) -> str:
    r"""Writes :obj:`data` to a new file in the temporary folder and
    returns its path: the last resort when the requested path failed."""
    fd, path = tempfile.mkstemp(prefix='sap-graph-', suffix=suffix)
    os.fchmod(fd, 0o666 & ~umask())
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    return path


def _open_lock(path: str) -> int:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    return fd


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    r"""Holds an exclusive :func:`fcntl.flock` on :obj:`path` (created if
    missing), waiting for other holders."""
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # Releases the lock.


def try_lock(path: str, what: str) -> int:
    r"""Takes an exclusive lock on :obj:`path` without waiting and returns
    its file descriptor (close it to release the lock).

    Raises:
        LockedError: If another process holds the lock.
    """
    fd = _open_lock(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockedError(f"{what} is in use by another running process "
                          f"(lock '{path}')") from None
    return fd


def release(*fds: Optional[int]) -> None:
    r"""Releases locks taken with :func:`try_lock`."""
    for fd in fds:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def real_path(path: str) -> str:
    r"""The absolute, symlink-free path of :obj:`path` (:obj:`~`
    expanded): one for every spelling of a file."""
    return osp.realpath(osp.expanduser(path))


class DistinctFiles:
    r"""The files of one command by option name, each claimed once
    whatever its spelling (:func:`real_path`): an output that is also an
    input, or two outputs on one file, would silently replace one."""

    def __init__(self) -> None:
        self._names: Dict[str, str] = {}

    def claim(self, name: str, path: str) -> Optional[str]:
        r"""Records :obj:`path` for option :obj:`name`; returns the option
        that claimed the same file before (else :obj:`None`)."""
        other = self._names.setdefault(real_path(path), name)
        return None if other == name else other


def output_lock(path: str) -> str:
    r"""Returns the lock file of the output file :obj:`path`: named after
    the hash of its absolute, symlink-free path, in
    :obj:`<tmp>/sap-graph-locks-<uid>`, so that every spelling of one
    output maps to one lock and no file is created next to it."""
    real = real_path(path)
    digest = hashlib.sha256(real.encode()).hexdigest()[:32]
    folder = osp.join(tempfile.gettempdir(), f'sap-graph-locks-{os.getuid()}')
    return osp.join(folder, f'{digest}.lock')


def lock_outputs(outputs: Sequence[Tuple[Optional[str], str]]) -> List[int]:
    r"""Takes :func:`try_lock` on the :func:`output_lock` of every output
    file, so that a second live run writing the same file fails before it
    starts instead of silently replacing the first one's result. Returns
    the file descriptors (release them with :func:`release`).

    Args:
        outputs (list): :obj:`(path, what)` pairs; a file named twice is
            locked once, an empty path (:obj:`None`) not at all.

    Raises:
        LockedError: If another process holds one of the locks (none is
            kept then).
    """
    fds: List[int] = []
    seen = set()
    try:
        for path, what in outputs:
            if not path or output_lock(path) in seen:
                continue
            seen.add(output_lock(path))
            fds.append(try_lock(output_lock(path), f"{what} '{path}'"))
    except BaseException:
        release(*fds)
        raise
    return fds


__all__ = ['DistinctFiles', 'LockedError', 'OutputError',
           'ResultRescuedError', 'atomic_write', 'check_writable',
           'exclusive_lock', 'json_safe', 'json_bytes', 'lock_outputs',
           'output_lock', 'real_path', 'release', 'rescue', 'try_lock',
           'umask', 'write_json']

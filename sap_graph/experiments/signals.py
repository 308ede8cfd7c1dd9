r"""Signal handlers for the duration of a block (:func:`handling`), as
the commands use them: SIGTERM (a scheduler's preemption) taken as Ctrl-C
(:func:`sigterm_as_interrupt`), and worker processes started with SIGINT
held back (:func:`holding_back`) so that the parent alone answers Ctrl-C;
worker processes that end with their parent (:func:`exit_with_parent`).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from typing import Any, Iterator, NoReturn

#: :obj:`prctl` option: the signal sent to this process when its parent
#: dies (Linux).
PR_SET_PDEATHSIG = 1


def raise_interrupt(signum: int, frame: Any) -> NoReturn:
    r"""A handler that raises :class:`KeyboardInterrupt`."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def handling(signum: int, handler: Any) -> Iterator[None]:
    r"""Sets :obj:`handler` for :obj:`signum` inside the block and
    restores the previous one after it; outside the main thread (where
    Python cannot set handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signum, handler)
    try:
        yield
    finally:
        signal.signal(signum, previous)


@contextlib.contextmanager
def holding_back(signum: int) -> Iterator[None]:
    r"""Blocks :obj:`signum` in this thread while the block runs: the
    threads and processes started inside inherit it blocked, so that they
    never receive it (worker processes: the parent alone answers Ctrl-C).
    A signal that arrives meanwhile is not lost: Python's handler runs in
    the main thread when the block ends, or at once where another thread
    of the process, which does not block it, receives it. Where signals
    cannot be blocked (Windows), the signal is ignored inside the block
    instead (then one arriving meanwhile is lost)."""
    if not hasattr(signal, 'pthread_sigmask'):
        with handling(signum, signal.SIG_IGN):
            yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signum})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def sigterm_as_interrupt() -> Any:
    r"""Turns SIGTERM into :class:`KeyboardInterrupt` in the main thread,
    so a killed run exits through the same path as Ctrl-C."""
    return handling(signal.SIGTERM, raise_interrupt)


def _parent_death_signal(signum: int) -> bool:
    r"""Asks Linux to send :obj:`signum` to this process when its parent
    dies; :obj:`False` where that is not available."""
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6',
                           use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _orphaned(parent: int) -> bool:
    return os.getppid() != parent


def exit_with_parent(parent: int, interval: float = 0.5) -> None:
    r"""Makes this process (a worker) exit when the process :obj:`parent`
    dies, even by SIGKILL, which leaves it no chance to stop its workers:
    on Linux the kernel kills it at once (:obj:`PR_SET_PDEATHSIG`), and
    everywhere a daemon thread checks every :obj:`interval` seconds whether
    it still has that parent and ends the process (:func:`os._exit`)
    otherwise. Its locks are released with it; its files are written
    atomically, so none is left half-written.

    Args:
        parent (int): The process id of the parent, read by the parent
            (:func:`os.getpid`), so that a parent that died before this
            call is noticed too.
        interval (float, optional): Seconds between checks.
            (default: :obj:`0.5`)
    """
    _parent_death_signal(signal.SIGKILL)
    if _orphaned(parent):  # Died before the signal was asked for.
        os._exit(1)

    def watch() -> None:
        while not _orphaned(parent):
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name='exit-with-parent',
                     daemon=True).start()


__all__ = ['exit_with_parent', 'handling', 'holding_back', 'raise_interrupt',
           'sigterm_as_interrupt']

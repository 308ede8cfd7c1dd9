r"""Signal handlers for the duration of a block (:func:`handling`), as
the commands use them: SIGTERM (a scheduler's preemption) taken as Ctrl-C
(:func:`sigterm_as_interrupt`), and worker processes started with SIGINT
ignored so that the parent alone answers Ctrl-C.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, NoReturn


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


def sigterm_as_interrupt() -> Any:
    r"""Turns SIGTERM into :class:`KeyboardInterrupt` in the main thread,
    so a killed run exits through the same path as Ctrl-C."""
    return handling(signal.SIGTERM, raise_interrupt)


__all__ = ['handling', 'raise_interrupt', 'sigterm_as_interrupt']

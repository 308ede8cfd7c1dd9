"""Signal handlers for a block (``sap_graph.experiments.signals``): set
inside, restored after (also after an error), untouched off the main
thread; SIGTERM inside ``sigterm_as_interrupt`` is a KeyboardInterrupt."""
import os
import signal
import threading

import pytest

from sap_graph.experiments.signals import handling, sigterm_as_interrupt


def test_handler_is_set_inside_and_restored_after():
    before = signal.getsignal(signal.SIGUSR1)
    seen = []
    with pytest.raises(RuntimeError):
        with handling(signal.SIGUSR1, lambda s, f: seen.append(s)):
            os.kill(os.getpid(), signal.SIGUSR1)
            raise RuntimeError('the block fails')
    assert seen == [signal.SIGUSR1]
    assert signal.getsignal(signal.SIGUSR1) is before


def test_sigterm_is_a_keyboard_interrupt_in_the_block():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_nothing_changes():
    before = signal.getsignal(signal.SIGINT)
    done = []

    def worker():
        with handling(signal.SIGINT, signal.SIG_IGN):  # Would raise.
            done.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert done == [before]

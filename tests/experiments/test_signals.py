"""Signal handlers for a block (``sap_graph.experiments.signals``): set
inside, restored after (also after an error), untouched off the main
thread; SIGTERM inside ``sigterm_as_interrupt`` is a KeyboardInterrupt;
a worker under ``exit_with_parent`` ends when its parent is killed; a
signal held back by ``holding_back`` arrives after the block."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from sap_graph.experiments.signals import (
    handling,
    holding_back,
    sigterm_as_interrupt,
)
from tests.helpers import alive


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


#: A parent that starts a worker calling exit_with_parent (with or without
#: the kernel's parent-death signal), prints the worker's pid and waits.
PARENT = textwrap.dedent("""
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, '-c', sys.argv[1],
                              str(os.getpid()), sys.argv[2]],
                             stdout=subprocess.PIPE, text=True)
    print(child.stdout.readline().strip(), flush=True)
    child.wait()
""")
WORKER = textwrap.dedent("""
    import os, sys, time
    import sap_graph.experiments.signals as signals
    if sys.argv[2] == 'poll':  # The portable check alone.
        signals._parent_death_signal = lambda signum: False
    signals.exit_with_parent(int(sys.argv[1]), interval=0.1)
    print(os.getpid(), flush=True)
    time.sleep(120)  # A long run.
""")


@pytest.mark.skipif(not os.path.isdir('/proc'), reason='needs /proc')
@pytest.mark.parametrize('how', ['prctl', 'poll'])
def test_worker_exits_when_its_parent_is_killed(how):
    parent = subprocess.Popen([sys.executable, '-c', PARENT, WORKER, how],
                              stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        time.sleep(0.3)
        assert alive(worker)  # Not while the parent lives.
        parent.kill()  # SIGKILL: no chance to stop its workers.
        parent.wait()
        deadline = time.monotonic() + 10
        while alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(worker)
    finally:
        if alive(worker):
            os.kill(worker, signal.SIGKILL)


def test_a_signal_held_back_is_delivered_after_the_block():
    """Ctrl-C held back by :func:`holding_back` is not lost: it raises when
    the block ends; a process started inside has SIGINT blocked (it never
    gets the Ctrl-C of its process group)."""
    if not hasattr(signal, 'pthread_sigmask'):
        pytest.skip('signals cannot be blocked here (Windows)')
    child = None
    reached = []
    # Python's Ctrl-C handler, also where the tests run with SIGINT
    # ignored (a background job of a non-interactive shell).
    with pytest.raises(KeyboardInterrupt), handling(
            signal.SIGINT, signal.default_int_handler):
        with holding_back(signal.SIGINT):
            # To this thread (a signal to the process may go to another
            # thread of pytest's, which does not block it).
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            child = subprocess.Popen(
                [sys.executable, '-c', 'import time; time.sleep(30)'])
            reached.append('end of block')
        reached.append('after the block')  # Not reached: raised before.
    assert reached == ['end of block']
    try:
        if not os.path.exists(f'/proc/{child.pid}/status'):
            return  # No /proc (not Linux): the mask cannot be read.
        with open(f'/proc/{child.pid}/status') as f:
            blocked = next(int(line.split()[1], 16) for line in f
                           if line.startswith('SigBlk:'))
        assert blocked >> (signal.SIGINT - 1) & 1
    finally:
        child.kill()
        child.wait()
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])

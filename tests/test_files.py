"""Output files: writability probes, umask modes, locks, standard JSON,
atomic writes."""
import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from sap_graph.experiments.files import (
    ORPHAN_AGE,
    LockedError,
    OutputError,
    atomic_write,
    check_writable,
    exclusive_lock,
    json_bytes,
    lock_outputs,
    output_lock,
    release,
    try_lock,
    write_json,
)


def test_check_writable(tmp_path):
    check_writable(str(tmp_path / 'new' / 'deeper' / 'r.json'))
    assert not (tmp_path / 'new').exists()  # A probe creates nothing.
    with pytest.raises(OutputError, match='is a folder'):
        check_writable(str(tmp_path))
    with pytest.raises(OutputError, match='not writable'):
        check_writable('/proc/r.json')
    (tmp_path / 'f').write_text('')
    with pytest.raises(OutputError, match='is not a folder'):
        check_writable(str(tmp_path / 'f' / 'r.json'))


def test_write_json_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_json(str(tmp_path / 'r.json'), {'a': 1}, indent=1,
                   sort_keys=True, newline=False)
    finally:
        os.umask(old)
    assert (tmp_path / 'r.json').read_text() == '{\n "a": 1\n}'
    assert os.stat(tmp_path / 'r.json').st_mode & 0o777 == 0o640


def test_locks(tmp_path):
    path = str(tmp_path / 'x.lock')
    fd = try_lock(path, 'x')
    with pytest.raises(LockedError, match='in use'):
        try_lock(path, 'x')
    release(fd)
    release(try_lock(path, 'x'))
    with exclusive_lock(path):
        with pytest.raises(LockedError):
            try_lock(path, 'x')


def test_json_is_standard(tmp_path):
    obj = {'a': math.nan, 'b': [1.5, math.inf, (-math.inf, 2)],
           'c': {'d': np.float64('nan'), 'e': np.float64(0.25)}, 'f': 3}

    def strict(name):
        raise ValueError(f'non-standard JSON constant {name}')

    expected = {'a': None, 'b': [1.5, None, [None, 2]],
                'c': {'d': None, 'e': 0.25}, 'f': 3}
    assert json.loads(json_bytes(obj), parse_constant=strict) == expected
    write_json(str(tmp_path / 'r.json'), obj)
    text = (tmp_path / 'r.json').read_text()
    assert json.loads(text, parse_constant=strict) == expected


def test_output_locks(tmp_path):
    out = str(tmp_path / 'r.json')
    fds = lock_outputs([(out, 'result file'), (None, 'checkpoint'),
                        (os.path.join(tmp_path, '.', 'r.json'), 'result')])
    assert len(fds) == 1  # The same file, once; no path, no lock.
    try:
        with pytest.raises(LockedError, match=f"result file '{out}' is in "
                           'use by another running process'):
            lock_outputs([(str(tmp_path / 'm.pt'), 'checkpoint'),
                          (out, 'result file')])
        # The first lock of the failed call was given back.
        release(*lock_outputs([(str(tmp_path / 'm.pt'), 'checkpoint')]))
    finally:
        release(*fds)
    release(*lock_outputs([(out, 'result file')]))
    assert not list(tmp_path.iterdir())  # Nothing next to the outputs.
    assert output_lock(out) == output_lock(os.path.join(tmp_path, 'x', '..',
                                                        'r.json'))
    assert output_lock(out) != output_lock(str(tmp_path / 'm.pt'))


def test_atomic_write_removes_temp_files_of_killed_writers(tmp_path):
    """A writer killed mid-write (SIGKILL: no cleanup) leaves its temporary
    file; the next write to the folder removes it once it is old, but not
    those of live writers, of this process, of other hosts (a shared
    folder), or a recent one (a live writer in another pid namespace)."""
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, '-c', 'pass'])
    dead.wait()
    live = subprocess.Popen([sys.executable, '-c',
                             'import time; time.sleep(60)'])
    try:
        names = {'dead': f'.tmp-{host}~{dead.pid}-abc',
                 'live': f'.tmp-{host}~{live.pid}-abc',
                 'own': f'.tmp-{host}~{os.getpid()}-abc',
                 'other host': f'.tmp-{host}x~{dead.pid}-abc',
                 'dashed host': f'.tmp-{host}-{dead.pid}~99-abc',
                 'recent': f'.tmp-{host}~{dead.pid}-def',
                 'huge pid': f'.tmp-{host}~99999999999999999999-x',
                 'odd pid': f'.tmp-{host}~\u00b2-x',
                 'pid 0': f'.tmp-{host}~0-x'}
        old = time.time() - 2 * ORPHAN_AGE
        for key, name in names.items():
            (tmp_path / name).write_bytes(b'partial')
            if key != 'recent':
                os.utime(tmp_path / name, (old, old))
        atomic_write(str(tmp_path / 'r.json'), lambda f: f.write(b'{}'))
        left = {p.name for p in tmp_path.iterdir()}
        assert left == {'r.json', *names.values()} - {names['dead']}
    finally:
        live.kill()
        live.wait()

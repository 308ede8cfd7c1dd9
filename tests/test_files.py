"""Output files: writability probes, umask modes, locks."""
import os

import pytest

from sap_graph.experiments.files import (
    LockedError,
    OutputError,
    check_writable,
    exclusive_lock,
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

"""Hostile input to the layer (issue 18, layer side): the kernel build
cache, int32 batch vectors, an :obj:`index` that disagrees with
:obj:`ptr`, multi-head SAP inside PyG's convolutions and mixed precision.
Values are checked against the float64 reference of
:mod:`tests.reference`."""
import os.path as osp
import threading

import pytest
import torch
import torch.utils.cpp_extension as cpp_extension

from sap_graph import _native

# The fused kernels' build cache ###########################################


def test_extension_name_follows_source_install_and_torch(tmp_path,
                                                         monkeypatch):
    flags = list(_native._FLAGS)
    name = _native._extension_name(flags)
    assert name == _native._extension_name(flags)  # Deterministic.
    assert name.startswith('sap_graph_native_')
    source = open(_native._SOURCE, 'rb').read()

    # The same kernels in another installation get their own build.
    other = tmp_path / 'sap_pool.cpp'
    other.write_bytes(source)
    monkeypatch.setattr(_native, '_SOURCE', str(other))
    other_install = _native._extension_name(flags)
    assert other_install != name
    # Changed kernels (an upgrade in place) get a new build.
    other.write_bytes(source + b'\n// changed\n')
    assert _native._extension_name(flags) not in (name, other_install)
    other.write_bytes(source)
    assert _native._extension_name(flags) == other_install
    # Other flags or another torch never load this build either.
    assert _native._extension_name(flags + ['-g']) != other_install
    monkeypatch.setattr(torch, '__version__', '0.0.0+other')
    assert _native._extension_name(flags) != other_install


@pytest.fixture()
def fake_load(tmp_path, monkeypatch):
    """A stand-in for torch's JIT build into ``$TORCH_EXTENSIONS_DIR`` (a
    temporary folder): records the names it builds and writes the library
    the way the real build does."""
    monkeypatch.setenv('TORCH_EXTENSIONS_DIR', str(tmp_path))
    built = []

    def load(name, sources, build_directory, **kwargs):
        # torch's baton, which it would wait on forever, is gone.
        assert not osp.exists(osp.join(build_directory, 'lock'))
        assert sources == [_native._SOURCE]
        assert build_directory == str(tmp_path / name)
        built.append(name)
        open(osp.join(build_directory, f'{name}.so'), 'w').close()
        return f'module {name}'

    monkeypatch.setattr(cpp_extension, 'load', load)
    return built


def test_build_announces_itself_once(fake_load, tmp_path, capfd):
    name = _native._extension_name(list(_native._FLAGS))
    # A build killed earlier left torch's baton file behind.
    (tmp_path / name).mkdir()
    (tmp_path / name / 'lock').write_bytes(b'')
    assert _native._build() == f'module {name}'
    assert fake_load == [name]
    err = capfd.readouterr().err
    assert err.count('sap_graph: building fused CPU kernels') == 1
    assert err.strip().count('\n') == 0  # One line.
    # Finding the finished build (another process built it) is quiet.
    assert _native._build() == f'module {name}'
    assert 'building' not in capfd.readouterr().err


def test_concurrent_builds_wait_for_the_lock(fake_load, tmp_path, capfd):
    name = _native._extension_name(list(_native._FLAGS))
    lock = tmp_path / name / 'sap_graph_build.lock'
    lock.parent.mkdir()
    result = []
    with _native._file_lock(str(lock)):  # Another process is building.
        worker = threading.Thread(
            target=lambda: result.append(_native._build()))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and fake_load == []  # It waits.
        (lock.parent / f'{name}.so').write_bytes(b'')  # Build finished.
    worker.join(30)
    assert not worker.is_alive()
    # It then loads the finished build (torch's load finds it up to date)
    # instead of announcing and starting its own.
    assert result == [f'module {name}'] and fake_load == [name]
    assert 'building' not in capfd.readouterr().err


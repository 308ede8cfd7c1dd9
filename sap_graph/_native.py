"""Optional fused C++ kernels for CPU, compiled on first use.

The kernels in ``csrc/sap_pool.cpp`` are built with
:func:`torch.utils.cpp_extension.load` the first time a CPU batch reaches
:class:`~sap_graph.SAPAggregation` (about a minute once; the build is cached
under ``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``).
A build needs a C++ compiler and ``ninja``; without them, or with
``SAP_GRAPH_NATIVE=0``, every batch takes the pure-PyTorch path of
:mod:`sap_graph._ops`, which computes the same function.

``SAP_GRAPH_NATIVE``: ``auto`` (default: build, fall back with a warning),
``0`` (never build), ``1`` (build; raise if the build fails).
"""
from __future__ import annotations

import hashlib
import os
import os.path as osp
import platform
import shutil
import threading
import warnings
from types import ModuleType
from typing import Optional

_SOURCE = osp.join(osp.dirname(osp.abspath(__file__)), 'csrc', 'sap_pool.cpp')
_lock = threading.Lock()
_module: Optional[ModuleType] = None
_failed: Optional[str] = None


def _mode() -> str:
    mode = os.environ.get('SAP_GRAPH_NATIVE', 'auto').strip().lower()
    if mode in ('0', 'off', 'false', 'no'):
        return 'off'
    if mode in ('1', 'on', 'true', 'yes', 'require'):
        return 'require'
    return 'auto'


def _build() -> ModuleType:
    from torch.utils.cpp_extension import load

    if shutil.which('ninja') is None:
        try:  # The `ninja` wheel puts its binary next to the interpreter.
            import ninja  # noqa: F401
            os.environ['PATH'] = (ninja.BIN_DIR + os.pathsep +
                                  os.environ.get('PATH', ''))
        except ImportError:
            pass
    flags = ['-O3', '-fopenmp', '-march=native']
    # -march=native code must not run on another CPU that shares the build
    # cache (a home directory on a cluster): one build per CPU model.
    return load(name=f'sap_graph_native_{_cpu_tag(flags)}', sources=[_SOURCE],
                extra_cflags=flags, extra_ldflags=['-fopenmp'],
                verbose=False)


def _cpu_tag(flags: list) -> str:
    cpu = platform.machine() + platform.processor()
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith(('model name', 'flags')):
                    cpu += line
                if line.strip() == '':  # The first processor is enough.
                    break
    except OSError:
        pass
    return hashlib.sha1((cpu + ' '.join(flags)).encode()).hexdigest()[:10]


def native() -> Optional[ModuleType]:
    """The compiled kernels, or :obj:`None` when they are switched off or
    cannot be built here."""
    global _module, _failed
    mode = _mode()
    if mode == 'off':
        return None
    if _module is not None:
        return _module
    if _failed is not None:
        if mode == 'require':
            raise RuntimeError(f'sap_graph native kernels: {_failed}')
        return None
    with _lock:
        if _module is None and _failed is None:
            try:
                _module = _build()
            except Exception as exc:  # Compiler, ninja or headers missing.
                _failed = f'{type(exc).__name__}: {exc}'.splitlines()[0]
                if mode == 'require':
                    raise RuntimeError(
                        f'sap_graph native kernels: {_failed}') from exc
                warnings.warn(
                    f'sap_graph: fused CPU kernels unavailable ({_failed}); '
                    f'using the pure-PyTorch path (same results, slower). '
                    f'Set SAP_GRAPH_NATIVE=0 to silence this.',
                    RuntimeWarning, stacklevel=3)
    return _module


def available() -> bool:
    """Whether the fused kernels are (or can be) loaded."""
    return native() is not None


def status() -> str:
    """Which SAP core this process has used on CPU so far, without
    building anything: ``'native'``, ``'torch (SAP_GRAPH_NATIVE=0)'``,
    ``'torch (build failed)'`` or ``'not loaded'``."""
    if _mode() == 'off':
        return 'torch (SAP_GRAPH_NATIVE=0)'
    if _module is not None:
        return 'native'
    if _failed is not None:
        return 'torch (build failed)'
    return 'not loaded'

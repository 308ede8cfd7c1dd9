r"""The environment switches of the SAP core, read in one place.

* ``SAP_GRAPH_NATIVE``: the fused C++ CPU kernels. ``auto`` (default:
  build on first use, fall back to PyTorch with a warning), ``0`` (never
  build), ``1`` (build; raise if the build fails).
* ``SAP_GRAPH_TRITON``: the fused Triton kernels for CUDA tensors.
  ``auto`` (default: on the GPU architecture and Triton release with
  which ``benchmarks/gpu_check.sh`` has passed, compute capability 9.0,
  *i.e.* H100/H200, and Triton 3.6 or newer; elsewhere the PyTorch path),
  ``0`` (never) or ``1`` (every CUDA GPU).

Both are read on every call (no caching), so tests and users can change
them at run time.
"""
from __future__ import annotations

import os
from typing import Dict

_OFF = ('0', 'off', 'false', 'no')
_ON = ('1', 'on', 'true', 'yes', 'require')

#: Switch name -> (environment variable, default).
SWITCHES = {'native': ('SAP_GRAPH_NATIVE', 'auto'),
            'triton': ('SAP_GRAPH_TRITON', 'auto')}


def switch(name: str) -> str:
    r"""The state of switch :obj:`name` (``'native'`` or ``'triton'``):
    ``'off'``, ``'on'`` or ``'auto'``. An unrecognised value means the
    default."""
    variable, default = SWITCHES[name]
    value = os.environ.get(variable, default).strip().lower()
    if value in _OFF:
        return 'off'
    if value in _ON:
        return 'on'
    return default


def switches() -> Dict[str, str]:
    r"""All switches by name, *e.g.* ``{'native': 'auto', 'triton':
    'auto'}``."""
    return {name: switch(name) for name in SWITCHES}

r"""The environment switches of the SAP core, read in one place.

* ``SAP_GRAPH_NATIVE``: the fused C++ CPU kernels. ``auto`` (default:
  build on first use, fall back to PyTorch with a warning), ``0`` (never
  build), ``1`` (build; raise if the build fails).
* ``SAP_GRAPH_TRITON``: the fused Triton kernels for CUDA tensors. ``0``
  (default: CUDA tensors take the PyTorch path) or ``1`` (sorted CUDA
  batches take the Triton kernels). Off by default until a GPU has run
  ``benchmarks/gpu_check.sh``: the kernels have only run in Triton's
  interpreter and compiled to PTX so far.

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
            'triton': ('SAP_GRAPH_TRITON', 'off')}


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
    'off'}``."""
    return {name: switch(name) for name in SWITCHES}

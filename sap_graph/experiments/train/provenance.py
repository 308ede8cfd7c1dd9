r"""What computed a result: versions, the source digest and the
device.
"""
from __future__ import annotations

import hashlib
import os
import platform
from typing import (
    Any,
    Dict,
    Iterable,
    Optional,
)

import numpy as np
import torch
import torch_geometric

import sap_graph


def source_digest() -> str:
    r"""SHA-1 (12 hex digits) of the package's own source files
    (:obj:`sap_graph/**/*.py` and the C++ kernels): two results with the
    same digest were computed by the same code."""
    root = os.path.dirname(os.path.abspath(sap_graph.__file__))
    digest = hashlib.sha1()
    for folder, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith(('.py', '.cpp')):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode())
                with open(path, 'rb') as f:
                    digest.update(f.read())
    return digest.hexdigest()[:12]


def versions(paths: Optional[Iterable[str]] = None
             ) -> Dict[str, Optional[str]]:
    r"""Returns the versions of Python and the main packages, the digest of
    this package's sources, which SAP core ran on CPU
    (:func:`sap_graph.ops.native.status`; with the :obj:`paths` of the
    runs, ``'native'`` where they name it and never where they do not),
    the paths of the SAP core
    (:obj:`paths`: those of one run, recorded by
    :func:`sap_graph.ops.dispatch.recording_paths`; by default those this
    process has run) and the switches that chose them
    (:func:`sap_graph.ops.env.switches`). No path (:obj:`None`): no SAP
    layer ran."""
    from sap_graph.ops import dispatch, env
    from sap_graph.ops import native as _native
    core = _native.status()
    if paths is not None:  # The runs' own record (also when resumed).
        if 'native' in paths:
            core = 'native'
        elif core == 'native':  # Loaded here, not used by these runs.
            core = 'torch'
    out: Dict[str, Optional[str]] = {
        'python': platform.python_version(),
        'torch': torch.__version__,
        'torch_geometric': torch_geometric.__version__,
        'sap_graph': sap_graph.__version__,
        'sap_graph_source': source_digest(),
        'sap_graph_cpu_core': core,
        'sap_graph_paths': ','.join(sorted(
            dispatch.paths_used() if paths is None else paths)) or None,
        'sap_graph_switches': ' '.join(
            f'{k}={v}' for k, v in env.switches().items()),
        'numpy': np.__version__,
    }
    try:
        import ogb
        out['ogb'] = ogb.__version__
    except ImportError:
        out['ogb'] = None
    return out


def device_info(device: torch.device) -> Dict[str, Any]:
    r"""Describes the device a run used."""
    info: Dict[str, Any] = {'type': device.type, 'name': str(device),
                            'torch_threads': torch.get_num_threads(),
                            'platform': platform.platform()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    else:
        info['cpu'] = platform.processor() or platform.machine()
    return info

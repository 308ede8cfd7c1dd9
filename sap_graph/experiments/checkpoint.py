r"""Safe, atomic files for models and training state.

* :func:`atomic_save` serialises with :func:`torch.save` in memory and
  writes through :func:`sap_graph.experiments.files.atomic_write`: a kill
  or a full disk at any moment leaves either the old or the new file,
  never a partial one, and a failed write is one
  :class:`~sap_graph.experiments.files.OutputError`.
* :func:`safe_load` reads with :obj:`torch.load(..., weights_only=True)`
  only: a file holding anything but tensors and plain containers (for
  example a pickle whose :obj:`__reduce__` would run code) is refused, and
  a truncated or foreign file raises a one-line :class:`CheckpointError`.
* :func:`get_rng_state` and :func:`set_rng_state` capture the states of
  :mod:`random`, :mod:`numpy`, :mod:`torch` (CPU and CUDA) and of extra
  :class:`torch.Generator` objects as tensors and lists, so that they can
  be stored in such files.
"""
from __future__ import annotations

import io
import os.path as osp
import random
import re
import warnings
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from sap_graph.experiments.files import OutputError, atomic_write


class CheckpointError(ValueError):
    r"""Raised for a missing, truncated, tampered or foreign checkpoint or
    training state file."""


def atomic_save(obj: Any, path: str, what: str = 'file') -> None:
    r"""Saves :obj:`obj` with :func:`torch.save` atomically: it is
    serialised in memory first (an object that cannot be saved touches no
    file), then written to a temporary file that is moved into place (see
    :func:`sap_graph.experiments.files.atomic_write`), so a full disk or a
    kill leaves the previous file whole, and no partial one.

    Args:
        obj (Any): Tensors and plain Python containers.
        path (str): The target file; missing folders are created.
        what (str, optional): What the file is, for the error message.
            (default: :obj:`'file'`)

    Raises:
        OutputError: If it cannot be written (disk full, permissions),
            naming :obj:`what`, the file and the reason.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    existed = osp.isfile(path)
    try:
        atomic_write(path, lambda f: f.write(data))
    except OSError as e:
        if isinstance(e, OutputError):
            raise
        kept = ('its previous version is kept' if existed and
                osp.isfile(path) else 'nothing was written')
        raise OutputError(f"cannot write {what} '{path}' "
                          f"({e.strerror or e}); {kept}") from None


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines()]
    for line in lines:
        # torch's weights_only message names the offending global here.
        if 'unsupported' in line.lower():
            return line.rstrip('.')
    return next((line for line in lines if line), type(error).__name__)


def safe_load(path: str, what: str = 'checkpoint',
              map_location: Union[str, torch.device] = 'cpu') -> Any:
    r"""Loads a file written by :func:`atomic_save` with
    :obj:`torch.load(..., weights_only=True)`.

    Args:
        path (str): The file.
        what (str, optional): What the file is, for error messages.
            (default: :obj:`'checkpoint'`)
        map_location (str or torch.device, optional): Where to put the
            tensors. (default: :obj:`'cpu'`)

    Raises:
        CheckpointError: If the file is missing, truncated, not written by
            :func:`torch.save`, or holds objects other than tensors and
            plain containers (which are never executed).
    """
    if not osp.isfile(path):
        raise CheckpointError(f"{what} '{path}' not found")
    try:
        with warnings.catch_warnings():
            # A foreign pickle is refused below in one line; torch's
            # warning about its protocol would be a second.
            warnings.filterwarnings('ignore', message='Detected pickle')
            return torch.load(path, map_location=map_location,
                              weights_only=True)
    except Exception as e:  # Unpickling errors have no common base.
        text = str(e)
        found = re.search(r'GLOBAL (\S+)', text)
        if found is not None:
            raise CheckpointError(
                f"refused to load {what} '{path}': it references "
                f"'{found.group(1)}', but only tensors and plain containers "
                f"are allowed (it was not written by sap-graph, or was "
                f"tampered with); nothing in it was run") from None
        if 'weights_only' in text or 'Weights only' in text:
            raise CheckpointError(
                f"refused to load {what} '{path}': not a file of tensors "
                f"and plain containers ({_first_line(e)}); nothing in it "
                f"was run") from None
        raise CheckpointError(
            f"cannot read {what} '{path}': truncated or not a sap-graph "
            f"file ({type(e).__name__}: {_first_line(e)})") from None


def read_checkpoint(path: str,
                    map_location: Union[str, torch.device] = 'cpu'
                    ) -> Dict[str, Any]:
    r"""Reads a model checkpoint (written by
    :func:`~sap_graph.experiments.train.save_checkpoint`) with
    :func:`safe_load` and checks its layout: a dict with a
    :obj:`'state_dict'` and a :obj:`'config'` holding :obj:`'model'`.

    Raises:
        CheckpointError: If it cannot be read or has another layout.
    """
    state = safe_load(path, 'checkpoint', map_location)
    if (not isinstance(state, dict) or not isinstance(
            state.get('state_dict'), dict) or not isinstance(
                state.get('config'), dict) or 'model' not in state['config']):
        raise CheckpointError(f"'{path}' is not a sap-graph checkpoint "
                              f"(expected a dict with 'state_dict' and "
                              f"'config')")
    return state


# Random number generators #################################################


def get_rng_state(
    generators: Optional[Dict[str, torch.Generator]] = None,
) -> Dict[str, Any]:
    r"""Returns the states of :mod:`random`, :mod:`numpy`, :mod:`torch`
    (CPU and, when present, every CUDA device) and of :obj:`generators` as
    tensors, ints and lists (loadable with :obj:`weights_only=True`).

    Args:
        generators (dict, optional): Named :class:`torch.Generator` objects,
            *e.g.* a :class:`DataLoader`'s shuffle generator.
            (default: :obj:`None`)
    """
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: Dict[str, Any] = {
        'python': [version, list(internal), gauss],
        'numpy': [kind, torch.from_numpy(keys.astype(np.int64)), int(pos),
                  int(has_gauss), float(cached)],
        'torch': torch.get_rng_state(),
        'cuda': (torch.cuda.get_rng_state_all()
                 if torch.cuda.is_available() else []),
        'generators': {name: gen.get_state()
                       for name, gen in (generators or {}).items()},
    }
    return state


def set_rng_state(
    state: Dict[str, Any],
    generators: Optional[Dict[str, torch.Generator]] = None,
) -> None:
    r"""Restores the states returned by :func:`get_rng_state`.

    Args:
        state (dict): The states.
        generators (dict, optional): The :class:`torch.Generator` objects
            to restore, by the names used when saving.
            (default: :obj:`None`)
    """
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos,
                         has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
    for name, gen in (generators or {}).items():
        gen.set_state(state['generators'][name])


__all__ = ['CheckpointError', 'atomic_save', 'get_rng_state',
           'read_checkpoint',
           'safe_load', 'set_rng_state']

r"""The warning of :class:`~sap_graph.SAPAggregation` when, changing the
width of its input, it runs as the aggregation of a PyG convolution (whose
layers expect the input width back): found by reading the few innermost
frames of the Python stack, and reported at the user's line."""
from __future__ import annotations

import os
import sys
import warnings
from typing import Optional

import torch

#: How many frames above the layer's check :func:`conv_of` reads.
CONV_FRAMES = 16


def conv_of(aggr: torch.nn.Module) -> Optional[torch.nn.Module]:
    r"""The PyG :class:`~torch_geometric.nn.conv.MessagePassing` layer whose
    aggregation step is calling :obj:`aggr` right now, or :obj:`None`.

    Looks through the whole Python stack for a frame of a method named
    ``aggregate`` (where PyG's convolutions call their
    :obj:`aggr_module`) whose :obj:`self` is a convolution that holds
    :obj:`aggr` itself as (or inside, *e.g.* in a
    :class:`~torch_geometric.nn.aggr.MultiAggregation`) its
    :obj:`aggr_module`. A readout called from the :obj:`forward` of a
    model that happens to subclass :class:`MessagePassing` is not a
    convolution's aggregation, whatever the stack depth. Only the
    :data:`CONV_FRAMES` innermost frames are read: PyG's ``aggregate``
    calls the layer a few frames up (through ``Aggregation.__call__`` and
    :class:`~torch.nn.Module`'s call), so the cost per eager call does not
    grow with the caller's stack."""
    from torch_geometric.nn.conv import MessagePassing
    frame = sys._getframe(1)
    for _ in range(CONV_FRAMES):
        if frame is None:
            break
        if frame.f_code.co_name == 'aggregate':
            conv = frame.f_locals.get('self')
            held = getattr(conv, 'aggr_module', None)
            if isinstance(conv, MessagePassing) and isinstance(
                    held, torch.nn.Module) and any(
                        module is aggr for module in held.modules()):
                return conv
        frame = frame.f_back
    return None


def _library_folders() -> tuple:
    import torch_geometric

    import sap_graph
    return tuple(os.path.dirname(m.__file__) + os.sep
                 for m in (torch, torch_geometric, sap_graph))


def user_stacklevel() -> int:
    r"""The :obj:`stacklevel` of :func:`warnings.warn`, called from the
    function that calls this, that names the first caller outside torch,
    PyG (its generated :obj:`propagate` modules too) and this package:
    the user's line, however deep the convolution called the layer."""
    folders = _library_folders()
    frame, level = sys._getframe(2), 2
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(folders) or os.path.basename(
                name).startswith('torch_geometric.')):
            return level
        frame, level = frame.f_back, level + 1
    return 1


def check_conv_width(aggr: torch.nn.Module) -> bool:
    r"""Warns (and returns :obj:`True`) when :obj:`aggr`, whose output width
    differs from its input's, is running as the aggregation of a PyG
    convolution (see :func:`conv_of`). The convolutions size their layers
    for an aggregation that keeps :obj:`in_channels`
    (:class:`~torch_geometric.nn.aggr.MultiAggregation` too), so the
    forward fails there next with a bare shape error."""
    conv = conv_of(aggr)
    if conv is None:
        return False
    warnings.warn(
        f"{aggr} returns {aggr.output_channels} channels inside "
        f"'{type(conv).__name__}', whose layers expect an "
        f"aggregation that keeps in_channels={aggr.in_channels}: "
        f"use out_channels={aggr.in_channels} with concat=False, "
        f"or heads * out_channels == {aggr.in_channels} with "
        f"concat=True (a width-changing SAP belongs in the "
        f"readout)", UserWarning, stacklevel=user_stacklevel())
    return True

r"""The one dispatch of the SAP core: which implementation pools a batch.

:func:`pool` lays the batch out (:mod:`sap_graph.ops.layout`), decides the
path from the layout and the switches (:func:`choose_path` names it) and
hands the layout to that path's implementation (its ``run``), which pools
it, adds its residual pooling and returns the
:class:`~sap_graph.ops.layout.Core`. The paths, each in a sibling module:

* ``'native'`` (:class:`sap_graph.ops.native.NativePath`): fused C++
  kernels, for sorted CPU batches (``ptr``, a sorted ``index``, or padded
  rows with lengths) without attention dropout or gate, float32/float64;
  unless ``SAP_GRAPH_NATIVE=0`` or the kernels cannot be built, and except
  for a few huge graphs (the kernels give each graph to one thread).
* ``'triton'`` (:class:`sap_graph.ops.triton.TritonPath`): fused Triton
  kernels, for sorted CUDA batches (``ptr`` given, at most 256 channels)
  without dropout or gate, by default on the GPUs of the architecture on
  which ``benchmarks/gpu_check.sh`` has passed (:data:`TRITON_CHECKED`:
  compute capability 9.0, H100/H200) with Triton 3.6 or newer; else only with
  ``SAP_GRAPH_TRITON=1``, never with ``SAP_GRAPH_TRITON=0``.
* ``'torch'`` (:class:`sap_graph.ops.torch.TorchPath`): PyTorch ops with a
  hand-written backward; any device, any batch; the reference for the
  others.
* ``'dense'`` (:class:`sap_graph.ops.padded.DensePath`): a padded
  ``[B, L, F]`` batch whose mask is not one run per row (or any mask on a
  GPU, or while capturing), from differentiable ops.
* ``'compiled'`` (:class:`sap_graph.ops.compiled.CompiledPath`): a flat
  batch while capturing (:func:`~sap_graph.ops.layout.capturing`:
  :func:`torch.compile`, :func:`torch.jit.trace`, :mod:`torch.func`
  transforms), from differentiable ops.

The switches are read by :mod:`sap_graph.ops.env`. :func:`paths_used`
lists the paths this process has run (eager calls), and
:func:`recording_paths` those run inside a block, for run provenance.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
from typing import Iterator, List, NamedTuple, Optional, Set, Tuple

import torch
from torch import Tensor

from sap_graph.ops import native as _native
from sap_graph.ops.compiled import CompiledPath
from sap_graph.ops.env import switch
from sap_graph.ops.layout import (
    Core,
    Gate,
    Layout,
    Segments,
    capturing,
    infer_dim_size,
    lay_out_flat,
)
from sap_graph.ops.padded import (
    DensePath,
    is_padded,
    lay_out_padded,
    lengths_to_mask,
)
from sap_graph.ops.torch import TorchPath

#: Every path name :func:`choose_path` can return.
PATHS = ('native', 'triton', 'torch', 'dense', 'compiled')

#: The paths that run kernels on :class:`~sap_graph.ops.layout.Segments`.
FUSED = ('native', 'triton', 'torch')

#: CUDA compute capabilities on which ``benchmarks/gpu_check.sh`` has
#: passed (NVIDIA H200, 2026-12-04, ``benchmarks/results/gpu_nvidia-h200``):
#: there the Triton path is on by default (``SAP_GRAPH_TRITON=auto``). The
#: kernels' shared memory fits Hopper's 227 KiB per block; GPUs with less
#: are not yet checked.
TRITON_CHECKED = frozenset({(9, 0)})

#: The oldest Triton release the check passed with (3.6.0): older ones
#: keep the PyTorch path by default too.
TRITON_CHECKED_VERSION = (3, 6)

_used: Set[str] = set()
_recorders: List[Set[str]] = []


class Plan(NamedTuple):
    r"""What :func:`pool` runs: the :obj:`path` (one of :data:`PATHS`) and
    the :obj:`layout` it pools."""
    path: str
    layout: Layout


def device_type(x: Tensor) -> str:
    """The device type of :obj:`x` as the dispatch sees it (a function of
    its own so that tests can present a CPU tensor as a CUDA one)."""
    return x.device.type


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> Tuple[int, int]:
    return torch.cuda.get_device_capability(index)


@functools.lru_cache(maxsize=None)
def triton_version() -> Optional[Tuple[int, ...]]:
    """The installed Triton's release as integers (from its package
    metadata, without importing it), or :obj:`None` when unknown."""
    from importlib import metadata
    try:
        version = metadata.version('triton')
    except metadata.PackageNotFoundError:
        return None
    parts = []
    for part in version.split('.')[:3]:
        digits = ''.join(itertools.takewhile(str.isdigit, part))
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def triton_checked(x: Tensor) -> bool:
    """Whether :obj:`x` is on an NVIDIA GPU of an architecture in
    :data:`TRITON_CHECKED` and Triton is at least
    :data:`TRITON_CHECKED_VERSION` (a function of its own so that tests can
    present a CPU tensor as such a GPU's)."""
    version = triton_version()
    # ROCm reports compute capabilities too (MI200: (9, 0)): NVIDIA only.
    return (x.is_cuda and torch.version.hip is None
            and _capability(x.device.index) in TRITON_CHECKED
            and version is not None and version >= TRITON_CHECKED_VERSION)


def paths_used() -> List[str]:
    """The paths this process has run so far (eager calls), sorted."""
    return sorted(_used)


@contextlib.contextmanager
def recording_paths() -> Iterator[Set[str]]:
    r"""Collects in the set it yields the paths that :func:`pool` runs
    (eager calls) while the block runs: the paths of one training run,
    where :func:`paths_used` holds those of every run in the process."""
    used: Set[str] = set()
    _recorders.append(used)
    try:
        yield used
    finally:
        _recorders.remove(used)


def _triton_wanted(x: Tensor) -> bool:
    state = switch('triton')
    return state == 'on' or (state == 'auto' and triton_checked(x))


def _segment_path(x: Tensor, score_weight: Tensor, seg: Segments,
                  dropout: float, gated: bool) -> str:
    if not seg.sorted or dropout > 0.0 or gated:
        return 'torch'
    device = device_type(x)
    if device == 'cpu':
        # The kernels give each graph to one thread: a batch of a few huge
        # graphs keeps the (multi-threaded) torch path.
        if ((seg.num_nodes < 2**16
             or seg.dim_size >= 4 * torch.get_num_threads())
                and x.dtype in (torch.float32, torch.float64)
                and score_weight.dtype == x.dtype
                and _native.native() is not None):
            return 'native'
    elif device == 'cuda' and _triton_wanted(x) and (
            importlib.util.find_spec('triton') is not None):
        from sap_graph.ops import triton as _triton  # Only here.
        if _triton.supports(x, score_weight):
            return 'triton'
    return 'torch'


def _plan(x: Tensor, score_weight: Tensor, index: Optional[Tensor],
          ptr: Optional[Tensor], dim_size: int, mask: Optional[Tensor],
          lengths: Optional[Tensor], dropout: float, gate: Gate,
          gated: bool) -> Plan:
    heads = score_weight.size(0)
    if mask is None and lengths is not None:  # A padded batch's mask.
        mask = lengths_to_mask(lengths, x.size(-2))
    if is_padded(x, ptr, dim_size, mask):
        layout = lay_out_padded(x, mask, lengths, score_weight, gate)
    else:
        layout = lay_out_flat(x, index, ptr, dim_size, mask, heads, gate)
    if layout.seg is None:  # Rows of a padded batch, or compiling.
        return Plan('dense' if layout.kind == 'rows' else 'compiled', layout)
    return Plan(_segment_path(layout.x, score_weight, layout.seg, dropout,
                              gated), layout)


def choose_path(x: Tensor, score_weight: Tensor,
                index: Optional[Tensor] = None, ptr: Optional[Tensor] = None,
                dim_size: Optional[int] = 1, mask: Optional[Tensor] = None,
                lengths: Optional[Tensor] = None, dropout: float = 0.0,
                gated: bool = False) -> str:
    r"""The path (one of :data:`PATHS`) that :func:`pool` takes for these
    inputs and the current switches, without running it (a padded batch
    may be given by its :obj:`lengths` alone, as to the layer;
    :obj:`dim_size` :obj:`None` is inferred as the layer's call does)."""
    if dim_size is None:
        dim_size = infer_dim_size(index, ptr)
    return _plan(x, score_weight, index, ptr, dim_size, mask, lengths,
                 dropout, None, gated).path


#: The implementation of each path but ``'triton'`` (imported when asked
#: for): its ``run(layout, score_weight, dropout, residual)`` returns the
#: :class:`~sap_graph.ops.layout.Core`.
IMPLEMENTATIONS = {'native': _native.NativePath, 'torch': TorchPath,
                   'dense': DensePath, 'compiled': CompiledPath}


def pool(x: Tensor, score_weight: Tensor, index: Optional[Tensor],
         ptr: Optional[Tensor], dim_size: int,
         mask: Optional[Tensor] = None, lengths: Optional[Tensor] = None,
         dropout: float = 0.0, gate: Gate = None,
         residual: Optional[str] = None) -> Core:
    r"""The SAP core of one checked batch, on the path of
    :func:`choose_path`.

    Args:
        x (torch.Tensor): Features :obj:`[*, N, F]`.
        score_weight (torch.Tensor): Score matrix :obj:`[H, F]` (scores
            are ``x @ score_weight.t()``).
        index (torch.Tensor, optional): Set of each element :obj:`[N]`.
        ptr (torch.Tensor, optional): CSR pointer of a sorted batch.
        dim_size (int): Number of sets :math:`B` per leading position.
        mask (torch.Tensor, optional): Boolean element mask :obj:`[*, N]`;
            with leading dimensions, no :obj:`ptr` and one set, a padded
            batch (one set per row; masked positions are zero-filled
            first, so that whatever they hold reaches no output and no
            gradient).
        lengths (torch.Tensor, optional): The kept leading positions of
            each row of a padded batch, alone (the mask is built from
            them) or beside the :obj:`mask` they make.
            :obj:`mask` and :obj:`lengths` may be on the CPU for a GPU
            batch (as :func:`~torch.nn.utils.rnn.pack_padded_sequence`
            wants lengths): they are copied to :obj:`x`'s device.
        dropout (float, optional): Attention dropout probability (pass
            :obj:`0.0` in evaluation).
        gate (callable, optional): Maps the (kept) features :obj:`[M, F]`
            to a value gate :obj:`[M, H]`.
        residual (str, optional): :obj:`'sum'`, :obj:`'mean'` or
            :obj:`'max'` pooling of the features to return beside.
    """
    if mask is not None:
        mask = mask.to(x.device)
    if lengths is not None:
        lengths = lengths.to(x.device)
    plan = _plan(x, score_weight, index, ptr, dim_size, mask, lengths,
                 dropout, gate, gate is not None)
    if not capturing():
        _used.add(plan.path)
        for used in _recorders:
            used.add(plan.path)
    if plan.path == 'triton':
        from sap_graph.ops.triton import TritonPath  # Imports Triton.
        implementation = TritonPath
    else:
        implementation = IMPLEMENTATIONS[plan.path]
    # Under autocast the kernels would get half-precision scores next to
    # full-precision features; they run in the inputs' own (promoted)
    # precision instead, like a softmax under autocast.
    device = x.device.type
    precision = (torch.autocast(device, enabled=False)
                 if plan.path in FUSED and torch.is_autocast_enabled(device)
                 else contextlib.nullcontext())
    with precision:
        return implementation.run(plan.layout, score_weight, dropout,
                                  residual)

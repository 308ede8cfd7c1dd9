"""Optional fused C++ kernels for CPU, compiled on first use.

The kernels in ``csrc/sap_pool.cpp`` are built with
:func:`torch.utils.cpp_extension.load` the first time a CPU batch reaches
:class:`~sap_graph.SAPAggregation` (about a minute once; the build is cached
under ``$TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``,
in a folder named by a hash of the kernel source, the torch version, the
flags and the CPU; a one-line notice goes to stderr while it builds, and
concurrent processes wait for one build under a file lock).
A build needs a C++ compiler and ``ninja``; without them, or with
``SAP_GRAPH_NATIVE=0``, every batch takes the pure-PyTorch path of
:mod:`sap_graph.ops.torch`, which computes the same function.

``SAP_GRAPH_NATIVE`` (read by :mod:`sap_graph.ops.env`): ``auto``
(default: build, fall back with a warning), ``0`` (never build), ``1``
(build; raise if the build fails).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import os.path as osp
import platform
import shutil
import sys
import threading
import warnings
from types import ModuleType
from typing import Iterator, List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from sap_graph.ops.env import switch
from sap_graph.ops.layout import Core, Layout

_SOURCE = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'csrc',
                   'sap_pool.cpp')
_lock = threading.Lock()
_module: Optional[ModuleType] = None
_failed: Optional[str] = None


_FLAGS = ['-O3', '-fopenmp', '-march=native']
_NOTICE = 'sap_graph: building fused CPU kernels (once, ~1 min)\u2026'


def _extension_name(flags: List[str]) -> str:
    """The extension (and build folder) name: a hash of the kernel source
    (its bytes and its path, *i.e.* the installation), the torch and Python
    versions, the flags and the CPU. Two installations never load or
    rebuild each other's kernels (torch's build would see another source
    path and recompile), another torch never loads a stale build, and
    -march=native code never runs on another CPU model that shares the
    build cache (a home directory on a cluster)."""
    digest = hashlib.sha1()
    with open(_SOURCE, 'rb') as f:
        digest.update(f.read())
    for part in (_SOURCE, torch.__version__, sys.implementation.cache_tag,
                 ' '.join(flags), _cpu_tag(flags)):
        digest.update(b'\0' + part.encode())
    return f'sap_graph_native_{digest.hexdigest()[:16]}'


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    """Holds an exclusive :func:`fcntl.flock` on :obj:`path`, waiting for
    another process (or thread) that holds it. Without :mod:`fcntl`
    (Windows) it does nothing; torch's own build baton still applies."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover
        yield
        return
    with open(path, 'a+') as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _build() -> ModuleType:
    from torch.utils.cpp_extension import _get_build_directory, load

    if shutil.which('ninja') is None:
        try:  # The `ninja` wheel puts its binary next to the interpreter.
            import ninja  # noqa: F401
            os.environ['PATH'] = (ninja.BIN_DIR + os.pathsep +
                                  os.environ.get('PATH', ''))
        except ImportError:
            pass
    flags = list(_FLAGS)
    name = _extension_name(flags)
    # ``$TORCH_EXTENSIONS_DIR/<name>`` (torch's default root otherwise).
    build_dir = _get_build_directory(name, verbose=False)
    # Concurrent processes (parallel test workers, grid jobs) wait here for
    # the one that builds, then load its finished build.
    with _file_lock(osp.join(build_dir, 'sap_graph_build.lock')):
        # Under this lock nobody else builds here, so torch's own baton file
        # is a leftover of a killed build (Ctrl-C during the minute it
        # takes): torch would wait for it forever.
        try:
            os.remove(osp.join(build_dir, 'lock'))
        except FileNotFoundError:
            pass
        if not osp.exists(osp.join(build_dir, f'{name}.so')):
            print(_NOTICE, file=sys.stderr, flush=True)
        return load(name=name, sources=[_SOURCE], extra_cflags=flags,
                    extra_ldflags=['-fopenmp'], build_directory=build_dir,
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
    cannot be built here.

    The first call builds (about a minute, once per kernel source, torch
    version and CPU) or loads them; later calls are free. Call it before
    timing anything, so that the build is not counted as training time."""
    global _module, _failed
    mode = switch('native')
    if mode == 'off':
        return None
    if _module is not None:
        return _module
    if _failed is not None:
        if mode == 'on':
            raise RuntimeError(f'sap_graph native kernels: {_failed}')
        return None
    with _lock:
        if _module is None and _failed is None:
            try:
                _module = _build()
            except Exception as exc:  # Compiler, ninja or headers missing.
                _failed = f'{type(exc).__name__}: {exc}'.splitlines()[0]
                if mode == 'on':
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
    if switch('native') == 'off':
        return 'torch (SAP_GRAPH_NATIVE=0)'
    if _module is not None:
        return 'native'
    if _failed is not None:
        return 'torch (build failed)'
    return 'not loaded'


#: Residual poolings the kernels compute in the same pass (their mode).
RESIDUAL_MODES = {None: 0, 'sum': 1, 'mean': 2, 'max': 3}


class SAPNativeFunction(torch.autograd.Function):
    r"""The SAP core on a sorted CPU batch (CSR pointer :obj:`ptr`), without
    attention dropout or gate, with the fused kernels: one read of
    :math:`\mathbf{X}` forward, one read and one write of its gradient
    backward; the :obj:`residual` pooling (:obj:`'sum'`, :obj:`'mean'`,
    :obj:`'max'` or :obj:`None`) rides along. Returns ``(pooled [H, B, F],
    alpha [N, H], weight_sum [H, B], res [B, F] or None)``."""

    @staticmethod
    def forward(ctx, x: Tensor, score_weight: Tensor,  # type: ignore
                ptr: Tensor, residual: Optional[str] = None
                ) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
        kernels = native()
        assert kernels is not None
        mode = RESIDUAL_MODES[residual]
        pooled, alpha, weight_sum, res = kernels.forward(
            x, score_weight, ptr, mode)
        ctx.kernels, ctx.ptr, ctx.mode = kernels, ptr, mode
        # Unused outputs (usually alpha) reach backward as None, not as
        # zero tensors the kernel would have to read.
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, score_weight, alpha, res)
        return pooled, alpha, weight_sum, res

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_pooled: Optional[Tensor],  # type: ignore
                 grad_alpha: Optional[Tensor],
                 grad_weight_sum: Optional[Tensor],
                 grad_res: Optional[Tensor]):
        x, score_weight, alpha, res = ctx.saved_tensors
        grad_x, grad_w = ctx.kernels.backward(
            x, score_weight, ctx.ptr, alpha, grad_pooled, grad_alpha,
            grad_weight_sum, ctx.mode, res, grad_res,
            ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return grad_x, grad_w, None, None


class NativePath:
    r"""The ``native`` path of :mod:`sap_graph.ops.dispatch`."""

    @staticmethod
    def run(layout: Layout, score_weight: Tensor, dropout: float = 0.0,
            residual: Optional[str] = None) -> Core:
        r"""The :class:`~sap_graph.ops.layout.Core` of a sorted ``'flat'``
        or ``'runs'`` :class:`~sap_graph.ops.layout.Layout` (no dropout, no
        gate): :class:`SAPNativeFunction`, with the :obj:`residual` pooling
        in the same pass."""
        return layout.core(*SAPNativeFunction.apply(
            layout.x, score_weight, layout.seg.ptr, residual))

"""Shared builders and checks of the layer tests (``tests/nn``,
``tests/ops``): batches, the layer under test and the comparison with the
independent float64 reference of :mod:`tests.reference` (values and
gradients)."""
import signal
from functools import partial
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from sap_graph import SAPAggregation
from tests.reference import sap_reference

# Normally initialised queries, so that the attention under test is not
# uniform (an untrained layer with the default zero queries is mean pooling),
# and the plain layer (1 head, no residual, no size scaler) unless a test
# asks otherwise.
SAP = partial(SAPAggregation, heads=1, concat=True, residual=None,
              size_scaler=None, query_init='normal')

#: Graph sizes with empty graphs inside and at the end.
SIZES = [3, 0, 5, 1, 7, 0]


def make_batch(sizes=SIZES, channels: int = 8, seed: int = 0,
               dtype: torch.dtype = torch.float32, shuffle: bool = False
               ) -> Tuple[Tensor, Tensor, Tensor, int]:
    """Sorted batch ``(x, index, ptr, num_graphs)`` with the given graph
    sizes (zeros give empty graphs); :obj:`shuffle` permutes the nodes
    (``ptr`` then describes the sorted batch only)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(sizes, dtype=torch.long)
    index = torch.arange(sizes.numel()).repeat_interleave(sizes)
    ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    x = torch.randn(int(sizes.sum()), channels, generator=gen, dtype=dtype)
    if shuffle:
        perm = torch.randperm(index.numel(), generator=gen)
        index, x = index[perm], x[perm]
    return x, index, ptr, sizes.numel()


def core_batch(sizes, channels: int, heads: int,
               dtype: torch.dtype = torch.float64, seed: int = 0):
    """A batch for the SAP core: ``(x, score_weight, index, ptr, B)``."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.tensor(sizes)
    index = torch.arange(sizes.numel()).repeat_interleave(sizes)
    ptr = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)])
    x = torch.randn(int(sizes.sum()), channels, generator=gen, dtype=dtype)
    w = torch.randn(heads, channels, generator=gen, dtype=dtype)
    return x, w, index, ptr, sizes.numel()


def outputs_and_grads(fn, x: Tensor, w: Tensor, seed: int = 1):
    """Runs ``fn(x, w) -> (pooled, alpha, weight_sum[, res])`` and
    back-propagates random cotangents into all outputs (a :obj:`None`
    residual left out); returns the outputs and the gradients of ``x``
    and ``w``."""
    x = x.detach().clone().requires_grad_()
    w = w.detach().clone().requires_grad_()
    outs = [o for o in fn(x, w) if o is not None]
    gen = torch.Generator().manual_seed(seed)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=torch.float64)
                .to(o.device, o.dtype)).sum() for o in outs)
    loss.backward()
    return [o.detach() for o in outs] + [x.grad, w.grad]


def core_functions(out: Tensor) -> set:
    """Names of the SAP core functions in the autograd graph of out."""
    names, stack = set(), [out.grad_fn]
    while stack:
        fn = stack.pop()
        if fn is not None:
            names.add(type(fn).__name__)
            stack.extend(f for f, _ in fn.next_functions)
    return names & {'SAPNativeFunctionBackward', 'SAPPoolFunctionBackward'}


def reference_and_grads(aggr, x: Tensor, index: Tensor, num_graphs: int,
                        cot: Tensor, mask: Optional[Tensor] = None
                        ) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
    """The float64 reference's output, attention weights and gradients
    (autograd through the reference) of ``(out * cot).sum()``; gradients
    by name: ``'x'`` and the layer's parameters."""
    x = x.detach().double().clone().requires_grad_()
    aggr.zero_grad()
    out, alpha = sap_reference(aggr, x, index, num_graphs, mask=mask)
    (out * cot.double()).sum().backward()
    grads = {'x': x.grad, **{n: p.grad.double()
                             for n, p in aggr.named_parameters()}}
    aggr.zero_grad()
    return out.detach(), alpha.detach(), grads


def layer_and_grads(aggr, x: Tensor, cot: Tensor, **kwargs
                    ) -> Tuple[Tensor, Tensor, Dict[str, Tensor]]:
    """The layer's output, attention weights and gradients of
    ``(out * cot).sum()``, named as in :func:`reference_and_grads`."""
    x = x.detach().clone().requires_grad_()
    aggr.zero_grad()
    out, alpha = aggr(x, return_attention_weights=True, **kwargs)
    (out * cot).sum().backward()
    grads = {'x': x.grad, **{n: p.grad for n, p in aggr.named_parameters()}}
    aggr.zero_grad()
    return out.detach(), alpha.detach(), grads


def assert_matches_reference(aggr, x: Tensor, index: Tensor,
                             num_graphs: int, mask: Optional[Tensor] = None,
                             call: Optional[dict] = None, atol: float = 1e-5,
                             seed: int = 0) -> None:
    """The layer on ``x`` (called with ``call``, by default ``index`` and
    ``dim_size``) against the float64 reference on the flat batch ``x``
    ``[N, F]``, ``index``, ``mask``: output, attention weights and every
    gradient (of a random weighting of the output)."""
    call = call or dict(index=index, dim_size=num_graphs)
    gen = torch.Generator().manual_seed(seed)
    flat_x = x.reshape(-1, x.size(-1))
    width = aggr.output_channels
    cot = torch.randn(num_graphs, width, generator=gen)
    out, alpha, grads = layer_and_grads(aggr, x, cot.view(-1, width).view(
        *_out_shape(x, call, num_graphs, width)).to(x.dtype), **call)
    ref_out, ref_alpha, ref_grads = reference_and_grads(
        aggr, flat_x, index, num_graphs, cot, mask)
    torch.testing.assert_close(out.reshape(num_graphs, width).double(),
                               ref_out, atol=atol, rtol=atol)
    torch.testing.assert_close(alpha.reshape(-1, aggr.heads).double(),
                               ref_alpha, atol=atol, rtol=atol)
    for name, ref in ref_grads.items():
        got = grads[name].reshape(ref.shape).double()
        torch.testing.assert_close(got, ref, atol=atol, rtol=atol,
                                   msg=f'gradient of {name}')


def _out_shape(x: Tensor, call: dict, num_graphs: int, width: int):
    if x.dim() == 2:
        return (num_graphs, width)
    lead = x.shape[:-2]
    return (*lead, num_graphs // max(1, _prod(lead)), width)


def _prod(shape) -> int:
    out = 1
    for size in shape:
        out *= size
    return out


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (exists and is no zombie; reads
    ``/proc``)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def answers_ctrl_c() -> None:
    """``preexec_fn`` of a child process that must answer Ctrl-C even when
    the tests themselves run with SIGINT ignored (a background job of a
    non-interactive shell: POSIX ignores SIGINT there, children inherit
    it, and Python then keeps it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)

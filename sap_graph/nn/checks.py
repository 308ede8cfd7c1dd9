r"""The checks of :class:`~sap_graph.SAPAggregation`: its options, one
call's inputs and the batch vectors (the width inside a convolution:
:mod:`~sap_graph.nn.conv_width`). Errors
are the library's own (:class:`ValueError`, :class:`TypeError`), naming the
option or input and the value given."""
from __future__ import annotations

import sys
from numbers import Integral, Real
from typing import Dict, Optional, Tuple, Union

import torch
from torch import Tensor
from torch_geometric import is_debug_enabled

from sap_graph.ops.layout import capturing, readable


def _head(values: Tensor, count: int = 8) -> str:
    """The first :obj:`count` entries of a 1-D tensor, for messages."""
    items = ', '.join(str(v) for v in values[:count].tolist())
    return f"[{items}{', ...' if values.numel() > count else ''}]"


#: What :func:`assert_agree` says when :obj:`index` and :obj:`ptr` differ.
DISAGREE = ("'index' and 'ptr' disagree: 'index' is not the sorted batch "
            "vector of 'ptr' (a graph beyond those of 'ptr', or a node in "
            "another graph). Pass only one of them, or 'ptr' of a sorted "
            "'index'")


def reads_values(device: torch.device) -> bool:
    r"""Whether :func:`check_batch` reads the values of batch vectors on
    :obj:`device`: on the CPU, and elsewhere under
    :func:`torch_geometric.debug` (reading back would stall a GPU stream
    once per forward)."""
    return device.type == 'cpu' or is_debug_enabled()


def _batch_of(ptr: Tensor, num_nodes: int) -> Tensor:
    # The sorted batch vector of a CSR pointer.
    return torch.repeat_interleave(
        torch.arange(ptr.numel() - 1, device=ptr.device), ptr.diff(),
        output_size=num_nodes)


def assert_agree(index: Optional[Tensor], ptr: Optional[Tensor],
                 num_nodes: int) -> None:
    r"""Asserts, without reading a value back (no device sync, no graph
    break under :func:`torch.compile`), that :obj:`index` is the sorted
    batch vector of :obj:`ptr` (nothing when one of them is
    :obj:`None`), so that no path follows one and not the other: a
    :class:`RuntimeError` saying :data:`DISAGREE` on the CPU (also from a
    compiled graph), a device-side assertion on a GPU, reported at the
    next synchronisation. A trace of :func:`torch.jit.trace` drops it."""
    if index is None or ptr is None:
        return
    expected = _batch_of(ptr.to(torch.long), num_nodes)
    torch._assert_async((index.to(torch.long) == expected).all(), DISAGREE)


def check_batch(index: Optional[Tensor], ptr: Optional[Tensor],
                 num_nodes: int, dim_size: int) -> None:
    r"""Checks the batch vectors of a call in eager mode: :obj:`dim_size`
    a non-negative integer, :obj:`ptr` of shape :obj:`[dim_size + 1]`
    running from 0 to :obj:`num_nodes`, :obj:`index` in
    :obj:`[0, dim_size)` and, with both, that they agree (values where
    :func:`reads_values`; elsewhere only the agreement, by
    :func:`assert_agree`)."""
    if not _is_int(dim_size) or dim_size < 0:
        raise ValueError(f"Expected 'dim_size' to be a non-negative "
                         f"integer (got {dim_size!r})")
    if ptr is not None and (ptr.dim() != 1 or
                            ptr.numel() != dim_size + 1):
        raise ValueError(f"Expected 'ptr' of shape [{dim_size + 1}] "
                         f"(got {list(ptr.shape)})")
    device = (ptr if ptr is not None else index).device
    if not reads_values(device):
        # Reading values back would stall the GPU stream once per
        # forward (PyG's aggregations do not check either); a bad
        # index then fails in a device-side assert, and so do an index
        # and a ptr that disagree (else one path would follow each).
        # Under ``torch_geometric.debug()`` the checks below run
        # everywhere.
        assert_agree(index, ptr, num_nodes)
        return
    if ptr is not None:
        first, last = ptr[[0, -1]].tolist()
        if first != 0 or last != num_nodes:
            raise ValueError(f"Expected 'ptr' to run from 0 to "
                             f"{num_nodes} (got {first} to {last})")
        if bool((ptr[1:] < ptr[:-1]).any()):
            raise ValueError("Expected a non-decreasing 'ptr'")
    if index is not None and index.numel() > 0:
        low, high = (int(v) for v in torch.aminmax(index))
        if low < 0:
            raise ValueError(f"Expected a non-negative 'index' (got "
                             f"values in [{low}, {high}])")
        if high >= dim_size:
            raise ValueError(f"Encountered invalid 'dim_size' (got "
                             f"'{dim_size}' but 'index' holds values in "
                             f"[{low}, {high}], expected values in "
                             f"[0, {dim_size - 1}])")
    if index is not None and ptr is not None:
        # Both given: they must describe the same batch (the fused
        # kernels follow 'ptr', the other paths mostly 'index').
        expected = _batch_of(ptr, index.numel())
        wrong = (index != expected).nonzero()
        if wrong.numel() > 0:
            node = int(wrong[0])
            raise ValueError(
                f"'index' and 'ptr' disagree: 'ptr' "
                f"{_head(ptr)} puts node {node} in graph "
                f"{int(expected[node])} but 'index' holds "
                f"{int(index[node])} there ({wrong.numel()} of "
                f"{num_nodes} nodes differ; got 'index' "
                f"{_head(index)}, expected {_head(expected)}). Pass "
                f"only one of them, or 'ptr' of a sorted 'index'")


_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def describe(value) -> str:
    if isinstance(value, Tensor):
        return f'{value.dtype} {list(value.shape)}'
    return type(value).__name__


def node_dimension(x: Tensor, dim: int) -> Optional[int]:
    r"""The node dimension :obj:`dim` of :obj:`x` as a non-negative index
    where it lies before the second-to-last (the layer then moves it
    there: *e.g.* :obj:`dim=0` of GATConv's messages :obj:`[E, H, C]`),
    else :obj:`None`."""
    if x.dim() > 2 and -x.dim() <= dim < x.dim() and (
            dim % x.dim() < x.dim() - 2):
        return dim % x.dim()
    return None


def check_mask(mask: Optional[Tensor], x: Tensor) -> None:
    r"""Checks that :obj:`mask` (optional) is a boolean tensor of shape
    :obj:`x.shape[:-1]`."""
    if mask is not None and (
            not isinstance(mask, Tensor) or mask.dtype != torch.bool
            or mask.shape != x.shape[:-1]):
        raise ValueError(f"Expected a boolean 'mask' of shape "
                         f"{list(x.shape[:-1])} (got {describe(mask)})")


def check_call(x: object, index: object, ptr: object, dim: object,
               flag: object) -> None:
    r"""Checks the types of a call of :class:`~sap_graph.SAPAggregation`
    before PyG's :class:`Aggregation` reads them: tensors :obj:`x`,
    :obj:`index` and :obj:`ptr`, an integer :obj:`dim`, and a real boolean
    :obj:`return_attention_weights` (:obj:`flag`; a string such as
    :obj:`'no'` would be truthy)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"Expected node features 'x' as a tensor (got "
                        f"{describe(x)})")
    for name, vector in (('index', index), ('ptr', ptr)):
        if vector is not None and not isinstance(vector, Tensor):
            raise TypeError(f"Expected '{name}' to be a 1-D tensor of "
                            f"torch.long or another integer dtype (got "
                            f"{describe(vector)})")
    if not _is_int(dim):
        raise TypeError(f"'dim' must be an integer (got {dim!r})")
    if not isinstance(flag, bool):
        raise TypeError(f"'return_attention_weights' must be True or False "
                        f"(got {flag!r})")


def check_inputs(x: Tensor, in_channels: int, dim: int,
                 index: Optional[Tensor], mask: Optional[Tensor],
                 lengths: Optional[Tensor], ptr: Optional[Tensor] = None
                 ) -> None:
    r"""Checks the shapes and dtypes of a call of
    :class:`~sap_graph.SAPAggregation` (or :func:`~sap_graph.sap_pool`)
    with its nodes at :obj:`dim` (the second-to-last)."""
    if x.dim() < 2 or not -x.dim() <= dim < x.dim() or (
            dim % x.dim() != x.dim() - 2):
        raise ValueError(f"'SAPAggregation' pools over a node dimension "
                         f"before the channels of a [*, N, {in_channels}] "
                         f"tensor (got dim={dim} for a tensor of shape "
                         f"{tuple(x.shape)})")
    if x.size(-1) != in_channels:
        raise ValueError(f"Expected node features with {in_channels} "
                         f"channels in the last dimension (got "
                         f"{x.size(-1)})")

    lead = x.shape[:-2]
    num_nodes = x.size(-2)
    for name, vector in (('index', index), ('ptr', ptr)):
        if vector is not None and (not isinstance(vector, Tensor) or (
                vector.dtype not in _INT_DTYPES or vector.dim() != 1)):
            raise ValueError(f"Expected '{name}' to be a 1-D tensor of "
                             f"torch.long or another integer dtype (got "
                             f"{describe(vector)})")
    if index is not None and index.numel() != num_nodes:
        raise ValueError(f"Expected 'index' with {num_nodes} entries, "
                         f"one per node (got {index.numel()})")
    if mask is not None and lengths is not None:
        raise ValueError("Pass only one of 'mask' and 'lengths' (got both)")
    check_mask(mask, x)
    if lengths is not None:
        if not isinstance(lengths, Tensor) or lengths.dtype not in _INT_DTYPES:
            raise ValueError(f"Expected integer 'lengths' (a tensor of "
                             f"torch.long or another integer dtype) of shape "
                             f"{list(lead)} (got {describe(lengths)})")
        if lengths.shape != lead:
            raise ValueError(f"Expected 'lengths' of shape {list(lead)} "
                             f"(got {list(lengths.shape)})")
        # Data-dependent: skipped while compiling (no graph break) or
        # tracing (a trace would bake the outcome in).
        if not capturing() and lengths.device.type == 'cpu' and (
                lengths.numel() > 0) and (
                lengths.min() < 0 or lengths.max() > num_nodes):
            raise ValueError(f"Expected 'lengths' in [0, {num_nodes}] "
                             f"(got values in [{int(lengths.min())}, "
                             f"{int(lengths.max())}])")
    # A mask is built from lengths on the batch's device by the dispatch
    # (lengths may stay on the CPU, checked there without a sync).


def check_call_inputs(x: Tensor, in_channels: int, dtype: torch.dtype,
                      index: Optional[Tensor], ptr: Optional[Tensor],
                      dim_size: int, dim: int, mask: Optional[Tensor],
                      lengths: Optional[Tensor]
                      ) -> Tuple[Tensor, Optional[Tensor], Optional[int]]:
    r"""Checks one call of :class:`~sap_graph.SAPAggregation` (parameters
    of :obj:`dtype`) and returns :obj:`(x, mask, moved)`: the features and
    mask with the nodes moved to the second-to-last dimension, and where
    they were (:obj:`None` when they were there).

    Shapes always; values and dtype in eager mode (reading values back
    would break a compiled graph), the batch vectors and dtype also under
    :mod:`torch.func` transforms that leave them plain; compiled, that
    :obj:`index` and :obj:`ptr` agree (an assertion in the graph)."""
    moved = node_dimension(x, dim)
    if moved is not None:  # Nodes first: the other dimensions lead.
        check_mask(mask, x)
        x, dim = x.movedim(moved, -2), -2
        mask = None if mask is None else mask.movedim(moved, -1)
    check_inputs(x, in_channels, dim, index, mask, lengths, ptr)
    if not capturing() or readable(index, ptr):
        check_batch(index, ptr, x.size(-2), dim_size)
        check_dtype(x, dtype)
    elif torch.compiler.is_compiling():
        assert_agree(index, ptr, x.size(-2))
    return x, mask, moved


def _is_int(value) -> bool:
    return isinstance(value, Integral) and not isinstance(value, bool)


def check_removed(options: Dict[str, object]) -> None:
    r"""Raises a :class:`TypeError` for options that
    :class:`~sap_graph.SAPAggregation` does not take, naming what replaces
    those removed in 0.3 (:obj:`diversity`, :obj:`entropy`)."""
    for name in options:
        if name in ('diversity', 'entropy'):
            function = ('diversity_penalty' if name == 'diversity' else
                        'attention_entropy')
            raise TypeError(
                f"SAPAggregation({name}=...) was removed in 0.3 (with the "
                f"layer's 'aux_loss'): get the weights with "
                f"'out, alpha = aggr(..., return_attention_weights=True)' "
                f"and add weight * sap_graph.{function}(alpha, index) to "
                f"the loss")
        raise TypeError(f"SAPAggregation() got an unexpected keyword "
                        f"argument '{name}'")


#: The smallest softmax temperature: the queries are divided by it, so
#: at 1e-40 they are inf in float32 (scores of +-inf, NaN weights), and
#: near float32's bound any score above a few units overflows.
MIN_TEMPERATURE = 1e-6


def check_options(in_channels: int, out_channels: Optional[int],
                  heads: int, key_channels: Optional[int], dropout: float,
                  temperature: float, residual: Union[str, bool, None],
                  query_init: str, size_scaler: Optional[str],
                  flags: Dict[str, bool]) -> None:
    r"""Checks the options of :class:`~sap_graph.SAPAggregation`: sizes are
    positive integers (:obj:`out_channels` and :obj:`key_channels` may be
    :obj:`None`), :obj:`flags` (:obj:`concat`, :obj:`gated`, ...) real
    booleans, the temperature finite and at least
    :data:`MIN_TEMPERATURE`."""
    for name, value in (('in_channels', in_channels),
                        ('out_channels', out_channels), ('heads', heads),
                        ('key_channels', key_channels)):
        if value is None and name in ('out_channels', 'key_channels'):
            continue
        if not _is_int(value):
            raise ValueError(f"'{name}' must be an integer (got {value!r})")
        if value <= 0:
            raise ValueError(f"'{name}' must be positive (got {value})")
    for name, value in flags.items():
        if not isinstance(value, bool):
            # A string such as 'false' would be truthy: no guessing.
            raise TypeError(f"'{name}' must be True or False "
                            f"(got {value!r})")
    for name, value in (('dropout', dropout),
                        ('temperature', temperature)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ValueError(f"'{name}' must be a number (got {value!r})")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"'dropout' must be in [0, 1) (got {dropout})")
    if not 0.0 < temperature <= sys.float_info.max:  # No NaN, inf, 10**400.
        raise ValueError(f"'temperature' must be positive and finite "
                         f"(got {temperature})")
    if temperature < MIN_TEMPERATURE:
        raise ValueError(f"'temperature' must be at least "
                         f"{MIN_TEMPERATURE:g} (got {temperature}): the "
                         f"queries are divided by it, and float32 scores "
                         f"overflow to inf and NaN weights below that")
    if isinstance(residual, bool):
        raise ValueError(
            f"'residual' must be one of 'sum', 'mean', 'max' or None (got "
            f"{residual!r}; residual=True/False was removed in 0.3: use "
            f"residual='mean' for True and residual=None for False)")
    if residual not in (None, 'sum', 'mean', 'max'):
        raise ValueError(f"'residual' must be one of 'sum', 'mean', "
                         f"'max' or None (got {residual!r})")
    if query_init not in ('zeros', 'normal'):
        raise ValueError(f"'query_init' must be 'zeros' or 'normal' "
                         f"(got {query_init!r})")
    if size_scaler not in (None, 'log'):
        raise ValueError(f"'size_scaler' must be 'log' or None "
                         f"(got {size_scaler!r})")
    if flags.get('rezero') and residual is None:
        raise ValueError("'rezero' scales the attention output next to a "
                         "residual: set 'residual'")


_AUTOCAST_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def check_dtype(x: Tensor, dtype: torch.dtype) -> None:
    r"""Like :class:`torch.nn.Linear`, features and parameters share one
    dtype outside :func:`torch.autocast` (a half-precision batch into a
    float32 layer would fail deep inside the value projection); under
    autocast both must be float32, float16 or bfloat16 (autocast leaves
    float64 alone)."""
    if x.dtype == dtype:
        return
    if not x.is_floating_point():
        raise ValueError(f"'SAPAggregation' pools floating-point features "
                         f"(got {x.dtype}): convert them, e.g. "
                         f"x.to({dtype})")
    if torch.is_autocast_enabled(x.device.type):
        if x.dtype in _AUTOCAST_DTYPES and dtype in _AUTOCAST_DTYPES:
            return
        raise ValueError(
            f"'SAPAggregation' got {x.dtype} node features but its "
            f"parameters are {dtype}; torch.autocast casts float32, float16 "
            f"and bfloat16 only: convert one to the other (x.to({dtype}) "
            f"or aggr.to({x.dtype}))")
    raise ValueError(
        f"'SAPAggregation' got {x.dtype} node features but its "
        f"parameters are {dtype}: convert one to the other "
        f"(x.to({dtype}) or aggr.to({x.dtype})), or run the model "
        f"under torch.autocast")
